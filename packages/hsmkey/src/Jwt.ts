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
import { InvalidClaims, InvalidOptions, VerificationFailed } from "./HsmError.js"
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
 * Whole seconds of a duration option, or why it is none: `Duration.decode` throws on text it cannot read,
 * and an infinite or NaN duration would sign `"exp": null` or `exp == iat`.
 */
const durationSeconds = (name: string, input: Duration.DurationInput): number | InvalidClaims => {
  const detail = `${name} must be a finite, non-negative duration`
  if (!nonNegative(input)) return new InvalidClaims({ detail })
  try {
    const millis = Duration.toMillis(Duration.decode(input))
    return Number.isFinite(millis) && millis >= 0 ? seconds(millis) : new InvalidClaims({ detail })
  } catch {
    return new InvalidClaims({ detail })
  }
}

// Registered claims given as options are strings, whatever a JavaScript caller hands over.
const stringOption = (name: string, value: unknown): InvalidClaims | undefined =>
  value === undefined || typeof value === "string"
    ? undefined
    : new InvalidClaims({ detail: `${name} must be a string` })

const isAudience = (u: unknown): u is string | ReadonlyArray<string> =>
  typeof u === "string" || Encoding.isStringArray(u)

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

// jsonProblem's walk is the whole check: a JSON object of JSON values is what Claims decodes, and decoding
// it again would walk it again (and assign a member named __proto__).
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
 * `SessionPool` in context. Claims that are not a JSON object of JSON values (a cycle, `NaN`, a member
 * named `__proto__`, nesting deeper than 100 levels), registered claims of the wrong type (`iss: 5`,
 * `exp: "tomorrow"`, `audience: [5]`) and durations that are not finite and non-negative fail with
 * `InvalidClaims` before anything is signed; options and a protected header that are not objects with
 * `InvalidOptions` and `InvalidHeader`.
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
    if (!Encoding.isOptions(options)) {
      return yield* new InvalidOptions({ detail: `JWT options must be an object, not ${Options.kindOf(options)}` })
    }
    // Checked before it is spread under typ: a string would spread into characters, a getter throw.
    const notHeader = Encoding.headerProblem("protectedHeader", options.protectedHeader, "jws")
    if (notHeader !== undefined) return yield* notHeader
    const decoded = decodeClaims(claims)
    if (decoded instanceof InvalidClaims) return yield* decoded
    for (const name of ["issuer", "subject", "jti", "typ"] as const) {
      const wrong = stringOption(name, options[name])
      if (wrong !== undefined) return yield* wrong
    }
    if (options.audience !== undefined && !isAudience(options.audience)) {
      return yield* new InvalidClaims({ detail: "audience must be a string or an array of strings" })
    }
    const now = seconds(yield* Clock.currentTimeMillis)
    const payload: Record<string, Json> = { iat: now }
    if (options.expiresIn !== undefined) {
      const expiresIn = durationSeconds("expiresIn", options.expiresIn)
      if (typeof expiresIn !== "number") return yield* expiresIn
      payload.exp = now + expiresIn
    }
    if (options.notBefore !== undefined) {
      const notBefore = durationSeconds("notBefore", options.notBefore)
      if (typeof notBefore !== "number") return yield* notBefore
      payload.nbf = now + notBefore
    }
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
  }).pipe(Tracing.withSpan("Jwt.sign", { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }))

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

const isDuration = (u: unknown): boolean => typeof u === "string" || (typeof u === "number" && u >= 0 && u < Infinity)

const duration = Options.optional(isDuration, "a time span or a finite, non-negative number of seconds")

// A caller's mistake is InvalidOptions, never read by jose as a claim the token lacks. The text of a
// duration is jose's to read.
const jwtVerifyOptions = {
  ...Verification.verifyOptions,
  issuer: Options.optional(isAudience, "a string or an array of strings"),
  audience: Options.optional(isAudience, "a string or an array of strings"),
  subject: Options.optional(Predicate.isString, "a string"),
  typ: Options.optional(Predicate.isString, "a string"),
  requiredClaims: Options.optional(Encoding.isStringArray, "an array of claim names"),
  clockTolerance: duration,
  maxTokenAge: duration
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
