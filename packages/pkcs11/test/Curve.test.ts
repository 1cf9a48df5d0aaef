import { assert, describe, it } from "@effect/vitest"
import { Curve } from "@hsmkey/pkcs11"
import * as Crypto from "node:crypto"

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"))

describe("Curve", () => {
  it("encodes and recognizes each curve's CKA_EC_PARAMS", () => {
    for (const curve of Object.keys(Curve.specs) as Array<Curve.Curve>) {
      assert.strictEqual(Curve.fromEcParams(Curve.ecParams(curve)), curve)
    }
    assert.deepStrictEqual(Curve.ecParams("P-256"), hex("06082a8648ce3d030107"))
    assert.deepStrictEqual(Curve.ecParams("P-384"), hex("06052b81040022"))
    assert.deepStrictEqual(Curve.ecParams("P-521"), hex("06052b81040023"))
    assert.deepStrictEqual(Curve.ecParams("Ed25519"), hex("06032b6570"))
  })

  it("accepts the printable names of Edwards curves and rejects unknown parameters", () => {
    assert.strictEqual(Curve.fromEcParams(Uint8Array.from([0x13, 12, ...Buffer.from("edwards25519")])), "Ed25519")
    assert.strictEqual(Curve.fromEcParams(Uint8Array.from([0x13, 10, ...Buffer.from("edwards448")])), "Ed448")
    assert.isUndefined(Curve.fromEcParams(hex("06082a8648ce3d030101")))
    assert.isUndefined(Curve.fromEcParams(Uint8Array.from([0x13, 5, ...Buffer.from("nope!")])))
    assert.isUndefined(Curve.fromEcParams(new Uint8Array(0)))
  })

  it("unwraps CKA_EC_POINT from its DER OCTET STRING, short and long form, or takes a bare point", () => {
    const p256 = Uint8Array.from([0x04, ...new Uint8Array(64).fill(7)])
    const wrapped = Curve.encodeEcPoint(p256)
    assert.deepStrictEqual(wrapped.subarray(0, 2), Uint8Array.from([0x04, 0x41]))
    assert.deepStrictEqual(Curve.decodeEcPoint("P-256", wrapped), p256)
    assert.deepStrictEqual(Curve.decodeEcPoint("P-256", p256), p256)

    const p521 = Uint8Array.from([0x04, ...new Uint8Array(132).fill(9)])
    const long = Curve.encodeEcPoint(p521)
    assert.deepStrictEqual(long.subarray(0, 3), Uint8Array.from([0x04, 0x81, 0x85]))
    assert.deepStrictEqual(Curve.decodeEcPoint("P-521", long), p521)

    const ed = new Uint8Array(32).fill(3)
    assert.deepStrictEqual(Curve.decodeEcPoint("Ed25519", Curve.encodeEcPoint(ed)), ed)
    assert.deepStrictEqual(Curve.decodeEcPoint("Ed25519", ed), ed)
  })

  it("rejects points of the wrong size or compressed form", () => {
    assert.isUndefined(
      Curve.decodeEcPoint("P-384", Curve.encodeEcPoint(Uint8Array.from([0x04, ...new Uint8Array(64)])))
    )
    assert.isUndefined(Curve.decodeEcPoint("P-256", Uint8Array.from([0x02, ...new Uint8Array(32)])))
    assert.isUndefined(Curve.decodeEcPoint("P-256", Uint8Array.from([0x04, 0x42, 0x04, ...new Uint8Array(64)])))
  })
  it("isOnCurve: a key's point is on its curve; a point off it, compressed, or with a coordinate of the prime or more is not", () => {
    for (const [curve, name] of [["P-256", "prime256v1"], ["P-384", "secp384r1"], ["P-521", "secp521r1"]] as const) {
      const ecdh = Crypto.createECDH(name)
      const point = Uint8Array.from(ecdh.generateKeys())
      assert.isTrue(Curve.isOnCurve(curve, point))
      const off = Uint8Array.from(point)
      off[off.length - 1] ^= 1
      assert.isFalse(Curve.isOnCurve(curve, off))
      assert.isFalse(Curve.isOnCurve(curve, Uint8Array.from(ecdh.getPublicKey(null, "compressed"))))
      assert.isFalse(Curve.isOnCurve(curve, Uint8Array.from([0x04, ...new Uint8Array(point.length - 1).fill(0xff)])))
    }
    assert.isTrue(Curve.isOnCurve("Ed25519", new Uint8Array(32)))
    assert.isFalse(Curve.isOnCurve("Ed25519", new Uint8Array(31)))
  })
})
