/**
 * JSON Web Tokens (RFC 7519) signed inside the token, and verified with jose.
 *
 * `iat` comes from Effect's `Clock`, so tests control time with `TestClock`; `expiresIn` and
 * `notBefore` are Durations from it. Claims must be JSON (what the `Claims` schema describes): they are
 * checked before anything is signed.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as jose from "jose"
import type { SigningKey } from "./Algorithm.js"
import { InvalidClaims, type InvalidOptions, VerificationFailed } from "./HsmError.js"
import * as Encoding from "./internal/encoding.js"
import * as Options from "./internal/options.js"
import * as Tracing from "./internal/tracing.js"
import * as Verification from "./internal/verification.js"
import * as Jws from "./Jws.js"
import type { SessionPool } from "./SessionPool.js"

/**
 * A JSON value.
 *
 * @since 0.1.0
 * @category models
 */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

type JsonEncoded =
  | null
  | boolean
  | number
  | string
  | ReadonlyArray<JsonEncoded>
  | { readonly [key: string]: unknown }

const PlainObject = Schema.declare(Encoding.isPlainObject, {
  identifier: "PlainObject",
  description: "a plain JSON object (not a Date, Map or class instance)"
})

const JsonObject: Schema.Schema<{ readonly [key: string]: Json }, { readonly [key: string]: unknown }> = Schema.compose(
  PlainObject,
  Schema.Record({ key: Schema.String, value: Schema.suspend((): Schema.Schema<Json, JsonEncoded> => JsonValue) }),
  { strict: false }
)

/**
 * JSON values: finite numbers, strings, booleans, null, arrays and plain objects of them.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JsonValue: Schema.Schema<Json, JsonEncoded> = Schema.Union(
  Schema.Null,
  Schema.Boolean,
  Schema.Finite,
  Schema.String,
  Schema.Array(Schema.suspend((): Schema.Schema<Json, JsonEncoded> => JsonValue)),
  JsonObject
)

/**
 * JWT claims: a JSON object.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Claims: Schema.Schema<{ readonly [key: string]: Json }, { readonly [key: string]: unknown }> = JsonObject

/**
 * Options of signing a JWT. Registered claims given here override those in the claims.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignOptions extends Omit<Jws.SignatureOptions, "unprotectedHeader"> {
  readonly expiresIn?: Duration.DurationInput | undefined
  /** The token is not valid before now plus this. */
  readonly notBefore?: Duration.DurationInput | undefined
  readonly issuer?: string | undefined
  readonly audience?: string | ReadonlyArray<string> | undefined
  readonly subject?: string | undefined
  readonly jti?: string | undefined
  /** The `typ` header parameter (default `"JWT"`). */
  readonly typ?: string | undefined
}

const seconds = (millis: number) => Math.floor(millis / 1000)

// Duration.decode reads NaN and negative amounts as zero: a number, a bigint of nanoseconds, each part of
// a [seconds, nanoseconds] pair, or text.
const nonNegative = (input: unknown): boolean =>
  typeof input === "number"
    ? input >= 0
    : typeof input === "bigint"
    ? input >= 0n
    : typeof input === "string"
    ? !input.trim().startsWith("-")
    : Array.isArray(input)
    ? input.every((part) => typeof part === "number" && part >= 0)
    : true

/**
 * Whole seconds of a duration option, or `undefined` when it is none: `Duration.decode` throws on text it
 * cannot read, and an infinite or NaN duration would sign `"exp": null` or `exp == iat`.
 */
const secondsOf = (input: unknown): number | undefined => {
  if (!nonNegative(input)) return undefined
  try {
    const millis = Duration.toMillis(Duration.decode(input as Duration.DurationInput))
    return Number.isFinite(millis) && millis >= 0 ? seconds(millis) : undefined
  } catch {
    return undefined
  }
}

const isAudience = (u: unknown): u is string | ReadonlyArray<string> =>
  typeof u === "string" || Encoding.isStringArray(u)

const text = Options.optional(Predicate.isString, "a string")
const textOrTexts = Options.optional(isAudience, "a string or an array of strings")
const duration = Options.optional((u) => secondsOf(u) !== undefined, "a finite, non-negative duration")

// Registered claims given as options are what the claims would hold, whatever a JavaScript caller hands over.
const jwtSignOptions = {
  issuer: text,
  subject: text,
  jti: text,
  typ: text,
  audience: textOrTexts,
  expiresIn: duration,
  notBefore: duration
}

/**
 * Why the registered claims of a claims set do not have their types (RFC 7519 §4.1), or `undefined`: a
 * token whose `exp` is text is one no verifier reads as its issuer meant.
 */
const registeredClaimsProblem = (claims: { readonly [key: string]: Json }): string | undefined => {
  for (const name of ["iss", "sub", "jti"]) {
    if (Object.hasOwn(claims, name) && typeof claims[name] !== "string") return `${name} must be a string`
  }
  if (Object.hasOwn(claims, "aud") && !isAudience(claims.aud)) return "aud must be a string or an array of strings"
  for (const name of ["exp", "nbf", "iat"]) {
    if (Object.hasOwn(claims, name) && typeof claims[name] !== "number") {
      return `${name} must be a NumericDate (seconds since the epoch)`
    }
  }
  return undefined
}

// jsonProblem's walk is the whole check: a JSON object of JSON values is what the Claims schema describes,
// and decoding with it would walk the claims a second time.
const decodeClaims = (claims: unknown): { readonly [key: string]: Json } | InvalidClaims => {
  if (!Encoding.isPlainObject(claims)) {
    return new InvalidClaims({ detail: `the claims must be a JSON object, not ${Options.kindOf(claims)}` })
  }
  const problem = Encoding.jsonProblem(claims)
  if (problem !== undefined) return new InvalidClaims({ detail: `the claims are not JSON: they hold ${problem}` })
  const checked = claims as { readonly [key: string]: Json }
  const wrong = registeredClaimsProblem(checked)
  return wrong === undefined ? checked : new InvalidClaims({ detail: wrong })
}

// A getter read again may throw where it did not before: the claims are refused, never a defect.
const encodeClaims = (
  claims: { readonly [key: string]: Json },
  registered: Record<string, Json>
): string | InvalidClaims => {
  try {
    return JSON.stringify({ ...claims, ...registered })
  } catch {
    return new InvalidClaims({ detail: "the claims hold a member that cannot be read" })
  }
}

/**
 * Signs claims into a compact JWT, inside the token, in the session in context or one borrowed from the
 * `SessionPool` in context. Before anything is signed, options a caller gets wrong (`audience: [5]`,
 * `issuer: 5`, an `expiresIn` that is not a finite, non-negative duration) fail with `InvalidOptions`; a
 * protected header that is not a JSON object of its registered types with `InvalidHeader`; claims that are
 * not a JSON object of JSON values (a cycle, `NaN`, a member named `__proto__`, nesting deeper than 100
 * levels, more than 10,000 values) or whose registered claims have the wrong type (`iss: 5`,
 * `exp: "tomorrow"`) with `InvalidClaims`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwt, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "access-tokens" })
 *   const jwt = yield* Jwt.sign({ scope: "api" }, key, {
 *     issuer: "https://auth.example",
 *     subject: "alice",
 *     expiresIn: "15 minutes"
 *   })
 *   const { payload } = yield* Jwt.verify(jwt, key, { issuer: "https://auth.example" })
 *   assert.strictEqual(payload.sub, "alice")
 *   assert.strictEqual(payload.scope, "api")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category signing
 */
export const sign = (
  claims: unknown,
  key: SigningKey,
  options: SignOptions = {}
): Effect.Effect<string, InvalidClaims | Jws.SignError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(Options.problem("JWT options", options, jwtSignOptions))
    // Checked before it is spread under typ: a string would spread into characters, a getter throw.
    const notHeader = Encoding.headerProblem("protectedHeader", options.protectedHeader, "jws")
    if (notHeader !== undefined) return yield* notHeader
    const decoded = decodeClaims(claims)
    if (decoded instanceof InvalidClaims) return yield* decoded
    const now = seconds(yield* Clock.currentTimeMillis)
    const payload: Record<string, Json> = { iat: now }
    const expiresIn = secondsOf(options.expiresIn)
    if (expiresIn !== undefined) payload.exp = now + expiresIn
    const notBefore = secondsOf(options.notBefore)
    if (notBefore !== undefined) payload.nbf = now + notBefore
    if (options.issuer !== undefined) payload.iss = options.issuer
    if (options.subject !== undefined) payload.sub = options.subject
    if (options.jti !== undefined) payload.jti = options.jti
    if (options.audience !== undefined) {
      payload.aud = typeof options.audience === "string" ? options.audience : [...options.audience]
    }
    const encoded = encodeClaims(decoded, payload)
    if (typeof encoded !== "string") return yield* encoded
    return yield* Jws.sign(encoded, key, {
      alg: options.alg,
      kid: options.kid,
      protectedHeader: { typ: options.typ ?? "JWT", ...options.protectedHeader }
    })
  }).pipe(Tracing.withSpan("Jwt.sign", Tracing.onKey(key)))

/**
 * What a verified JWT says.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verified {
  readonly payload: jose.JWTPayload
  readonly protectedHeader: jose.JWTHeaderParameters
}

/**
 * Whether jose reads a time span option as a span of at least zero. jose reads the text itself, and only
 * after the signature; its parser is not exported, but `setExpirationTime` uses it, and refuses what
 * `jwtVerify` would throw on.
 */
const isTimeSpan = (u: unknown): boolean => {
  if (typeof u === "number") return u >= 0 && u < Infinity
  if (typeof u !== "string" || /^-|ago$/iu.test(u)) return false
  try {
    new jose.SignJWT({}).setExpirationTime(u)
    return true
  } catch {
    return false
  }
}

const timeSpan = Options.optional(isTimeSpan, "a time span (\"5 minutes\") or a finite, non-negative number of seconds")

// A caller's mistake is InvalidOptions, never read by jose as a claim the token lacks.
const jwtVerifyOptions = {
  ...Verification.verifyOptions,
  issuer: textOrTexts,
  audience: textOrTexts,
  subject: text,
  typ: text,
  requiredClaims: Options.optional(Encoding.isStringArray, "an array of claim names"),
  clockTolerance: timeSpan,
  maxTokenAge: timeSpan
}

const algOf = (jwt: string): unknown => {
  try {
    return jose.decodeProtectedHeader(jwt).alg
  } catch {
    return undefined
  }
}

/**
 * Verifies a JWT with jose: its signature, and its claims (`exp` and `nbf` against Effect's `Clock`,
 * and whatever `options` ask for). With an `HsmJwk` only its own `alg` is accepted, unless
 * `options.algorithms` lists others.
 *
 * An Ed448 key fails with `VerificationFailed` (`ERR_JOSE_NOT_SUPPORTED`): jose, which checks the
 * claims, has no Ed448. Verify such a token with `Jws.verify`, then check its claims. Options that are not
 * jose's JWT verify options (`audience: 5`, `algorithms: "ES256"`) are `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwks, Jwt, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "access-tokens" })
 *   const jwt = yield* Jwt.sign({}, key, { audience: "api", expiresIn: "5 minutes" })
 *   // A verifier holds the published set, not the token.
 *   const jwks = yield* Jwks.fromToken()
 *   const ok = yield* Jwt.verify(jwt, jwks, { audience: "api" })
 *   assert.strictEqual(ok.protectedHeader.kid, key.kid)
 *   const wrong = yield* Effect.flip(Jwt.verify(jwt, jwks, { audience: "admin" }))
 *   assert.strictEqual(wrong._tag, "VerificationFailed")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category verification
 */
export const verify = (
  jwt: string,
  key: Jws.VerificationKey,
  options: Omit<jose.JWTVerifyOptions, "currentDate"> = {}
): Effect.Effect<Verified, VerificationFailed | InvalidOptions> =>
  Effect.gen(function*() {
    yield* Options.refuse(Options.problem("verification options", options, jwtVerifyOptions))
    const resolved = yield* Verification.resolve(key, options.algorithms)
    const ed448 = new VerificationFailed({
      code: "ERR_JOSE_NOT_SUPPORTED",
      detail: "Jwt.verify cannot check a JWT signed with Ed448: verify it with Jws.verify and check its claims"
    })
    if (resolved.jose === undefined) return yield* ed448
    const joseKey = resolved.jose
    const now = yield* Clock.currentTimeMillis
    const joseOptions: jose.JWTVerifyOptions = {
      ...options,
      ...(resolved.algorithms === undefined ? {} : { algorithms: [...resolved.algorithms] }),
      currentDate: new Date(now)
    }
    return yield* Verification.viaJose(async (): Promise<Verified> => {
      const { payload, protectedHeader } = typeof joseKey === "function"
        ? await jose.jwtVerify(jwt, joseKey, joseOptions)
        : await jose.jwtVerify(jwt, joseKey, joseOptions)
      return { payload, protectedHeader }
    }).pipe(
      Effect.flatMap(Verification.refuseDuplicateCrit),
      Effect.mapError((error) =>
        error.code === "ERR_JWKS_NO_MATCHING_KEY" && resolved.ed448.length > 0 && algOf(jwt) === "EdDSA" ? ed448 : error
      )
    )
  }).pipe(Tracing.withSpan("Jwt.verify", { captureStackTrace: false }))
