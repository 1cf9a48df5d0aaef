/**
 * Public keys as a token describes them: `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT` for RSA, and
 * `CKA_EC_PARAMS` with `CKA_EC_POINT` for EC and Edwards keys, turned into a public JWK that jose and
 * node:crypto import as it is.
 *
 * @since 0.1.0
 */
import type * as Attribute from "../Attribute.js"
import { CKK } from "../Constants.js"
import * as Curve from "../Curve.js"
import * as Bytes from "./bytes.js"

/**
 * The attributes `toJwk` reads; ask the token for these.
 *
 * @since 0.1.0
 * @category constants
 */
export const attributeNames = ["keyType", "modulus", "publicExponent", "ecParams", "ecPoint"] as const

/**
 * A public JWK (RFC 7517, RFC 8037), members as RFC 7638 orders them for a thumbprint.
 *
 * @since 0.1.0
 * @category models
 */
export type PublicJwk =
  | { readonly kty: "RSA"; readonly e: string; readonly n: string }
  | { readonly kty: "EC"; readonly crv: "P-256" | "P-384" | "P-521"; readonly x: string; readonly y: string }
  | { readonly kty: "OKP"; readonly crv: "Ed25519" | "Ed448"; readonly x: string }

const base64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url")

/**
 * The public JWK of a key from its attributes, or `undefined` when they do not describe an RSA, EC
 * (P-256, P-384, P-521, a point on the curve) or Edwards (Ed25519, Ed448) public key hsmkey supports.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toJwk = (attributes: Attribute.Read<(typeof attributeNames)[number]>): PublicJwk | undefined => {
  switch (attributes.keyType) {
    case CKK.RSA: {
      const { modulus, publicExponent } = attributes
      if (modulus === undefined || publicExponent === undefined) return undefined
      return { kty: "RSA", e: base64url(Bytes.unsigned(publicExponent)), n: base64url(Bytes.unsigned(modulus)) }
    }
    case CKK.EC:
    case CKK.EC_EDWARDS: {
      const curve = attributes.ecParams === undefined ? undefined : Curve.fromEcParams(attributes.ecParams)
      if (curve === undefined || attributes.ecPoint === undefined) return undefined
      const point = Curve.decodeEcPoint(curve, attributes.ecPoint)
      // A token may hold any bytes there (C_CreateObject need not check them); node:crypto takes no point off the curve.
      if (point === undefined || !Curve.isOnCurve(curve, point)) return undefined
      switch (curve) {
        case "Ed25519":
        case "Ed448":
          return attributes.keyType === CKK.EC_EDWARDS ? { kty: "OKP", crv: curve, x: base64url(point) } : undefined
        default: {
          if (attributes.keyType !== CKK.EC) return undefined
          const size = Curve.specs[curve].size
          return {
            kty: "EC",
            crv: curve,
            x: base64url(point.subarray(1, 1 + size)),
            y: base64url(point.subarray(1 + size))
          }
        }
      }
    }
    default:
      return undefined
  }
}
