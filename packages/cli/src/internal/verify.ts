import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as HsmError from "hsmkey/HsmError"
import * as Jws from "hsmkey/Jws"
import * as Jwt from "hsmkey/Jwt"
import * as jose from "jose"
import { CliError } from "../CliError.js"
import * as Input from "./input.js"
import * as Json from "./jsonOption.js"
import * as Output from "./output.js"

const FETCH_TIMEOUT = Duration.seconds(10)

const isUrl = (source: string): boolean => /^https?:\/\//i.test(source)

// fetch says only "fetch failed"; why (ECONNREFUSED, ENOTFOUND, a certificate) is in its cause.
const describeFetchError = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause: unknown = error.cause
  const why = cause instanceof Error
    ? (Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? cause.code : cause.message)
    : undefined
  return why === undefined || error.message.includes(why) ? error.message : `${error.message} (${why})`
}

const fetchText = (url: string): Effect.Effect<string, CliError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(Duration.toMillis(FETCH_TIMEOUT))]),
        headers: { accept: "application/json" }
      })
      if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`)
      return await response.text()
    },
    catch: (error) =>
      new CliError({
        exitClass: "io",
        detail: `cannot fetch the JWKS at ${url}: ${describeFetchError(error)}`
      })
  })

/** A JWK set from its text: `{ "keys": [...] }`, or one JWK, taken as a set of one. */
const toKeySet = (value: unknown, source: string): Effect.Effect<jose.JSONWebKeySet, CliError> =>
  Predicate.isRecord(value) && Array.isArray(value.keys)
    ? Effect.succeed(value as unknown as jose.JSONWebKeySet)
    : Predicate.isRecord(value) && typeof value.kty === "string"
    ? Effect.succeed({ keys: [value as jose.JWK] })
    : Effect.fail(
      new CliError({ exitClass: "usage", detail: `${source} holds no JWK set (an object with "keys") nor a JWK` })
    )

const loadKeySet = (source: string) =>
  Effect.gen(function*() {
    const text = isUrl(source) ? yield* fetchText(source) : yield* (yield* FileSystem.FileSystem).readFileString(source)
    return yield* toKeySet(yield* Input.parseJson(text, source), source)
  })

// A JWT names itself in typ ("JWT", or a media type such as "at+jwt"); anything else is verified as a JWS.
const isJwt = (token: string): boolean => {
  try {
    const typ = jose.decodeProtectedHeader(token).typ
    return typeof typ === "string" && /(^|\+)jwt$/i.test(typ)
  } catch {
    return false
  }
}

const payloadText = (payload: Uint8Array): { readonly payload: string; readonly encoding: "utf8" | "base64url" } => {
  try {
    return { payload: new TextDecoder("utf-8", { fatal: true }).decode(payload), encoding: "utf8" }
  } catch {
    return { payload: Buffer.from(payload).toString("base64url"), encoding: "base64url" }
  }
}

const claimFailed = (code: string, detail: string) => new HsmError.VerificationFailed({ code, detail })

/** The registered claims jose would check, for a JWT whose signature jose cannot check (Ed448). */
const checkClaims = (
  jws: Jws.Verified,
  issuer: Option.Option<string>,
  audience: Option.Option<string>
): Effect.Effect<Jwt.Verified, HsmError.VerificationFailed> =>
  Effect.gen(function*() {
    const payload: unknown = yield* Effect.try({
      try: () => JSON.parse(Buffer.from(jws.payload).toString("utf8")),
      catch: () => claimFailed("ERR_JWT_INVALID", "JWT claims are not a JSON object")
    })
    if (!Predicate.isRecord(payload)) return yield* claimFailed("ERR_JWT_INVALID", "JWT claims are not a JSON object")
    const now = Math.floor(Date.now() / 1000)
    if (typeof payload.exp === "number" && payload.exp <= now) {
      return yield* claimFailed("ERR_JWT_EXPIRED", "\"exp\" claim timestamp check failed")
    }
    if (typeof payload.nbf === "number" && payload.nbf > now) {
      return yield* claimFailed("ERR_JWT_CLAIM_VALIDATION_FAILED", "\"nbf\" claim timestamp check failed")
    }
    if (Option.isSome(issuer) && payload.iss !== issuer.value) {
      return yield* claimFailed("ERR_JWT_CLAIM_VALIDATION_FAILED", "unexpected \"iss\" claim value")
    }
    const aud = payload.aud
    if (Option.isSome(audience) && !(aud === audience.value || (Array.isArray(aud) && aud.includes(audience.value)))) {
      return yield* claimFailed("ERR_JWT_CLAIM_VALIDATION_FAILED", "unexpected \"aud\" claim value")
    }
    return { payload: payload as jose.JWTPayload, protectedHeader: jws.protectedHeader as jose.JWTHeaderParameters }
  })

/** `hsmkey verify` */
export const command = Command.make(
  "verify",
  {
    jwks: Options.text("jwks").pipe(Options.withDescription("The JWK set: a file, or an http(s) URL to fetch")),
    issuer: Options.text("issuer").pipe(Options.withDescription("For a JWT: the iss it must have"), Options.optional),
    audience: Options.text("audience").pipe(
      Options.withDescription("For a JWT: an aud it must have"),
      Options.optional
    ),
    json: Json.option,
    token: Args.text({ name: "TOKEN" }).pipe(
      Args.withDescription("The compact JWS or JWT (default: stdin)"),
      Args.optional
    )
  },
  ({ audience, issuer, json, jwks, token }) =>
    Effect.gen(function*() {
      const compact = Option.isSome(token)
        ? token.value
        : yield* Effect.map(Input.stdin, (bytes) => bytes === undefined ? undefined : Buffer.from(bytes).toString())
      if (compact === undefined || compact.trim() === "") {
        return yield* new CliError({
          exitClass: "usage",
          detail: "no token to verify",
          hint: "pass it, or pipe it on stdin"
        })
      }
      const keys = yield* loadKeySet(jwks)
      const text = compact.trim()
      if (isJwt(text)) {
        const verified = yield* Jwt.verify(text, keys, {
          ...Option.match(issuer, { onNone: () => ({}), onSome: (iss) => ({ issuer: iss }) }),
          ...Option.match(audience, { onNone: () => ({}), onSome: (aud) => ({ audience: aud }) })
        }).pipe(
          Effect.catchIf(
            (error) => error._tag === "VerificationFailed" && error.code === "ERR_JOSE_NOT_SUPPORTED",
            // jose, which checks a JWT's claims, has no Ed448: the signature is checked as a JWS, the claims here.
            () => Effect.flatMap(Jws.verify(text, keys), (jws) => checkClaims(jws, issuer, audience))
          )
        )
        if (json) {
          return yield* Output.json({
            type: "JWT",
            protectedHeader: verified.protectedHeader,
            payload: verified.payload
          })
        }
        yield* Output.line(
          `verified JWT: ${verified.protectedHeader.alg}, kid ${verified.protectedHeader.kid ?? "(none)"}`
        )
        yield* Output.line(`header:  ${JSON.stringify(verified.protectedHeader)}`)
        return yield* Output.line(`payload: ${JSON.stringify(verified.payload)}`)
      }
      const verified = yield* Jws.verify(text, keys)
      const payload = payloadText(verified.payload)
      if (json) {
        return yield* Output.json({
          type: "JWS",
          protectedHeader: verified.protectedHeader,
          payload: payload.payload,
          payloadEncoding: payload.encoding
        })
      }
      yield* Output.line(
        `verified JWS: ${verified.protectedHeader.alg}, kid ${verified.protectedHeader.kid ?? "(none)"}`
      )
      yield* Output.line(`header:  ${JSON.stringify(verified.protectedHeader)}`)
      yield* Output.line(`payload${payload.encoding === "base64url" ? " (base64url)" : ""}: ${payload.payload}`)
    })
).pipe(
  Command.withDescription(
    "Verifies a compact JWS or JWT against a JWK set (a file or a URL; Ed448 too) and prints its header and " +
      "payload. A JWT (typ JWT) has its exp and nbf checked. A token that does not verify exits with 6."
  )
)
