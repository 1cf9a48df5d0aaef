import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Crypto from "node:crypto"
import { InvalidKeyMaterial, UnsupportedKey } from "../HsmError.js"
import * as Algorithms from "./algorithms.js"
import * as Encoding from "./encoding.js"

/**
 * A private key to import, checked: its type, its public half, and the attributes of the two objects
 * that will hold it.
 */
export interface Importable {
  readonly keyType: Exclude<Algorithms.KeyType, "oct">
  /** The RSA modulus size, or the curve's size in bits. */
  readonly bits: number
  readonly publicJwk: PublicKey.PublicJwk
  readonly publicKey: Attributes
  readonly privateKey: Attributes
}

/** Private key material: a private JWK, PKCS#8 as PEM text or DER bytes, or a `KeyObject`. */
export type Input = { readonly [name: string]: unknown } | string | Uint8Array | Crypto.KeyObject

type Jwk = { readonly [name: string]: unknown }

const invalid = (detail: string) => new InvalidKeyMaterial({ detail })
const unsupported = (detail: string) => new UnsupportedKey({ detail })

const RSA_FIELDS = ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const
const MIN_RSA_BITS = 1024
const MAX_RSA_BITS = 16384

// Maps, not object literals: a JWK's "crv" may be "constructor" or "toString".
const weierstrass: ReadonlyMap<unknown, Curve.Curve> = new Map([["P-256", "P-256"], ["P-384", "P-384"], [
  "P-521",
  "P-521"
]])
const edwards: ReadonlyMap<unknown, Curve.Curve> = new Map([["Ed25519", "Ed25519"], ["Ed448", "Ed448"]])
const nodeCurves: ReadonlyMap<unknown, Curve.Curve> = new Map([
  ["prime256v1", "P-256"],
  ["secp384r1", "P-384"],
  ["secp521r1", "P-521"]
])

// PKCS#8 of an Edwards key is a fixed prefix and the seed (RFC 8410).
const edwardsPkcs8: Record<string, string> = {
  Ed25519: "302e020100300506032b657004220420",
  Ed448: "3047020100300506032b6571043b0439"
}

const field = (jwk: Jwk, name: string): Effect.Effect<Uint8Array, InvalidKeyMaterial> => {
  const value = jwk[name]
  if (typeof value !== "string") return Effect.fail(invalid(`the JWK member "${name}" is missing or not a string`))
  const bytes = Encoding.decodeBase64url(value)
  return bytes === undefined || bytes.length === 0
    ? Effect.fail(invalid(`the JWK member "${name}" is not base64url`))
    : Effect.succeed(bytes)
}

const sized = (jwk: Jwk, name: string, size: number): Effect.Effect<Uint8Array, InvalidKeyMaterial> =>
  Effect.flatMap(field(jwk, name), (bytes) =>
    bytes.length === size
      ? Effect.succeed(bytes)
      : Effect.fail(invalid(`the JWK member "${name}" is ${bytes.length} bytes; ${jwk.crv} takes ${size}`)))

const toBigInt = (bytes: Uint8Array): bigint => BigInt(`0x${Buffer.from(bytes).toString("hex") || "0"}`)

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url")

// Big-endian integers as PKCS#11 stores them: no leading zero bytes.
const unsigned = (bytes: Uint8Array): Uint8Array => {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  return bytes.subarray(i)
}

/**
 * An RSA private JWK whose values agree with each other: n = p·q, and d, dp, dq, qi the exponents and
 * coefficient of that p, q and e. A key that does not would sign what its own JWK does not verify.
 */
const rsa = (jwk: Jwk): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> =>
  Effect.gen(function*() {
    if (jwk.oth !== undefined) return yield* unsupported("multi-prime RSA keys (\"oth\") are not supported")
    const [n, e, d, p, q, dp, dq, qi] = yield* Effect.forEach(RSA_FIELDS, (name) => field(jwk, name))
    const bits = unsigned(n).length * 8
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      return yield* invalid(`an RSA modulus of ${bits} bits; hsmkey imports ${MIN_RSA_BITS} to ${MAX_RSA_BITS}`)
    }
    const [N, E, D, P, Q, DP, DQ, QI] = [n, e, d, p, q, dp, dq, qi].map(toBigInt)
    const consistent = E > 1n && E % 2n === 1n && P > 1n && Q > 1n && P * Q === N &&
      D % (P - 1n) === DP && D % (Q - 1n) === DQ && (E * DP) % (P - 1n) === 1n && (E * DQ) % (Q - 1n) === 1n &&
      (QI * Q) % P === 1n
    if (!consistent) return yield* invalid("the RSA private values do not belong together (n, e, d, p, q, dp, dq, qi)")
    const common = { keyType: CKK.RSA, modulus: unsigned(n), publicExponent: unsigned(e) }
    return {
      keyType: "RSA" as const,
      bits: N.toString(2).length,
      publicJwk: { kty: "RSA", n: b64(unsigned(n)), e: b64(unsigned(e)) },
      publicKey: common,
      privateKey: {
        ...common,
        privateExponent: unsigned(d),
        prime1: unsigned(p),
        prime2: unsigned(q),
        exponent1: unsigned(dp),
        exponent2: unsigned(dq),
        coefficient: unsigned(qi)
      }
    } satisfies Importable
  })

/**
 * An EC private JWK whose point is the one its scalar makes. node:crypto never sees the JWK itself: Node
 * 20 aborts the process (SIGABRT) on some malformed EC JWKs, such as a P-256 `d` of 33 or 64 bytes.
 */
const ec = (jwk: Jwk, curve: Curve.Curve): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const spec = Curve.specs[curve]
    const x = yield* sized(jwk, "x", spec.size)
    const y = yield* sized(jwk, "y", spec.size)
    const d = yield* sized(jwk, "d", spec.size)
    const point = yield* Effect.try({
      try: () => {
        const ecdh = Crypto.createECDH(spec.nodeName)
        ecdh.setPrivateKey(Buffer.from(d))
        return new Uint8Array(ecdh.getPublicKey())
      },
      catch: () => invalid(`"d" is not a private key of ${curve}`)
    })
    if (!Buffer.from(point).equals(Buffer.concat([Buffer.from([4]), x, y]))) {
      return yield* invalid(`"x" and "y" are not the public point of "d" on ${curve}`)
    }
    return {
      keyType: curve,
      bits: Algorithms.curveBits[curve],
      publicJwk: { kty: "EC", crv: curve, x: b64(x), y: b64(y) } as PublicKey.PublicJwk,
      publicKey: { keyType: CKK.EC, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(point) },
      privateKey: { keyType: CKK.EC, ecParams: Curve.ecParams(curve), value: d }
    } satisfies Importable
  })

/** An Edwards private JWK whose public key is the one its seed makes. */
const okp = (jwk: Jwk, curve: Curve.Curve): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const size = Curve.specs[curve].size
    const x = yield* sized(jwk, "x", size)
    const d = yield* sized(jwk, "d", size)
    const derived = yield* Effect.try({
      try: () => {
        const der = Buffer.concat([Buffer.from(edwardsPkcs8[curve], "hex"), d])
        const key = Crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" })
        return Crypto.createPublicKey(key).export({ format: "jwk" }).x
      },
      catch: () => invalid(`"d" is not a private key of ${curve}`)
    })
    if (derived !== b64(x)) return yield* invalid(`"x" is not the public key of "d" on ${curve}`)
    return {
      keyType: curve,
      bits: Algorithms.curveBits[curve],
      publicJwk: { kty: "OKP", crv: curve, x: b64(x) } as PublicKey.PublicJwk,
      publicKey: { keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(x) },
      privateKey: { keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), value: d }
    } satisfies Importable
  })

const fromJwk = (jwk: Jwk): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (jwk.d === undefined) return Effect.fail(invalid("the JWK has no private part (\"d\")"))
  switch (jwk.kty) {
    case "RSA":
      return rsa(jwk)
    case "EC": {
      const curve = weierstrass.get(jwk.crv)
      return curve === undefined
        ? Effect.fail(unsupported(`EC curve ${String(jwk.crv)} is not supported`))
        : ec(jwk, curve)
    }
    case "OKP": {
      const curve = edwards.get(jwk.crv)
      return curve === undefined
        ? Effect.fail(
          unsupported(`OKP curve ${String(jwk.crv)} is not supported (hsmkey signs with Ed25519 and Ed448)`)
        )
        : okp(jwk, curve)
    }
    case "oct":
      return Effect.fail(unsupported("an oct JWK is a secret: import it with HsmJwk.importSecret"))
    default:
      return typeof jwk.kty === "string"
        ? Effect.fail(unsupported(`${jwk.kty} keys are not supported`))
        : Effect.fail(invalid("the JWK has no \"kty\""))
  }
}

const unsupportedTypes: Record<string, string> = {
  "rsa-pss": "RSASSA-PSS keys (id-RSASSA-PSS) are not supported: import the key as plain RSA (rsaEncryption)",
  "dsa": "DSA keys are not supported",
  "dh": "Diffie-Hellman keys are not supported",
  "x25519": "X25519 keys agree on keys and cannot sign",
  "x448": "X448 keys agree on keys and cannot sign"
}

/**
 * A node:crypto private key: only the types hsmkey signs with reach its JWK export, and then the same
 * checks as a JWK given directly.
 */
const fromKeyObject = (key: Crypto.KeyObject): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (key.type !== "private") return Effect.fail(invalid(`a ${key.type} KeyObject is not a private key`))
  const type = key.asymmetricKeyType ?? "unknown"
  if (type === "ec") {
    const curve = nodeCurves.get(key.asymmetricKeyDetails?.namedCurve)
    if (curve === undefined) {
      return Effect.fail(
        unsupported(`EC curve ${key.asymmetricKeyDetails?.namedCurve ?? "(explicit)"} is not supported`)
      )
    }
  } else if (type !== "rsa" && type !== "ed25519" && type !== "ed448") {
    return Effect.fail(unsupported(
      Object.hasOwn(unsupportedTypes, type) ? unsupportedTypes[type] : `${type} keys are not supported`
    ))
  }
  return Effect.flatMap(
    Effect.try({
      try: () => key.export({ format: "jwk" }) as Jwk,
      catch: (error) => invalid(error instanceof Error ? error.message : String(error))
    }),
    fromJwk
  )
}

const parsePkcs8 = (input: string | Uint8Array): Effect.Effect<Crypto.KeyObject, InvalidKeyMaterial> =>
  Effect.try({
    try: () =>
      typeof input === "string"
        ? Crypto.createPrivateKey({ key: input, format: "pem" })
        : Crypto.createPrivateKey({ key: Buffer.from(input), format: "der", type: "pkcs8" }),
    catch: (error) => invalid(`not a PKCS#8 private key: ${error instanceof Error ? error.message : String(error)}`)
  })

/**
 * Checks private key material before anything is created on the token: its shape and sizes per key type
 * (before node:crypto sees it), its type (RSA, P-256/384/521, Ed25519, Ed448), and that its public half is
 * the one its private half makes.
 */
export const parse = (input: Input): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (input instanceof Crypto.KeyObject) return fromKeyObject(input)
  if (typeof input === "string" || input instanceof Uint8Array) return Effect.flatMap(parsePkcs8(input), fromKeyObject)
  if (!Predicate.isRecord(input)) {
    return Effect.fail(invalid("expected a private JWK, PKCS#8 (PEM or DER) or a KeyObject"))
  }
  return fromJwk(input)
}
