/**
 * JSON Web Signatures (RFC 7515) signed inside the token: compact, flattened and general JSON
 * serializations, and their verification through jose.
 *
 * jose cannot sign with a key it cannot hold, so hsmkey assembles the JWS itself: it builds the protected
 * header (always the real `alg`, and the key's `kid` unless told otherwise), encodes it and the payload
 * with jose's base64url, and has the token sign `BASE64URL(header) . BASE64URL(payload)`. Verification
 * with a public key needs no token and is jose's (node:crypto's for Ed448); an HMAC is checked inside the
 * token, with the secret there.
 *
 * Signing runs in the session in context (`SessionPool.withSession`) when it is on the key's token, and
 * otherwise in one borrowed from the `SessionPool` in context.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as jose from "jose"
import type { SigningKey } from "./Algorithm.js"
import {
  type AlgorithmMismatch,
  InvalidHeader,
  InvalidOptions,
  type InvalidSignature,
  type KeyAmbiguous,
  type KeyNotFound,
  type MechanismUnsupported,
  type UnsupportedAlgorithm,
  VerificationFailed
} from "./HsmError.js"
import * as HsmJwk from "./HsmJwk.js"
import * as HsmSecret from "./HsmSecret.js"
import { CurrentSession } from "./HsmSession.js"
import type * as Algorithms from "./internal/algorithms.js"
import * as Borrow from "./internal/borrow.js"
import * as Encoding from "./internal/encoding.js"
import * as JwsParse from "./internal/jwsParse.js"
import * as Options from "./internal/options.js"
import * as Policy from "./internal/policy.js"
import * as TokenSigner from "./internal/signer.js"
import * as Tracing from "./internal/tracing.js"
import * as Verification from "./internal/verification.js"
import { type AcquireError, SessionPool } from "./SessionPool.js"

/**
 * A payload: bytes, or text signed as UTF-8.
 *
 * @since 0.1.0
 * @category models
 */
export type Payload = string | Uint8Array

/**
 * A JOSE header: a JSON object.
 *
 * @since 0.1.0
 * @category models
 */
export type Header = { readonly [name: string]: unknown }

/**
 * How one signature is made.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignatureOptions {
  /** Defaults to the key's algorithm. */
  readonly alg?: string | undefined
  readonly protectedHeader?: Header | undefined
  /** Not in compact serializations. */
  readonly unprotectedHeader?: Header | undefined
  /**
   * Put the key's `kid` in the protected header (default `true`); a `kid` in `protectedHeader` wins,
   * and a `kid` in `unprotectedHeader` keeps it out.
   */
  readonly kid?: boolean | undefined
}

/**
 * What signing can fail with: an algorithm or header that cannot be signed, a token that cannot compute
 * it, a key that is no longer on the token, a session that cannot be had, and what a caller passes wrong
 * (`InvalidOptions`: options, a payload, or a key that is no `HsmJwk` or `HsmSecretKey`).
 *
 * @since 0.1.0
 * @category models
 */
export type SignError =
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | InvalidHeader
  | MechanismUnsupported
  | InvalidSignature
  | KeyNotFound
  | KeyAmbiguous
  | InvalidOptions
  | AcquireError

/**
 * The flattened JWS JSON serialization.
 *
 * @since 0.1.0
 * @category models
 */
export interface FlattenedJws {
  readonly payload: string
  readonly protected: string
  readonly header?: Header
  readonly signature: string
}

/**
 * The general JWS JSON serialization.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneralJws {
  readonly payload: string
  // A mutable array, as jose and JSON tools take it.
  readonly signatures: Array<Omit<FlattenedJws, "payload">>
}

const encoder = new TextEncoder()

// A JavaScript caller can hand over anything: what is neither text nor bytes is refused, never coerced.
const encodePayload = (payload: unknown): string | InvalidOptions =>
  typeof payload === "string" || payload instanceof Uint8Array
    ? Encoding.encodeBase64url(payload)
    : new InvalidOptions({ detail: `the payload must be a string or a Uint8Array, not ${Options.kindOf(payload)}` })

// The signing input: base64url text, so one byte per character.
const signingInput = (encodedHeader: string, encodedPayload: string): Uint8Array =>
  Buffer.from(`${encodedHeader}.${encodedPayload}`, "latin1")

// The header is read again here: a getter that passed the check may throw now.
const encodeHeader = (alg: string, kid: string | undefined, given: Header): string | InvalidHeader => {
  try {
    return Encoding.encodeBase64url(JSON.stringify(kid === undefined ? { alg, ...given } : { alg, kid, ...given }))
  } catch (error) {
    return new InvalidHeader({
      detail: `protectedHeader is not JSON: ${error instanceof Error ? error.message : String(error)}`
    })
  }
}

// RFC 7515 §4.1: a `crit` entry must name an extension, not one of these.
const registeredHeaders = new Set(["alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"])

/**
 * Refuses what hsmkey would sign wrongly in a protected header whose types are checked: `b64` (RFC 7797
 * unencoded payloads are not made here) and a `crit` that is not a list of distinct extension names present
 * in the protected header (RFC 7515 §4.1.11).
 */
const checkProtected = (header: Header): InvalidHeader | undefined => {
  if (Object.hasOwn(header, "b64")) {
    return new InvalidHeader({ detail: "b64 (RFC 7797 unencoded payload) is not supported" })
  }
  if (!Object.hasOwn(header, "crit")) return undefined
  const crit = header.crit
  if (!Encoding.isStringArray(crit) || crit.length === 0 || crit.some((name) => name === "")) {
    return new InvalidHeader({ detail: "crit must be a non-empty array of header names" })
  }
  if (new Set(crit).size !== crit.length) return new InvalidHeader({ detail: "crit names a header parameter twice" })
  const wrong = crit.filter((name) => registeredHeaders.has(name) || !Object.hasOwn(header, name))
  return wrong.length === 0 ? undefined : new InvalidHeader({
    detail: `crit names ${wrong.join(", ")}: each must be an extension present in the protected header`
  })
}

// RFC 7515 §7.2.1: the two headers share no name, and crit and b64 are protected.
const checkUnprotected = (protectedHeader: Header, unprotected: Header): InvalidHeader | undefined => {
  const shared = Object.keys(unprotected).filter((name) => Object.hasOwn(protectedHeader, name) || name === "alg")
  if (shared.length > 0) {
    return new InvalidHeader({
      detail: `${shared.join(", ")} in both the protected and the unprotected header (RFC 7515 §7.2.1)`
    })
  }
  return Object.hasOwn(unprotected, "crit") || Object.hasOwn(unprotected, "b64")
    ? new InvalidHeader({ detail: "crit and b64 belong in the protected header (RFC 7515 §4.1.11)" })
    : undefined
}

// What a JavaScript caller can hand over as options beyond their type: refused, never read as a default.
const signatureOptions = {
  alg: Options.optional(Predicate.isString, "an algorithm name"),
  kid: Options.optional(Predicate.isBoolean, "a boolean")
}

const signManyOptions = {
  ...signatureOptions,
  concurrency: Options.optional((u) => Number.isInteger(u) && (u as number) >= 1, "a positive integer")
}

const isSigningKey = (u: unknown): boolean => HsmJwk.isHsmJwk(u) || HsmSecret.isHsmSecretKey(u)

const keyProblem = (key: unknown): InvalidOptions | undefined =>
  Options.keyProblem(key, isSigningKey, "an HsmJwk or an HsmSecretKey")

interface Prepared {
  readonly alg: Algorithms.Algorithm
  readonly encodedHeader: string
  readonly unprotected: Header | undefined
}

// What a key signs under when nothing else is asked for, its protected header encoded once per key and alg:
// the signing path allocates nothing for it.
const defaults = new WeakMap<SigningKey, Map<string, Prepared>>()

const prepareDefault = (key: SigningKey, alg: Algorithms.Algorithm): Prepared => {
  let byAlg = defaults.get(key)
  if (byAlg === undefined) {
    byAlg = new Map()
    defaults.set(key, byAlg)
  }
  let prepared = byAlg.get(alg)
  if (prepared === undefined) {
    prepared = {
      alg,
      encodedHeader: Encoding.encodeBase64url(JSON.stringify({ alg, kid: key.kid })),
      unprotected: undefined
    }
    byAlg.set(alg, prepared)
  }
  return prepared
}

const noHeader: Header = Object.freeze({})

/**
 * The algorithm and the encoded protected header of one signature, or why it cannot be signed: plain
 * code, for it runs once per signature.
 */
const prepare = (key: SigningKey, options: SignatureOptions): Prepared | SignError => {
  const refused = keyProblem(key) ?? Options.problem("signature options", options, signatureOptions)
  if (refused !== undefined) return refused
  const name: unknown = options.alg ?? key.alg
  if (typeof name !== "string") return new InvalidOptions({ detail: "the key has no algorithm: pass alg" })
  const alg = Policy.algorithmFor(key, name)
  if (typeof alg !== "string") return alg
  const given = options.protectedHeader
  const unprotected = options.unprotectedHeader
  if (given === undefined && unprotected === undefined && options.kid !== false) return prepareDefault(key, alg)
  const notHeader = Encoding.headerProblem("protectedHeader", given, "jws") ??
    Encoding.headerProblem("unprotectedHeader", unprotected, "jws")
  if (notHeader !== undefined) return notHeader
  const protectedHeader = given ?? noHeader
  if (Object.hasOwn(protectedHeader, "alg") && protectedHeader.alg !== alg) {
    return new InvalidHeader({
      detail: `protectedHeader.alg is ${Options.shown(protectedHeader.alg)}, but the signature is ${alg}`
    })
  }
  const wrong = checkProtected(protectedHeader) ??
    (unprotected === undefined ? undefined : checkUnprotected(protectedHeader, unprotected))
  if (wrong !== undefined) return wrong
  // A kid the caller put in the unprotected header is the one they chose.
  const withKid = options.kid !== false && (unprotected === undefined || !Object.hasOwn(unprotected, "kid"))
  const encodedHeader = encodeHeader(alg, withKid ? key.kid : undefined, protectedHeader)
  if (typeof encodedHeader !== "string") return encodedHeader
  return {
    alg,
    encodedHeader,
    unprotected: unprotected !== undefined && Object.keys(unprotected).length > 0 ? unprotected : undefined
  }
}

const signatureOf = (
  prepared: Prepared,
  encodedPayload: string,
  key: SigningKey
): Effect.Effect<Uint8Array, SignError, SessionPool> =>
  Borrow.signing(key, prepared.alg, signingInput(prepared.encodedHeader, encodedPayload))

/**
 * One signature over an encoded payload, in a session of the key's token.
 */
const signature = (
  encodedPayload: string,
  key: SigningKey,
  options: SignatureOptions
): Effect.Effect<Omit<FlattenedJws, "payload">, SignError, SessionPool> =>
  Effect.suspend(() => {
    const prepared = prepare(key, options)
    if (!("encodedHeader" in prepared)) return Effect.fail(prepared)
    return Effect.map(signatureOf(prepared, encodedPayload, key), (raw) => ({
      protected: prepared.encodedHeader,
      ...(prepared.unprotected !== undefined ? { header: prepared.unprotected } : {}),
      signature: Encoding.encodeBase64url(raw)
    }))
  })

/**
 * Signs a payload into a compact JWS.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jws, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "jws" })
 *   const jws = yield* Jws.sign(JSON.stringify({ hello: "world" }), key, { protectedHeader: { typ: "example" } })
 *   const [header] = jws.split(".")
 *   assert.deepStrictEqual(JSON.parse(Buffer.from(header, "base64url").toString()), {
 *     alg: "ES256",
 *     kid: key.kid,
 *     typ: "example"
 *   })
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category signing
 */
export const sign = (
  payload: Payload,
  key: SigningKey,
  options: SignatureOptions = {}
): Effect.Effect<string, SignError, SessionPool> =>
  Tracing.spanned("Jws.sign", () => Tracing.onKey(key), (fiber) => {
    if (Predicate.isRecord(options) && options.unprotectedHeader !== undefined) {
      return Effect.fail(new InvalidHeader({ detail: "a compact JWS has no unprotected header" }))
    }
    const prepared = prepare(key, options)
    if (!("encodedHeader" in prepared)) return Effect.fail(prepared)
    const encodedHeader = prepared.encodedHeader
    const encodedPayload = encodePayload(payload)
    if (typeof encodedPayload !== "string") return Effect.fail(encodedPayload)
    return Borrow.signed(
      fiber,
      key,
      prepared.alg,
      signingInput(encodedHeader, encodedPayload),
      (raw) => `${encodedHeader}.${encodedPayload}.${Encoding.encodeBase64url(raw)}`
    )
  })

/**
 * Signs a payload into a flattened JWS JSON serialization.
 *
 * @since 0.1.0
 * @category signing
 */
export const signFlattened = (
  payload: Payload,
  key: SigningKey,
  options: SignatureOptions = {}
): Effect.Effect<FlattenedJws, SignError, SessionPool> =>
  Effect.gen(function*() {
    const encodedPayload = encodePayload(payload)
    if (typeof encodedPayload !== "string") return yield* encodedPayload
    const signed = yield* signature(encodedPayload, key, options)
    return { payload: encodedPayload, ...signed }
  }).pipe(Tracing.withSpan("Jws.signFlattened", Tracing.onKey(key)))

/**
 * Signs a payload under a protected header given already encoded, byte for byte as it must appear (to
 * reproduce a published example, or to keep a header's exact serialization). The header must decode to a
 * JSON object whose `alg` is the one signing.
 *
 * @since 0.1.0
 * @category signing
 */
export const signEncoded = (
  encodedHeader: string,
  payload: Payload,
  key: SigningKey
): Effect.Effect<string, SignError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(keyProblem(key))
    const header = yield* Effect.try({
      try: () => JSON.parse(Buffer.from(encodedHeader, "base64url").toString("utf8")) as unknown,
      catch: () => new InvalidHeader({ detail: "the encoded protected header is not base64url JSON" })
    })
    if (!Encoding.isPlainObject(header) || typeof header.alg !== "string") {
      return yield* new InvalidHeader({ detail: "the encoded protected header is not a JSON object with an alg" })
    }
    if (Encoding.encodeBase64url(Buffer.from(encodedHeader, "base64url")) !== encodedHeader) {
      return yield* new InvalidHeader({ detail: "the encoded protected header is not canonical base64url" })
    }
    const wrong = Encoding.headerProblem("the encoded protected header", header, "jws") ?? checkProtected(header)
    if (wrong !== undefined) return yield* wrong
    const alg = yield* Policy.checkAlgorithm(key, header.alg)
    const encodedPayload = encodePayload(payload)
    if (typeof encodedPayload !== "string") return yield* encodedPayload
    const raw = yield* Borrow.signing(key, alg, signingInput(encodedHeader, encodedPayload))
    return `${encodedHeader}.${encodedPayload}.${Encoding.encodeBase64url(raw)}`
  }).pipe(Tracing.withSpan("Jws.signEncoded", Tracing.onKey(key)))

/**
 * One signer of a general JWS.
 *
 * @since 0.1.0
 * @category models
 */
export interface Signer extends SignatureOptions {
  readonly key: SigningKey
}

/**
 * Signs a payload with several keys into a general JWS JSON serialization. The signatures are made
 * concurrently (keys on other tokens than the pool's need their own pools).
 *
 * @since 0.1.0
 * @category signing
 */
export const signGeneral = (
  payload: Payload,
  signers: ReadonlyArray<Signer>
): Effect.Effect<GeneralJws, SignError, SessionPool> =>
  Effect.gen(function*() {
    if (!Array.isArray(signers) || signers.length === 0) {
      return yield* new InvalidOptions({ detail: "a general JWS needs an array of at least one signer" })
    }
    const notSigner = signers.findIndex((signer) => !Encoding.isPlainObject(signer) || !Predicate.isObject(signer.key))
    if (notSigner >= 0) {
      return yield* new InvalidOptions({ detail: `signer ${notSigner} must be an object with a key` })
    }
    const encodedPayload = encodePayload(payload)
    if (typeof encodedPayload !== "string") return yield* encodedPayload
    const signatures = yield* Effect.forEach(
      signers,
      (signer) => signature(encodedPayload, signer.key, signer),
      { concurrency: "unbounded" }
    )
    return { payload: encodedPayload, signatures }
  }).pipe(
    Tracing.withSpan("Jws.signGeneral", { attributes: { "hsm.signers": signers.length }, captureStackTrace: false })
  )

/**
 * Signs many payloads with one key into compact JWSs, in order. In the session in context, one after the
 * other; else the work is shared by `concurrency` lanes (default: the pool's size), each holding one
 * session for its share, so a batch pays for one checkout per lane rather than one per payload.
 *
 * @since 0.1.0
 * @category signing
 */
export const signMany = (
  payloads: Iterable<Payload>,
  key: SigningKey,
  options: SignatureOptions & { readonly concurrency?: number | undefined } = {}
): Effect.Effect<ReadonlyArray<string>, SignError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(keyProblem(key) ?? Options.problem("signMany options", options, signManyOptions))
    if (typeof payloads === "string" || !Predicate.isIterable(payloads)) {
      return yield* new InvalidOptions({
        detail: `payloads must be an iterable of payloads, not ${Options.kindOf(payloads)}`
      })
    }
    const items = Array.from(payloads)
    const concurrency = options.concurrency
    const signOne = (payload: Payload) => sign(payload, key, options)
    if ((yield* Effect.serviceOption(CurrentSession))._tag === "Some") return yield* Effect.forEach(items, signOne)
    const pool = yield* SessionPool
    const lanes = Math.max(1, Math.min(concurrency ?? (yield* pool.stats).maxSessions, items.length))
    const results = new Array<string>(items.length)
    yield* Effect.forEach(
      Array.from({ length: lanes }, (_, lane) => lane),
      (lane) =>
        pool.withSession(Effect.gen(function*() {
          for (let i = lane; i < items.length; i += lanes) results[i] = yield* signOne(items[i])
        })),
      { concurrency: lanes, discard: true }
    )
    return results
  }).pipe(Tracing.withSpan("Jws.signMany", Tracing.onKey(key)))

/**
 * A key to verify with: an `HsmJwk`, a `KeyObject` or `CryptoKey`, a public JWK, or a JWK set (the key
 * is chosen by `kid` and `alg`).
 *
 * @since 0.1.0
 * @category models
 */
export type VerificationKey = Verification.VerificationKey

/**
 * What a verified JWS says.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verified {
  readonly payload: Uint8Array
  readonly protectedHeader: jose.JWSHeaderParameters
  readonly unprotectedHeader?: jose.JWSHeaderParameters | undefined
}

const verifiedOf = (
  payload: string,
  signature: JwsParse.ParsedSignature
): Verified => ({
  payload: new Uint8Array(Buffer.from(payload, "base64url")),
  protectedHeader: signature.header as jose.JWSHeaderParameters,
  unprotectedHeader: signature.unprotectedHeader as jose.JWSHeaderParameters | undefined
})

const signatureFailed = new VerificationFailed({
  code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
  detail: "signature verification failed"
})

/**
 * Verification jose cannot do: with a secret inside the token (`C_Verify`), or with an Ed448 key
 * (node:crypto). A general JWS verifies when one of its signatures does.
 */
const verifyOutsideJose = <E, R>(
  jws: string | FlattenedJws | GeneralJws,
  check: (
    header: JwsParse.ParsedSignature["joined"],
    input: Uint8Array,
    signature: Uint8Array
  ) => Effect.Effect<boolean, E, R>
): Effect.Effect<Verified, E | VerificationFailed, R> =>
  Effect.gen(function*() {
    const parsed = yield* JwsParse.parse(jws)
    for (const signature of parsed.signatures) {
      const input = encoder.encode(`${signature.protectedHeader}.${parsed.payload}`)
      if (yield* check(signature.joined, input, signature.signature)) return verifiedOf(parsed.payload, signature)
    }
    return yield* signatureFailed
  })

const notJws = new VerificationFailed({ code: "ERR_JWS_INVALID", detail: "a JWS is a string or a JSON object" })

const verifyWithJose = (
  jws: string | FlattenedJws | GeneralJws,
  key: NonNullable<Verification.Resolved["jose"]>,
  options: jose.VerifyOptions
): Effect.Effect<Verified, VerificationFailed> =>
  typeof jws !== "string" && (typeof jws !== "object" || jws === null)
    ? Effect.fail(notJws)
    : Verification.viaJose(async (): Promise<Verified> => {
      if (typeof jws === "string") {
        const { payload, protectedHeader } = typeof key === "function"
          ? await jose.compactVerify(jws, key, options)
          : await jose.compactVerify(jws, key, options)
        return { payload, protectedHeader }
      }
      const { payload, protectedHeader, unprotectedHeader } = "signatures" in jws
        ? typeof key === "function"
          ? await jose.generalVerify(jws, key, options)
          : await jose.generalVerify(jws, key, options)
        : typeof key === "function"
        ? await jose.flattenedVerify(jws, key, options)
        : await jose.flattenedVerify(jws, key, options)
      return { payload, protectedHeader: protectedHeader ?? {}, unprotectedHeader }
    }).pipe(Effect.flatMap(Verification.refuseDuplicateCrit))

/**
 * Verifies a compact, flattened or general JWS. A general JWS verifies when one of its signatures does
 * with the key.
 *
 * With a public key, a JWK or a JWK set the verification is jose's (node:crypto's for Ed448, which
 * jose does not support; a JWK set's Ed448 keys are chosen by `kid` as jose chooses); it needs no
 * token. An `HsmJwk` accepts its own `alg` only, unless `options.algorithms` lists others, and one for
 * encryption is refused (`ERR_JWK_INVALID`). With an `HsmSecretKey` the MAC is checked inside the
 * token (`C_Verify`), in a session of its token.
 *
 * Whatever is wrong with the JWS is `VerificationFailed`; options that are not jose's verify options
 * (`algorithms` not a list of names, `crit` not names to booleans) are `InvalidOptions`, with any key. An
 * `HsmSecretKey` accepts its own `alg` only, and not even that when `options.algorithms` leaves it out.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jws, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "Ed25519", label: "jws" })
 *   const jws = yield* Jws.sign("payload", key)
 *   // Anyone with the public key verifies: the HsmJwk, its KeyObject, its JWK or a JWKS.
 *   const verified = yield* Jws.verify(jws, key.publicJwk)
 *   assert.strictEqual(verified.protectedHeader.alg, "EdDSA")
 *   // The same signature over another payload does not verify.
 *   const [header, , signature] = jws.split(".")
 *   const forged = `${header}.${Buffer.from("other").toString("base64url")}.${signature}`
 *   const failure = yield* Effect.flip(Jws.verify(forged, key))
 *   assert.strictEqual(failure._tag, "VerificationFailed")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category verification
 */
export function verify(
  jws: string | FlattenedJws | GeneralJws,
  key: HsmSecret.HsmSecretKey
): Effect.Effect<Verified, VerifyInTokenError, SessionPool>
export function verify(
  jws: string | FlattenedJws | GeneralJws,
  key: VerificationKey,
  options?: jose.VerifyOptions
): Effect.Effect<Verified, VerificationFailed | InvalidOptions>
export function verify(
  jws: string | FlattenedJws | GeneralJws,
  key: VerificationKey | HsmSecret.HsmSecretKey,
  options?: jose.VerifyOptions
): Effect.Effect<Verified, VerificationFailed | InvalidOptions | VerifyInTokenError, SessionPool>
export function verify(
  jws: string | FlattenedJws | GeneralJws,
  key: VerificationKey | HsmSecret.HsmSecretKey,
  options?: jose.VerifyOptions
): Effect.Effect<Verified, VerificationFailed | InvalidOptions | VerifyInTokenError, SessionPool> {
  if (HsmSecret.isHsmSecretKey(key)) {
    const accepted = (alg: string) =>
      alg === key.alg && (options?.algorithms === undefined || options.algorithms.includes(alg))
    return Effect.zipRight(
      Effect.suspend(() => Options.refuse(Verification.optionsProblem(options))),
      verifyOutsideJose(jws, ({ alg }, input, signature) =>
        accepted(alg)
          ? Borrow.inKeySession(key, { rw: false }, (s) => TokenSigner.verify(s, key, key.alg, input, signature))
          : Effect.succeed(false))
    ).pipe(Tracing.withSpan("Jws.verify", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }))
  }
  return Effect.gen(function*() {
    yield* Options.refuse(Verification.optionsProblem(options))
    const resolved = yield* Verification.resolve(key, options?.algorithms)
    const joseOptions: jose.VerifyOptions = {
      ...options,
      ...(resolved.algorithms === undefined ? {} : { algorithms: [...resolved.algorithms] })
    }
    const byNode = verifyOutsideJose(
      jws,
      (header, input, signature) => Effect.sync(() => Verification.ed448Verifies(resolved, header, input, signature))
    )
    if (resolved.jose === undefined) return yield* byNode
    const byJose = verifyWithJose(jws, resolved.jose, joseOptions)
    if (resolved.ed448.length === 0) return yield* byJose
    // A JWK set with Ed448 keys and others: a signature either kind verifies will do.
    return yield* Effect.catchAll(
      byNode,
      (nodeError) =>
        Effect.mapError(byJose, (joseError) => joseError.code === "ERR_JWKS_NO_MATCHING_KEY" ? nodeError : joseError)
    )
  }).pipe(Tracing.withSpan("Jws.verify", { captureStackTrace: false }))
}

/**
 * What verifying a MAC inside the token can fail with, besides a MAC that does not verify.
 *
 * @since 0.1.0
 * @category models
 */
export type VerifyInTokenError =
  | VerificationFailed
  | MechanismUnsupported
  | KeyNotFound
  | KeyAmbiguous
  | InvalidOptions
  | AcquireError
