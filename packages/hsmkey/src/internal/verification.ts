import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import { type InvalidOptions, VerificationFailed } from "../HsmError.js"
import * as HsmJwk from "../HsmJwk.js"
import * as Encoding from "./encoding.js"
import * as Options from "./options.js"

/** What `Jws.verify` and `Jwt.verify` take as a key. */
export type VerificationKey =
  | HsmJwk.HsmJwk
  | Crypto.KeyObject
  | jose.CryptoKey
  | jose.JWK
  | jose.JSONWebKeySet

/** An Ed448 public key: jose has no Ed448, so node:crypto verifies with it. */
export interface Ed448Key {
  readonly key: Crypto.KeyObject
  /** Set for a key of a JWK set: a signature whose header names a `kid` is checked by that key only. */
  readonly kid: string | undefined
  readonly fromSet: boolean
}

/**
 * A verification key split by who verifies with it, and the algorithms a signature may use.
 */
export interface Resolved {
  readonly ed448: ReadonlyArray<Ed448Key>
  /** `undefined` when every key is Ed448. */
  readonly jose: Crypto.KeyObject | jose.CryptoKey | jose.JWK | ReturnType<typeof jose.createLocalJWKSet> | undefined
  /** The caller's list, else an `HsmJwk`'s own `alg`: RFC 8725 §3.1, one algorithm per key. */
  readonly algorithms: ReadonlyArray<string> | undefined
}

const isJwks = (key: unknown): key is jose.JSONWebKeySet =>
  Predicate.hasProperty(key, "keys") && Array.isArray(key.keys)

const isEd448Jwk = (jwk: unknown): jwk is jose.JWK =>
  Predicate.isRecord(jwk) && jwk.kty === "OKP" && jwk.crv === "Ed448"

// A JWK set's key takes part only if its `use`, `key_ops` and `alg` allow verifying EdDSA signatures, read
// as jose reads them for the other keys of a set.
const verifiesSignatures = (jwk: jose.JWK) =>
  (jwk.use === undefined || jwk.use === "sig") &&
  (jwk.key_ops === undefined || (Array.isArray(jwk.key_ops) && jwk.key_ops.includes("verify"))) &&
  (jwk.alg === undefined || jwk.alg === "EdDSA")

const malformedSet = (detail: string) => new VerificationFailed({ code: "ERR_JWKS_INVALID", detail })

// jose's createLocalJWKSet throws on a set it cannot read (an entry that is not a JSON object, a value
// structuredClone refuses): a caller's set, so its own failure, never a defect.
const localSet = (
  keys: Array<jose.JWK>
): Effect.Effect<ReturnType<typeof jose.createLocalJWKSet>, VerificationFailed> =>
  Effect.try({
    try: () => jose.createLocalJWKSet({ keys }),
    catch: (error) => malformedSet(error instanceof Error ? error.message : String(error))
  })

const importEd448 = (jwk: jose.JWK): Effect.Effect<Crypto.KeyObject, VerificationFailed> =>
  Effect.try({
    try: () => Crypto.createPublicKey({ key: jwk as Crypto.JsonWebKey, format: "jwk" }),
    catch: () => new VerificationFailed({ code: "ERR_JWK_INVALID", detail: "an Ed448 JWK is not a public key" })
  })

/**
 * Splits a verification key: Ed448 keys for node:crypto, the rest for jose. An `HsmJwk` for encryption
 * is refused, and one for signatures allows its own algorithm only, unless the caller lists others.
 */
export const resolve = (
  key: VerificationKey,
  algorithms: ReadonlyArray<string> | undefined
): Effect.Effect<Resolved, VerificationFailed> =>
  Effect.gen(function*() {
    if (HsmJwk.isHsmJwk(key)) {
      if (key.use === "enc") {
        return yield* new VerificationFailed({
          code: "ERR_JWK_INVALID",
          detail: `key ${key.kid} is an encryption key ("use": "enc"), not a signature key`
        })
      }
      const pinned = algorithms ?? [key.alg]
      return key.keyType === "Ed448"
        ? { ed448: [{ key: key.publicKey, kid: undefined, fromSet: false }], jose: undefined, algorithms: pinned }
        : { ed448: [], jose: key.publicKey, algorithms: pinned }
    }
    if (isJwks(key)) {
      const notJwk = key.keys.findIndex((jwk) => !Encoding.isPlainObject(jwk))
      if (notJwk >= 0) {
        return yield* malformedSet(`key ${notJwk} of the JWK set is ${Options.kindOf(key.keys[notJwk])}, not a JWK`)
      }
      const ed448 = yield* Effect.forEach(
        key.keys.filter((jwk) => isEd448Jwk(jwk) && verifiesSignatures(jwk)),
        (jwk) => Effect.map(importEd448(jwk), (imported): Ed448Key => ({ key: imported, kid: jwk.kid, fromSet: true }))
      )
      const others = key.keys.filter((jwk) => !isEd448Jwk(jwk))
      const set = others.length > 0 || ed448.length === 0 ? yield* localSet(others) : undefined
      return { ed448, jose: set, algorithms }
    }
    if (isEd448Jwk(key)) {
      return { ed448: [{ key: yield* importEd448(key), kid: undefined, fromSet: false }], jose: undefined, algorithms }
    }
    if (Predicate.hasProperty(key, "asymmetricKeyType") && key.asymmetricKeyType === "ed448") {
      return { ed448: [{ key: key as Crypto.KeyObject, kid: undefined, fromSet: false }], jose: undefined, algorithms }
    }
    return { ed448: [], jose: key as Crypto.KeyObject | jose.CryptoKey | jose.JWK, algorithms }
  })

/**
 * Whether an Ed448 key of `resolved` verifies a signature with this header, choosing keys of a JWK set
 * by `kid` as jose does.
 */
export const ed448Verifies = (
  resolved: Resolved,
  header: { readonly alg: string; readonly kid?: unknown },
  input: Uint8Array,
  signature: Uint8Array
): boolean => {
  if (header.alg !== "EdDSA" || (resolved.algorithms !== undefined && !resolved.algorithms.includes("EdDSA"))) {
    return false
  }
  return resolved.ed448.some((candidate) =>
    (!candidate.fromSet || typeof header.kid !== "string" || candidate.kid === header.kid) &&
    Crypto.verify(null, input, candidate.key, signature)
  )
}

/** The options `Jws.verify` and `Jwt.verify` share, checked before jose reads them. */
export const verifyOptions = {
  algorithms: Options.optional(Encoding.isStringArray, "an array of algorithm names"),
  crit: Options.optional(
    (u) => Encoding.isPlainObject(u) && Object.values(u).every(Predicate.isBoolean),
    "an object of extension names to booleans"
  )
}

/**
 * Why options of a verification are not what jose takes, or `undefined` when they are: checked before
 * jose, whose `TypeError` would read as a bad signature, or whose lookups would run on what is not a list.
 */
export const optionsProblem = (options: unknown): InvalidOptions | undefined =>
  Options.problem("verification options", options, verifyOptions, "allowed")

/**
 * A verification jose passed, refused when its protected header's `crit` names an extension twice (RFC 7515
 * §4.1.11: a list of names, each the name of one parameter), which jose accepts.
 */
export const refuseDuplicateCrit = <A extends { readonly protectedHeader: { readonly crit?: unknown } }>(
  verified: A
): Effect.Effect<A, VerificationFailed> => {
  const crit = verified.protectedHeader.crit
  return Array.isArray(crit) && new Set(crit).size !== crit.length
    ? Effect.fail(
      new VerificationFailed({ code: "ERR_JWS_INVALID", detail: "\"crit\" names a header parameter twice" })
    )
    : Effect.succeed(verified)
}

/**
 * Runs a jose verification, its failures typed.
 */
export const viaJose = <A>(run: () => Promise<A>): Effect.Effect<A, VerificationFailed> =>
  Effect.tryPromise({
    try: run,
    catch: (error) =>
      error instanceof jose.errors.JOSEError
        ? new VerificationFailed({ code: error.code, detail: error.message })
        : new VerificationFailed({
          code: "ERR_INVALID_INPUT",
          detail: error instanceof Error ? error.message : String(error)
        })
  })
