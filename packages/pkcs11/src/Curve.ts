/**
 * The elliptic curves hsmkey uses and their PKCS#11 encodings: `CKA_EC_PARAMS` (a DER OID, or for
 * Edwards curves also a printable curve name) and `CKA_EC_POINT` (a DER OCTET STRING around the point,
 * or the bare point on some tokens).
 *
 * @since 0.1.0
 */
import { p256, p384, p521 } from "@noble/curves/nist.js"

/**
 * A curve, named as in JOSE (`crv`).
 *
 * @since 0.1.0
 * @category models
 */
export type Curve = "P-256" | "P-384" | "P-521" | "Ed25519" | "Ed448"

/**
 * What hsmkey needs to know of a curve.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spec {
  readonly curve: Curve
  /** Weierstrass curves sign with ECDSA (`CKK_EC`), Edwards curves with EdDSA (`CKK_EC_EDWARDS`). */
  readonly family: "weierstrass" | "edwards"
  /** The DER encoding of the curve's OID, as `CKA_EC_PARAMS` holds it. */
  readonly oid: string
  /** The name OpenSSL and node:crypto use. */
  readonly nodeName: string
  /** The size of a field element (and of a private scalar) in bytes. */
  readonly size: number
  /** The size of a public point as `CKA_EC_POINT` carries it without the DER wrapper. */
  readonly pointSize: number
  /** The size of a signature: `r ‖ s` for ECDSA, as JWS wants it. */
  readonly signatureSize: number
}

/**
 * Every supported curve.
 *
 * @since 0.1.0
 * @category constants
 */
export const specs: { readonly [C in Curve]: Spec } = {
  "P-256": {
    curve: "P-256",
    family: "weierstrass",
    oid: "06082a8648ce3d030107",
    nodeName: "prime256v1",
    size: 32,
    pointSize: 65,
    signatureSize: 64
  },
  "P-384": {
    curve: "P-384",
    family: "weierstrass",
    oid: "06052b81040022",
    nodeName: "secp384r1",
    size: 48,
    pointSize: 97,
    signatureSize: 96
  },
  "P-521": {
    curve: "P-521",
    family: "weierstrass",
    oid: "06052b81040023",
    nodeName: "secp521r1",
    size: 66,
    pointSize: 133,
    signatureSize: 132
  },
  "Ed25519": {
    curve: "Ed25519",
    family: "edwards",
    oid: "06032b6570",
    nodeName: "ed25519",
    size: 32,
    pointSize: 32,
    signatureSize: 64
  },
  "Ed448": {
    curve: "Ed448",
    family: "edwards",
    oid: "06032b6571",
    nodeName: "ed448",
    size: 57,
    pointSize: 57,
    signatureSize: 114
  }
}

// PKCS#11 3.0 also names Edwards curves by a DER PrintableString; SoftHSM2 2.6.1 accepts both forms.
const printableNames: ReadonlyMap<string, Curve> = new Map([
  ["edwards25519", "Ed25519"],
  ["edwards448", "Ed448"]
])

/**
 * The `CKA_EC_PARAMS` value for a curve: the DER OID.
 *
 * @since 0.1.0
 * @category encoding
 */
export const ecParams = (curve: Curve): Uint8Array => Uint8Array.from(Buffer.from(specs[curve].oid, "hex"))

/**
 * The curve named by a `CKA_EC_PARAMS` value, or `undefined` for a curve hsmkey does not support (or
 * explicit domain parameters).
 *
 * @example
 * ```ts
 * import { Curve } from "@hsmkey/pkcs11"
 *
 * // CKA_EC_PARAMS holds the curve's OID, DER-encoded.
 * assert.strictEqual(Curve.fromEcParams(Curve.ecParams("P-384")), "P-384")
 * assert.strictEqual(Curve.fromEcParams(new Uint8Array([0x05, 0x00])), undefined)
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromEcParams = (params: Uint8Array): Curve | undefined => {
  const hex = Buffer.from(params).toString("hex")
  for (const spec of Object.values(specs)) {
    if (spec.oid === hex) return spec.curve
  }
  const content = derContent(params, 0x13)
  return content === undefined ? undefined : printableNames.get(Buffer.from(content).toString("latin1"))
}

/**
 * Wraps a public point in the DER OCTET STRING that `CKA_EC_POINT` holds.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeEcPoint = (point: Uint8Array): Uint8Array => {
  const length = point.length
  const header = length < 0x80
    ? [0x04, length]
    : length < 0x100
    ? [0x04, 0x81, length]
    : [0x04, 0x82, length >> 8, length & 0xff]
  const out = new Uint8Array(header.length + length)
  out.set(header, 0)
  out.set(point, header.length)
  return out
}

const weierstrassPoints: ReadonlyMap<Curve, { readonly fromBytes: (bytes: Uint8Array) => unknown }> = new Map([
  ["P-256", p256.Point],
  ["P-384", p384.Point],
  ["P-521", p521.Point]
])

/**
 * Whether a bare uncompressed point `04 ‖ X ‖ Y` (as `decodeEcPoint` gives it) lies on a Weierstrass curve:
 * node:crypto refuses a public key with any other, and no private key has one. Edwards public keys are
 * not checked here (node:crypto takes any bytes of their size), and give `true` when of the curve's size.
 *
 * @since 0.2.0
 * @category decoding
 */
export const isOnCurve = (curve: Curve, point: Uint8Array): boolean => {
  const spec = specs[curve]
  if (point.length !== spec.pointSize) return false
  if (spec.family === "edwards") return true
  const points = weierstrassPoints.get(curve)
  if (points === undefined || point[0] !== 0x04) return false
  try {
    points.fromBytes(point)
    return true
  } catch {
    return false
  }
}

/**
 * The bare public point of a `CKA_EC_POINT` value: the DER OCTET STRING is unwrapped, and a bare point
 * (as some tokens return it) is accepted as is. `undefined` when the value is neither for `curve`:
 * Weierstrass points must be uncompressed (`04 ‖ X ‖ Y`); whether they lie on the curve is `isOnCurve`'s.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeEcPoint = (curve: Curve, value: Uint8Array): Uint8Array | undefined => {
  const spec = specs[curve]
  const valid = (point: Uint8Array) =>
    point.length === spec.pointSize && (spec.family === "edwards" || point[0] === 0x04)
  const content = derContent(value, 0x04)
  if (content !== undefined && valid(content)) return content
  return valid(value) ? value : undefined
}

/**
 * The content of a DER value with the expected tag, when `bytes` is exactly one such value.
 */
const derContent = (bytes: Uint8Array, tag: number): Uint8Array | undefined => {
  if (bytes.length < 2 || bytes[0] !== tag) return undefined
  let length = bytes[1]
  let offset = 2
  if (length >= 0x80) {
    const count = length & 0x7f
    if (count === 0 || count > 2 || bytes.length < 2 + count) return undefined
    length = 0
    for (let i = 0; i < count; i++) length = (length << 8) | bytes[2 + i]
    offset = 2 + count
  }
  return offset + length === bytes.length ? bytes.subarray(offset) : undefined
}
