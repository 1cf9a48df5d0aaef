import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Crypto from "node:crypto"
import { InvalidKeyMaterial, UnsupportedKey } from "../HsmError.js"
import * as Algorithms from "./algorithms.js"
import * as Bytes from "./bytes.js"
import * as Encoding from "./encoding.js"
import * as Options from "./options.js"

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

const sized = (
  bytes: Uint8Array,
  name: string,
  curve: Curve.Curve
): Effect.Effect<Uint8Array, InvalidKeyMaterial> => {
  const size = Curve.specs[curve].size
  return bytes.length === size
    ? Effect.succeed(bytes)
    : Effect.fail(invalid(`the JWK member "${name}" is ${bytes.length} bytes; ${curve} takes ${size}`))
}

const sizedField = (jwk: Jwk, name: string, curve: Curve.Curve): Effect.Effect<Uint8Array, InvalidKeyMaterial> =>
  Effect.flatMap(field(jwk, name), (bytes) => sized(bytes, name, curve))

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url")

/** The values of a two-prime RSA private key, big-endian. */
interface RsaValues {
  readonly n: Uint8Array
  readonly e: Uint8Array
  readonly d: Uint8Array
  readonly p: Uint8Array
  readonly q: Uint8Array
  readonly dp: Uint8Array
  readonly dq: Uint8Array
  readonly qi: Uint8Array
}

/**
 * An RSA private key whose values agree with each other: n = p·q, and d, dp, dq, qi the exponents and
 * coefficient of that p, q and e. A key that does not would sign what its own JWK does not verify.
 */
const rsa = (values: RsaValues): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const n = Bytes.unsigned(values.n)
    const bits = n.length * 8
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      return yield* invalid(`an RSA modulus of ${bits} bits; hsmkey imports ${MIN_RSA_BITS} to ${MAX_RSA_BITS}`)
    }
    // Each value is less than n: a longer one is not this key's, and would cost seconds of arithmetic.
    const longer = RSA_FIELDS.find((name) => Bytes.unsigned(values[name]).length > n.length)
    if (longer !== undefined) return yield* invalid(`the RSA value "${longer}" is longer than the modulus`)
    const [N, E, D, P, Q, DP, DQ, QI] = RSA_FIELDS.map((name) => Bytes.toBigInt(values[name]))
    const consistent = E > 1n && E % 2n === 1n && P > 1n && Q > 1n && P * Q === N &&
      D % (P - 1n) === DP && D % (Q - 1n) === DQ && (E * DP) % (P - 1n) === 1n && (E * DQ) % (Q - 1n) === 1n &&
      (QI * Q) % P === 1n
    if (!consistent) return yield* invalid("the RSA private values do not belong together (n, e, d, p, q, dp, dq, qi)")
    const common = { keyType: CKK.RSA, modulus: n, publicExponent: Bytes.unsigned(values.e) }
    return {
      keyType: "RSA" as const,
      bits: N.toString(2).length,
      publicJwk: { kty: "RSA", n: b64(n), e: b64(Bytes.unsigned(values.e)) },
      publicKey: common,
      privateKey: {
        ...common,
        privateExponent: Bytes.unsigned(values.d),
        prime1: Bytes.unsigned(values.p),
        prime2: Bytes.unsigned(values.q),
        exponent1: Bytes.unsigned(values.dp),
        exponent2: Bytes.unsigned(values.dq),
        coefficient: Bytes.unsigned(values.qi)
      }
    } satisfies Importable
  })

/**
 * An EC private key (`d` of the curve's size) whose public point is the one its scalar makes. node:crypto
 * sees only the scalar, never the JWK: Node 20 aborts the process (SIGABRT) on some malformed EC JWKs, such
 * as a P-256 `d` of 33 bytes.
 */
const ec = (
  curve: Curve.Curve,
  d: Uint8Array,
  point: Uint8Array
): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const spec = Curve.specs[curve]
    const derived = yield* Effect.try({
      try: () => {
        const ecdh = Crypto.createECDH(spec.nodeName)
        ecdh.setPrivateKey(Buffer.from(d))
        return new Uint8Array(ecdh.getPublicKey())
      },
      catch: () => invalid(`"d" is not a private key of ${curve}`)
    })
    if (!Buffer.from(point).equals(derived)) {
      return yield* invalid(`the public point is not the one "d" makes on ${curve}`)
    }
    return {
      keyType: curve,
      bits: Algorithms.curveBits[curve],
      publicJwk: {
        kty: "EC",
        crv: curve,
        x: b64(derived.subarray(1, 1 + spec.size)),
        y: b64(derived.subarray(1 + spec.size))
      } as PublicKey.PublicJwk,
      publicKey: { keyType: CKK.EC, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(derived) },
      privateKey: { keyType: CKK.EC, ecParams: Curve.ecParams(curve), value: d }
    } satisfies Importable
  })

/** An Edwards private key (its seed) whose public key is the one its seed makes. */
const okp = (
  curve: Curve.Curve,
  d: Uint8Array,
  x: Uint8Array
): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const derived = yield* Effect.try({
      try: () => {
        const der = Buffer.concat([Buffer.from(edwardsPkcs8[curve], "hex"), d])
        const key = Crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" })
        return Buffer.from(Crypto.createPublicKey(key).export({ format: "jwk" }).x ?? "", "base64url")
      },
      catch: () => invalid(`"d" is not a private key of ${curve}`)
    })
    if (!derived.equals(x)) {
      return yield* invalid(`the public key is not the one "d" makes on ${curve}`)
    }
    return {
      keyType: curve,
      bits: Algorithms.curveBits[curve],
      publicJwk: { kty: "OKP", crv: curve, x: b64(derived) } as PublicKey.PublicJwk,
      publicKey: { keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(derived) },
      privateKey: { keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), value: d }
    } satisfies Importable
  })

const fromJwk = (jwk: Jwk): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (jwk.d === undefined) return Effect.fail(invalid("the JWK has no private part (\"d\")"))
  switch (jwk.kty) {
    case "RSA":
      return jwk.oth !== undefined
        ? Effect.fail(unsupported("multi-prime RSA keys (\"oth\") are not supported"))
        : Effect.flatMap(
          Effect.forEach(RSA_FIELDS, (name) => field(jwk, name)),
          ([n, e, d, p, q, dp, dq, qi]) => rsa({ n, e, d, p, q, dp, dq, qi })
        )
    case "EC": {
      const curve = weierstrass.get(jwk.crv)
      if (curve === undefined) {
        return Effect.fail(unsupported(`EC curve ${Options.shown(jwk.crv)} is not supported`))
      }
      return Effect.gen(function*() {
        const x = yield* sizedField(jwk, "x", curve)
        const y = yield* sizedField(jwk, "y", curve)
        const d = yield* sizedField(jwk, "d", curve)
        return yield* ec(curve, d, Uint8Array.from([4, ...x, ...y]))
      })
    }
    case "OKP": {
      const curve = edwards.get(jwk.crv)
      if (curve === undefined) {
        return Effect.fail(unsupported(
          `OKP curve ${Options.shown(jwk.crv)} is not supported (hsmkey signs with Ed25519 and Ed448)`
        ))
      }
      return Effect.gen(function*() {
        const x = yield* sizedField(jwk, "x", curve)
        const d = yield* sizedField(jwk, "d", curve)
        return yield* okp(curve, d, x)
      })
    }
    case "oct":
      return Effect.fail(unsupported("an oct JWK is a secret: import it with HsmSecret.importSecret"))
    default:
      return typeof jwk.kty === "string"
        ? Effect.fail(unsupported(`${Options.shown(jwk.kty)} keys are not supported`))
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

const nodeCurves: ReadonlyMap<unknown, Curve.Curve> = new Map(
  Object.values(Curve.specs).filter((spec) => spec.family === "weierstrass").map((spec) => [spec.nodeName, spec.curve])
)

const reason = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * A node:crypto private key, read through its JWK export and then checked as a JWK given directly. Node 20
 * aborts the process (SIGABRT) reading the `asymmetricKeyDetails` or the JWK of an EC key whose scalar has
 * more significant bytes than its curve's size (a P-256 `d` of 33 bytes), which it parses without a word;
 * its PKCS#8 export throws on exactly those keys, and is asked first.
 */
const fromKeyObject = (key: Crypto.KeyObject): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> =>
  Effect.gen(function*() {
    if (key.type !== "private") return yield* invalid(`a ${key.type} KeyObject is not a private key`)
    yield* Effect.try({
      try: () => key.export({ format: "der", type: "pkcs8" }),
      catch: (error) => invalid(`node:crypto cannot read the private key: ${reason(error)}`)
    })
    const type = key.asymmetricKeyType ?? "unknown"
    if (type === "ec") {
      const named = key.asymmetricKeyDetails?.namedCurve
      if (!nodeCurves.has(named)) {
        return yield* unsupported(
          `EC curve ${named ?? "(explicit parameters)"} is not supported (P-256, P-384 and P-521 are)`
        )
      }
    } else if (type !== "rsa" && type !== "ed25519" && type !== "ed448") {
      return yield* unsupported(
        Object.hasOwn(unsupportedTypes, type) ? unsupportedTypes[type] : `${type} keys are not supported`
      )
    }
    const jwk = yield* Effect.try({
      try: () => key.export({ format: "jwk" }) as Jwk,
      catch: (error) => invalid(`node:crypto cannot read the private key: ${reason(error)}`)
    })
    return yield* fromJwk(jwk)
  })

// What node:crypto parses in linear time still need not be megabytes: the largest RSA key hsmkey imports
// (16,384 bits) is 13 KB of PEM.
const MAX_ENCODED = 64 * 1024

// node:crypto's answer to an encrypted key read without a passphrase.
const passphraseCodes: ReadonlySet<unknown> = new Set([
  "ERR_MISSING_PASSPHRASE",
  "ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED"
])

/** PEM text (PKCS#8, SEC 1 or PKCS#1) or PKCS#8 DER bytes, parsed by node:crypto. */
const parseEncoded = (input: string | Uint8Array): Effect.Effect<Crypto.KeyObject, InvalidKeyMaterial> =>
  input.length > MAX_ENCODED
    ? Effect.fail(
      invalid(`${input.length} ${typeof input === "string" ? "characters" : "bytes"} are more than a key takes`)
    )
    : Effect.try({
      try: () =>
        typeof input === "string"
          ? Crypto.createPrivateKey({ key: input, format: "pem" })
          : Crypto.createPrivateKey({ key: Buffer.from(input), format: "der", type: "pkcs8" }),
      catch: (error) =>
        Predicate.hasProperty(error, "code") && passphraseCodes.has(error.code)
          ? invalid("the private key is encrypted: decrypt it first (openssl pkey)")
          : invalid(`not a private key (PEM text or PKCS#8 DER): ${reason(error)}`)
    })

/**
 * Checks private key material before anything is created on the token: its shape and sizes per key type
 * (a JWK's before node:crypto sees it), its type (RSA, P-256/384/521, Ed25519, Ed448), and that its public
 * half is the one its private half makes.
 */
export const parse = (input: unknown): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (input instanceof Crypto.KeyObject) return fromKeyObject(input)
  if (typeof input === "string" || input instanceof Uint8Array) {
    return Effect.flatMap(parseEncoded(input), fromKeyObject)
  }
  if (!Predicate.isRecord(input)) {
    return Effect.fail(invalid("expected a private JWK, PKCS#8 (PEM or DER) or a KeyObject"))
  }
  return fromJwk(input)
}
