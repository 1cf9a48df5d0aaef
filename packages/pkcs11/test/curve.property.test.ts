/**
 * What a token returns for a public key is data from outside: `CKA_EC_PARAMS` and `CKA_EC_POINT` of any
 * bytes (SoftHSM2 stores what C_CreateObject is given), attribute records of any names. Decoding them gives
 * the right curve, point or JWK, or `undefined`; never a throw, and never a JWK node:crypto refuses.
 * Properties run 1,000 times each; the cases they found are kept below as named regressions.
 */
import { assert, describe, it } from "@effect/vitest"
import { Attribute, Constants, Curve } from "@hsmkey/pkcs11"
import * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import { FastCheck } from "effect"
import * as Crypto from "node:crypto"

const { CKK } = Constants
const numRuns = 1000
const curves = Object.keys(Curve.specs) as ReadonlyArray<Curve.Curve>
const weierstrass = curves.filter((curve) => Curve.specs[curve].family === "weierstrass")

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url")

/** Real public points, made once: a few per curve. */
const points: Record<Curve.Curve, ReadonlyArray<Uint8Array>> = Object.fromEntries(curves.map((curve) => {
  const made = Array.from({ length: 8 }, () => {
    if (curve === "Ed25519" || curve === "Ed448") {
      const pair = curve === "Ed25519" ? Crypto.generateKeyPairSync("ed25519") : Crypto.generateKeyPairSync("ed448")
      const jwk = pair.publicKey.export({ format: "jwk" })
      return new Uint8Array(Buffer.from(jwk.x!, "base64url"))
    }
    const ecdh = Crypto.createECDH(Curve.specs[curve].nodeName)
    ecdh.generateKeys()
    return new Uint8Array(ecdh.getPublicKey())
  })
  return [curve, made]
})) as never

const curve = FastCheck.constantFrom(...curves)
const validPoint = curve.chain((c) => FastCheck.constantFrom(...points[c]).map((point) => ({ curve: c, point })))

/** Bytes near a valid value: truncated, extended, one byte changed, or another length byte. */
const mutated = (bytes: Uint8Array) =>
  FastCheck.oneof(
    FastCheck.nat({ max: bytes.length }).map((n) => bytes.subarray(0, n)),
    FastCheck.uint8Array({ minLength: 1, maxLength: 4 }).map((extra) => Uint8Array.from([...bytes, ...extra])),
    FastCheck.tuple(FastCheck.nat({ max: Math.max(0, bytes.length - 1) }), FastCheck.integer({ min: 0, max: 255 }))
      .map(([i, value]) => Uint8Array.from(bytes, (byte, j) => (j === i ? value : byte))),
    FastCheck.integer({ min: 0, max: 255 }).map((length) =>
      Uint8Array.from(bytes, (byte, j) => (j === 1 ? length : byte))
    )
  )

const anyBytes = FastCheck.uint8Array({ maxLength: 200 })

/** What node:crypto makes of a public JWK: the key, or the error it throws. */
const nodeImport = (jwk: PublicKey.PublicJwk) => {
  try {
    return Crypto.createPublicKey({ key: jwk, format: "jwk" })
  } catch (error) {
    return error as Error
  }
}

describe("CKA_EC_PARAMS", () => {
  const printable = (name: string) => Uint8Array.from([0x13, name.length, ...Buffer.from(name, "latin1")])
  const encodings = new Map<string, Curve.Curve>([
    ...curves.map((c) => [hex(Curve.ecParams(c)), c] as const),
    [hex(printable("edwards25519")), "Ed25519"],
    [hex(printable("edwards448")), "Ed448"]
  ])

  it("any bytes name the curve whose encoding they are, or none", () => {
    const params = FastCheck.oneof(
      anyBytes,
      FastCheck.constantFrom(...[...encodings.keys()].map((text) => Uint8Array.from(Buffer.from(text, "hex"))))
        .chain(mutated)
    )
    FastCheck.assert(
      FastCheck.property(params, (bytes) => {
        const found = Curve.fromEcParams(bytes)
        assert.strictEqual(found, encodings.get(hex(bytes)))
      }),
      { numRuns }
    )
  })
})

describe("CKA_EC_POINT", () => {
  it("a valid point round-trips, wrapped in its OCTET STRING or bare", () => {
    FastCheck.assert(
      FastCheck.property(validPoint, ({ curve, point }) => {
        assert.deepStrictEqual(Curve.decodeEcPoint(curve, Curve.encodeEcPoint(point)), point)
        assert.deepStrictEqual(Curve.decodeEcPoint(curve, point), point)
        assert.isTrue(Curve.isOnCurve(curve, point))
      }),
      { numRuns }
    )
  })

  it("any bytes decode to a point of the curve's size, unwrapped from exactly one OCTET STRING or bare, or to none", () => {
    const value = FastCheck.oneof(
      FastCheck.tuple(curve, anyBytes),
      validPoint.chain(({ curve, point }) =>
        FastCheck.tuple(FastCheck.constant(curve), FastCheck.oneof(mutated(point), mutated(Curve.encodeEcPoint(point))))
      ),
      // A wrapper with a random length byte or a prefix of another curve's point.
      FastCheck.tuple(curve, FastCheck.uint8Array({ minLength: 30, maxLength: 140 })).map(([c, bytes]) =>
        [c, Uint8Array.from([0x04, bytes.length, 0x04, ...bytes])] as const
      )
    )
    FastCheck.assert(
      FastCheck.property(value, ([curve, bytes]) => {
        const point = Curve.decodeEcPoint(curve, bytes)
        if (point === undefined) return
        const spec = Curve.specs[curve]
        assert.strictEqual(point.length, spec.pointSize)
        if (spec.family === "weierstrass") assert.strictEqual(point[0], 0x04)
        const bare = hex(point) === hex(bytes)
        const wrapped = bytes[0] === 0x04 && hex(bytes.subarray(bytes.length - point.length)) === hex(point)
        assert.isTrue(bare || wrapped)
      }),
      { numRuns }
    )
  })

  it("isOnCurve holds for the points of keys and for almost no other bytes of their form", () => {
    let on = 0
    FastCheck.assert(
      FastCheck.property(
        FastCheck.constantFrom(...weierstrass).chain((c) =>
          FastCheck.tuple(
            FastCheck.constant(c),
            FastCheck.uint8Array({ minLength: Curve.specs[c].pointSize - 1, maxLength: Curve.specs[c].pointSize - 1 })
          )
        ),
        ([curve, coordinates]) => {
          if (Curve.isOnCurve(curve, Uint8Array.from([0x04, ...coordinates]))) on++
        }
      ),
      { numRuns }
    )
    assert.isBelow(on, 3)
  })
})

describe("PublicKey.toJwk", () => {
  const keyType = FastCheck.oneof(
    FastCheck.constantFrom(CKK.RSA, CKK.EC, CKK.EC_EDWARDS),
    FastCheck.nat()
  )
  const ecParams = FastCheck.oneof(curve.map(Curve.ecParams), anyBytes)
  const ecPoint = FastCheck.oneof(
    validPoint.map(({ point }) => Curve.encodeEcPoint(point)),
    validPoint.chain(({ point }) => mutated(Curve.encodeEcPoint(point))),
    curve.chain((c) =>
      FastCheck.uint8Array({ minLength: Curve.specs[c].pointSize - 1, maxLength: Curve.specs[c].pointSize - 1 })
        .map((bytes) => Curve.encodeEcPoint(Uint8Array.from([0x04, ...bytes])))
    ),
    anyBytes
  )
  const attributes = FastCheck.record({
    keyType,
    ecParams,
    ecPoint,
    modulus: FastCheck.uint8Array({ maxLength: 300 }),
    publicExponent: FastCheck.uint8Array({ maxLength: 8 })
  }, { requiredKeys: ["keyType"] })

  it("any attributes give a JWK node:crypto imports, or none", () => {
    FastCheck.assert(
      FastCheck.property(attributes, (read) => {
        const jwk = PublicKey.toJwk(read)
        if (jwk === undefined) return
        const imported = nodeImport(jwk)
        assert.notInstanceOf(imported, Error, JSON.stringify(jwk))
      }),
      { numRuns }
    )
  })

  it("a key's own attributes give its JWK", () => {
    FastCheck.assert(
      FastCheck.property(validPoint, ({ curve, point }) => {
        const spec = Curve.specs[curve]
        const jwk = PublicKey.toJwk({
          keyType: spec.family === "edwards" ? CKK.EC_EDWARDS : CKK.EC,
          ecParams: Curve.ecParams(curve),
          ecPoint: Curve.encodeEcPoint(point)
        })
        const expected: PublicKey.PublicJwk = spec.family === "edwards"
          ? { kty: "OKP", crv: curve as "Ed25519", x: b64(point) }
          : {
            kty: "EC",
            crv: curve as "P-256",
            x: b64(point.subarray(1, 1 + spec.size)),
            y: b64(point.subarray(1 + spec.size))
          }
        assert.deepStrictEqual(jwk, expected)
      }),
      { numRuns }
    )
  })

  it("regression: an uncompressed point that is not on the curve gives no JWK (node:crypto threw on it)", () => {
    for (const c of weierstrass) {
      const size = Curve.specs[c].size
      const zeros = Uint8Array.from([0x04, ...new Uint8Array(2 * size)])
      const sevens = Uint8Array.from([0x04, ...new Uint8Array(2 * size).fill(7)])
      for (const point of [zeros, sevens]) {
        const read = { keyType: CKK.EC, ecParams: Curve.ecParams(c), ecPoint: Curve.encodeEcPoint(point) }
        assert.isUndefined(PublicKey.toJwk(read), c)
        assert.isFalse(Curve.isOnCurve(c, point))
      }
    }
  })
})

describe("Attribute.entries", () => {
  const names = [...Object.keys(Attribute.specs), "toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"]
  it("takes the names of attributes only, never a name of Object.prototype", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.dictionary(FastCheck.constantFrom(...names), FastCheck.oneof(FastCheck.boolean(), FastCheck.nat())),
        (record) => {
          for (const [name] of Attribute.entries(record as Attribute.Attributes)) {
            assert.isTrue(Object.hasOwn(Attribute.specs, name), name)
          }
        }
      ),
      { numRuns }
    )
  })

  it("regression: \"constructor\", \"toString\" and \"__proto__\" are not attributes", () => {
    const record = JSON.parse(
      "{\"constructor\": 0, \"toString\": 1, \"__proto__\": 2, \"label\": \"k\"}"
    ) as Attribute.Attributes
    assert.deepStrictEqual(Attribute.entries(record), [["label", "k"]])
  })
})
