/**
 * JSON Web Signatures (RFC 7515) signed inside the token: compact, flattened and general JSON
 * serializations, and their verification through jose.
 *
 * jose cannot sign with a key it cannot hold, so hsmkey assembles the JWS itself: it builds the protected
 * header (always the real `alg`, and the key's `kid` unless told otherwise), encodes it and the payload
 * with jose's base64url, and has the token sign `BASE64URL(header) . BASE64URL(payload)`. Verification
 * needs no token and is jose's.
 *
 * Without a `session` option, signing borrows a session from the `SessionPool` in context.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Pipeable from "effect/Pipeable"
import * as Predicate from "effect/Predicate"
import * as jose from "jose"
import type * as Crypto from "node:crypto"
import { type HsmError, InvalidHeader, InvalidOptions, VerificationFailed } from "./HsmError.js"
import * as HsmJwk from "./HsmJwk.js"
import type { HsmSession } from "./HsmSession.js"
import * as Encoding from "./internal/encoding.js"
import * as JwsParse from "./internal/jwsParse.js"
import * as TokenSigner from "./internal/signer.js"
import * as Verification from "./internal/verification.js"
import { SessionPool as SessionPoolTag } from "./SessionPool.js"
import type { SessionPool } from "./SessionPool.js"

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
 * Options of signing: the signature's, and the session to sign in (else one is borrowed from the pool).
 *
 * @since 0.1.0
 * @category models
 */
export interface SignOptions extends SignatureOptions {
  readonly session?: HsmSession | undefined
}

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
const bytesOf = (payload: Payload): Uint8Array => typeof payload === "string" ? encoder.encode(payload) : payload

const headerOf = (name: string, header: unknown): Effect.Effect<Header, InvalidHeader> =>
  header === undefined
    ? Effect.succeed({})
    : Encoding.isPlainObject(header)
    ? Effect.succeed(header)
    : Effect.fail(new InvalidHeader({ detail: `${name} must be a JSON object` }))

const encodeJson = (name: string, value: Header): Effect.Effect<string, InvalidHeader> =>
  Effect.try({
    try: () => jose.base64url.encode(JSON.stringify(value)),
    catch: (error) =>
      new InvalidHeader({ detail: `${name} is not JSON: ${error instanceof Error ? error.message : String(error)}` })
  })

// RFC 7515 §4.1: a `crit` entry must name an extension, not one of these.
const registeredHeaders = new Set(["alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"])

/**
 * Refuses what hsmkey would sign wrongly: `b64` (RFC 7797 unencoded payloads are not made here) and a
 * `crit` that is not a list of extension names present in the protected header (RFC 7515 §4.1.11).
 */
const checkProtected = (header: Header): Effect.Effect<void, InvalidHeader> => {
  if ("b64" in header) {
    return Effect.fail(new InvalidHeader({ detail: "b64 (RFC 7797 unencoded payload) is not supported" }))
  }
  if (!("crit" in header)) return Effect.void
  const crit = header.crit
  if (!Array.isArray(crit) || crit.length === 0 || !crit.every((name) => typeof name === "string")) {
    return Effect.fail(new InvalidHeader({ detail: "crit must be a non-empty array of header names" }))
  }
  const wrong = crit.filter((name) => registeredHeaders.has(name) || !(name in header))
  return wrong.length === 0 ? Effect.void : Effect.fail(
    new InvalidHeader({
      detail: `crit names ${wrong.join(", ")}: each must be an extension present in the protected header`
    })
  )
}

/**
 * One signature over an encoded payload, in a session of the key's token.
 */
const signature = (
  encodedPayload: string,
  key: HsmJwk.SigningKey,
  options: SignatureOptions,
  session: HsmSession | undefined
): Effect.Effect<Omit<FlattenedJws, "payload">, HsmError, SessionPool> =>
  Effect.gen(function*() {
    const alg = yield* HsmJwk.checkAlgorithm(key, options.alg ?? key.alg)
    const given = yield* headerOf("protectedHeader", options.protectedHeader)
    const unprotected = yield* headerOf("unprotectedHeader", options.unprotectedHeader)
    if (given.alg !== undefined && given.alg !== alg) {
      return yield* new InvalidHeader({
        detail: `protectedHeader.alg is ${String(given.alg)}, but the signature is ${alg}`
      })
    }
    const shared = Object.keys(unprotected).filter((name) => name in given || name === "alg")
    if (shared.length > 0) {
      return yield* new InvalidHeader({
        detail: `${shared.join(", ")} in both the protected and the unprotected header (RFC 7515 §7.2.1)`
      })
    }
    if ("crit" in unprotected || "b64" in unprotected) {
      return yield* new InvalidHeader({ detail: "crit and b64 belong in the protected header (RFC 7515 §4.1.11)" })
    }
    yield* checkProtected(given)
    // A kid the caller put in the unprotected header is the one they chose.
    const withKid = options.kid !== false && !("kid" in unprotected)
    const header: Header = { alg, ...(withKid ? { kid: key.kid } : {}), ...given }
    const encodedHeader = yield* encodeJson("protectedHeader", header)
    const raw = yield* TokenSigner.withKeySession(
      key,
      session,
      (s) => TokenSigner.sign(s, key, alg, encoder.encode(`${encodedHeader}.${encodedPayload}`))
    )
    return {
      protected: encodedHeader,
      ...(Object.keys(unprotected).length > 0 ? { header: unprotected } : {}),
      signature: jose.base64url.encode(raw)
    }
  })

const compactOnly = (options: SignatureOptions) =>
  options.unprotectedHeader === undefined
    ? Effect.void
    : Effect.fail(new InvalidHeader({ detail: "a compact JWS has no unprotected header" }))

/**
 * Signs a payload into a compact JWS.
 *
 * @since 0.1.0
 * @category signing
 */
export const sign: {
  (payload: Payload, key: HsmJwk.SigningKey, options: SignOptions & { readonly session: HsmSession }): Effect.Effect<
    string,
    HsmError
  >
  (payload: Payload, key: HsmJwk.SigningKey, options?: SignOptions): Effect.Effect<string, HsmError, SessionPool>
} = ((
  payload: Payload,
  key: HsmJwk.SigningKey,
  options: SignOptions = {}
): Effect.Effect<string, HsmError, SessionPool> =>
  Effect.gen(function*() {
    yield* compactOnly(options)
    const encodedPayload = jose.base64url.encode(bytesOf(payload))
    const signed = yield* signature(encodedPayload, key, options, options.session)
    return `${signed.protected}.${encodedPayload}.${signed.signature}`
  }).pipe(Effect.withSpan("Jws.sign", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }))) as any

/**
 * Signs a payload into a flattened JWS JSON serialization.
 *
 * @since 0.1.0
 * @category signing
 */
export const signFlattened: {
  (payload: Payload, key: HsmJwk.SigningKey, options: SignOptions & { readonly session: HsmSession }): Effect.Effect<
    FlattenedJws,
    HsmError
  >
  (payload: Payload, key: HsmJwk.SigningKey, options?: SignOptions): Effect.Effect<FlattenedJws, HsmError, SessionPool>
} = ((payload: Payload, key: HsmJwk.SigningKey, options: SignOptions = {}) =>
  Effect.gen(function*() {
    const encodedPayload = jose.base64url.encode(bytesOf(payload))
    const signed = yield* signature(encodedPayload, key, options, options.session)
    return { payload: encodedPayload, ...signed }
  }).pipe(
    Effect.withSpan("Jws.signFlattened", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false })
  )) as any

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
  key: HsmJwk.SigningKey,
  options: { readonly session?: HsmSession | undefined } = {}
): Effect.Effect<string, HsmError, SessionPool> =>
  Effect.gen(function*() {
    const header = yield* Effect.try({
      try: () => JSON.parse(Buffer.from(encodedHeader, "base64url").toString("utf8")) as unknown,
      catch: () => new InvalidHeader({ detail: "the encoded protected header is not base64url JSON" })
    })
    if (!Encoding.isPlainObject(header) || typeof header.alg !== "string") {
      return yield* new InvalidHeader({ detail: "the encoded protected header is not a JSON object with an alg" })
    }
    if (jose.base64url.encode(Buffer.from(encodedHeader, "base64url")) !== encodedHeader) {
      return yield* new InvalidHeader({ detail: "the encoded protected header is not canonical base64url" })
    }
    yield* checkProtected(header)
    const alg = yield* HsmJwk.checkAlgorithm(key, header.alg)
    const encodedPayload = jose.base64url.encode(bytesOf(payload))
    const raw = yield* TokenSigner.withKeySession(
      key,
      options.session,
      (s) => TokenSigner.sign(s, key, alg, encoder.encode(`${encodedHeader}.${encodedPayload}`))
    )
    return `${encodedHeader}.${encodedPayload}.${jose.base64url.encode(raw)}`
  }).pipe(Effect.withSpan("Jws.signEncoded", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }))

/**
 * One signer of a general JWS.
 *
 * @since 0.1.0
 * @category models
 */
export interface Signer extends SignatureOptions {
  readonly key: HsmJwk.SigningKey
  /** The session to sign in; else one is borrowed from the pool. */
  readonly session?: HsmSession | undefined
}

/**
 * Signs a payload with several keys into a general JWS JSON serialization. The signatures are made
 * concurrently.
 *
 * @since 0.1.0
 * @category signing
 */
export const signGeneral = (
  payload: Payload,
  signers: ReadonlyArray<Signer>
): Effect.Effect<GeneralJws, HsmError, SessionPool> =>
  Effect.gen(function*() {
    if (signers.length === 0) return yield* new InvalidOptions({ detail: "a general JWS needs at least one signer" })
    const encodedPayload = jose.base64url.encode(bytesOf(payload))
    const signatures = yield* Effect.forEach(
      signers,
      (signer) => signature(encodedPayload, signer.key, signer, signer.session),
      { concurrency: "unbounded" }
    )
    return { payload: encodedPayload, signatures }
  }).pipe(
    Effect.withSpan("Jws.signGeneral", { attributes: { "hsm.signers": signers.length }, captureStackTrace: false })
  )

/**
 * Signs many payloads with one key into compact JWSs, in order. The work is shared by `concurrency`
 * lanes (default: the pool's size), each holding one session for its share, so a batch pays for one
 * checkout per lane rather than one per payload.
 *
 * @since 0.1.0
 * @category signing
 */
export const signMany = (
  payloads: Iterable<Payload>,
  key: HsmJwk.SigningKey,
  options: SignOptions & { readonly concurrency?: number | undefined } = {}
): Effect.Effect<ReadonlyArray<string>, HsmError, SessionPool> =>
  Effect.gen(function*() {
    const items = Array.from(payloads)
    const signIn = (session: HsmSession) => (payload: Payload) => sign(payload, key, { ...options, session })
    if (options.session !== undefined) return yield* Effect.forEach(items, signIn(options.session))
    const pool = yield* SessionPoolTag
    const lanes = Math.max(1, Math.min(options.concurrency ?? (yield* pool.stats).maxSessions, items.length))
    const results = new Array<string>(items.length)
    yield* Effect.forEach(
      Array.from({ length: lanes }, (_, lane) => lane),
      (lane) =>
        pool.withSession((session) =>
          Effect.gen(function*() {
            for (let i = lane; i < items.length; i += lanes) results[i] = yield* signIn(session)(items[i])
          })
        ),
      { concurrency: lanes, discard: true }
    )
    return results
  }).pipe(Effect.withSpan("Jws.signMany", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }))

const BuilderTypeId: unique symbol = Symbol.for("hsmkey/Jws/Builder")

/**
 * A JWS being put together: a payload, then signatures, then a serialization.
 *
 * @since 0.1.0
 * @category models
 */
export interface Builder extends Pipeable.Pipeable {
  readonly [BuilderTypeId]: typeof BuilderTypeId
  readonly payload: Payload
  readonly signers: ReadonlyArray<Signer>
}

const BuilderProto = {
  [BuilderTypeId]: BuilderTypeId,
  pipe(this: Builder) {
    // eslint-disable-next-line prefer-rest-params -- pipeArguments takes the arguments object, as Effect's own classes pass it
    return Pipeable.pipeArguments(this, arguments)
  }
}

const makeBuilder = (payload: Payload, signers: ReadonlyArray<Signer>): Builder =>
  Object.assign(Object.create(BuilderProto), { payload, signers })

/**
 * Starts a JWS over a payload.
 *
 * @since 0.1.0
 * @category builder
 */
export const make = (payload: Payload): Builder => makeBuilder(payload, [])

/**
 * Adds a signature to make when the JWS is serialized.
 *
 * @since 0.1.0
 * @category builder
 */
export const addSignature: {
  (key: HsmJwk.SigningKey, options?: SignatureOptions & { readonly session?: HsmSession | undefined }): (
    self: Builder
  ) => Builder
  (
    self: Builder,
    key: HsmJwk.SigningKey,
    options?: SignatureOptions & { readonly session?: HsmSession | undefined }
  ): Builder
} = dual(
  (args) => Predicate.hasProperty(args[0], BuilderTypeId),
  (
    self: Builder,
    key: HsmJwk.SigningKey,
    options: SignatureOptions & { readonly session?: HsmSession | undefined } = {}
  ) => makeBuilder(self.payload, [...self.signers, { ...options, key }])
)

/**
 * Signs and serializes a JWS: `compact` and `flattened` take exactly one signature, `general` any
 * number (default: `compact` for one signature, `general` otherwise).
 *
 * @since 0.1.0
 * @category builder
 */
export const serialize: {
  (options: { readonly format: "compact" }): (self: Builder) => Effect.Effect<string, HsmError, SessionPool>
  (options: { readonly format: "flattened" }): (self: Builder) => Effect.Effect<FlattenedJws, HsmError, SessionPool>
  (options: { readonly format: "general" }): (self: Builder) => Effect.Effect<GeneralJws, HsmError, SessionPool>
  (self: Builder, options: { readonly format: "compact" }): Effect.Effect<string, HsmError, SessionPool>
  (self: Builder, options: { readonly format: "flattened" }): Effect.Effect<FlattenedJws, HsmError, SessionPool>
  (self: Builder, options: { readonly format: "general" }): Effect.Effect<GeneralJws, HsmError, SessionPool>
} = dual(
  2,
  (
    self: Builder,
    options: { readonly format: "compact" | "flattened" | "general" }
  ): Effect.Effect<string | FlattenedJws | GeneralJws, HsmError, SessionPool> => {
    if (options.format === "general") return signGeneral(self.payload, self.signers)
    if (self.signers.length !== 1) {
      return Effect.fail(
        new InvalidOptions({
          detail: `a ${options.format} JWS has exactly one signature, this one has ${self.signers.length}`
        })
      )
    }
    const [{ key, ...rest }] = self.signers
    return options.format === "compact" ? sign(self.payload, key, rest) : signFlattened(self.payload, key, rest)
  }
) as any

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
const verifyOutsideJose = <R>(
  jws: string | FlattenedJws | GeneralJws,
  check: (
    header: JwsParse.ParsedSignature["joined"],
    input: Uint8Array,
    signature: Uint8Array
  ) => Effect.Effect<boolean, HsmError, R>
): Effect.Effect<Verified, HsmError, R> =>
  Effect.gen(function*() {
    const parsed = yield* JwsParse.parse(jws)
    for (const signature of parsed.signatures) {
      const input = encoder.encode(`${signature.protectedHeader}.${parsed.payload}`)
      if (yield* check(signature.joined, input, signature.signature)) return verifiedOf(parsed.payload, signature)
    }
    return yield* signatureFailed
  })

const verifyWithJose = (
  jws: string | FlattenedJws | GeneralJws,
  key: Crypto.KeyObject | jose.CryptoKey | jose.JWK | jose.JWTVerifyGetKey,
  options: jose.VerifyOptions
): Effect.Effect<Verified, VerificationFailed> =>
  Verification.viaJose(async (): Promise<Verified> => {
    const input = key as any
    if (typeof jws === "string") {
      const { payload, protectedHeader } = await jose.compactVerify(jws, input, options)
      return { payload, protectedHeader }
    }
    const { payload, protectedHeader, unprotectedHeader } = "signatures" in jws
      ? await jose.generalVerify(jws as jose.GeneralJWSInput, input, options)
      : await jose.flattenedVerify(jws as jose.FlattenedJWSInput, input, options)
    return { payload, protectedHeader: protectedHeader ?? {}, unprotectedHeader }
  })

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
 * @since 0.1.0
 * @category verification
 */
export const verify: {
  (
    jws: string | FlattenedJws | GeneralJws,
    key: HsmJwk.HsmSecretKey,
    options?: { readonly session?: HsmSession | undefined }
  ): Effect.Effect<Verified, HsmError, SessionPool>
  (
    jws: string | FlattenedJws | GeneralJws,
    key: VerificationKey,
    options?: jose.VerifyOptions
  ): Effect.Effect<Verified, VerificationFailed>
} = ((
  jws: string | FlattenedJws | GeneralJws,
  key: VerificationKey | HsmJwk.HsmSecretKey,
  options?: jose.VerifyOptions & { readonly session?: HsmSession | undefined }
): Effect.Effect<Verified, HsmError, SessionPool> => {
  if (HsmJwk.isHsmSecretKey(key)) {
    return verifyOutsideJose(jws, ({ alg }, input, signature) =>
      alg !== key.alg
        ? Effect.succeed(false)
        : TokenSigner.withKeySession(
          key,
          options?.session,
          (s) => TokenSigner.verify(s, key, key.alg, input, signature)
        ))
      .pipe(Effect.withSpan("Jws.verify", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }))
  }
  return Effect.gen(function*() {
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
  }).pipe(Effect.withSpan("Jws.verify", { captureStackTrace: false }))
}) as any
