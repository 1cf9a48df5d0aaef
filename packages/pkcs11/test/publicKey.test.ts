import { assert, describe, it } from "@effect/vitest"
import { Constants, Curve } from "@hsmkey/pkcs11"
import * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import * as Crypto from "node:crypto"

const { CKK } = Constants
const bytes = (text: string | undefined) => new Uint8Array(Buffer.from(text ?? "", "base64url"))

describe("PublicKey.toJwk", () => {
  it("gives the JWK node:crypto exports, for RSA, EC and Edwards keys", () => {
    const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" })
    // Tokens may return integers with a leading zero byte; JWK has none.
    const modulus = Uint8Array.from([0, ...bytes(rsa.n)])
    assert.deepStrictEqual(
      PublicKey.toJwk({ keyType: CKK.RSA, modulus, publicExponent: Uint8Array.from([0, 1, 0, 1]) }),
      { kty: "RSA", e: rsa.e!, n: rsa.n! }
    )
    for (const curve of ["P-256", "P-384", "P-521"] as const) {
      const jwk = Crypto.generateKeyPairSync("ec", { namedCurve: Curve.specs[curve].nodeName }).publicKey.export({
        format: "jwk"
      })
      const point = Uint8Array.from([0x04, ...bytes(jwk.x), ...bytes(jwk.y)])
      assert.deepStrictEqual(
        PublicKey.toJwk({ keyType: CKK.EC, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(point) }),
        { kty: "EC", crv: curve, x: jwk.x!, y: jwk.y! }
      )
    }
    for (const curve of ["Ed25519", "Ed448"] as const) {
      const pair = curve === "Ed25519" ? Crypto.generateKeyPairSync("ed25519") : Crypto.generateKeyPairSync("ed448")
      const jwk = pair.publicKey.export({ format: "jwk" })
      assert.deepStrictEqual(
        PublicKey.toJwk({ keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), ecPoint: bytes(jwk.x) }),
        { kty: "OKP", crv: curve, x: jwk.x! }
      )
    }
  })

  it("is undefined for incomplete or inconsistent attributes", () => {
    assert.isUndefined(PublicKey.toJwk({ keyType: CKK.RSA, modulus: new Uint8Array([1]) }))
    assert.isUndefined(PublicKey.toJwk({ keyType: CKK.EC, ecParams: Curve.ecParams("P-256") }))
    assert.isUndefined(
      PublicKey.toJwk({ keyType: CKK.EC, ecParams: Curve.ecParams("Ed25519"), ecPoint: new Uint8Array(32) })
    )
    assert.isUndefined(
      PublicKey.toJwk({ keyType: CKK.EC, ecParams: Curve.ecParams("P-256"), ecPoint: new Uint8Array(10) })
    )
    assert.isUndefined(PublicKey.toJwk({ keyType: CKK.AES }))
    assert.isUndefined(PublicKey.toJwk({}))
  })
})
