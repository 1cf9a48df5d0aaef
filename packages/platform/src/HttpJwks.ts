/**
 * The JWKS route: the public keys of a token, published as a JWK Set (RFC 7517 §5) at
 * `/.well-known/jwks.json` on an `@effect/platform` HTTP server, so that relying parties (jose's
 * `createRemoteJWKSet`, any OpenID Connect client) verify what the token signs without an HSM.
 *
 * The set is read from the token (`Jwks.fromToken`) once per `timeToLive` and served from memory in
 * between; requests that come while it is read again wait on that one read. Responses carry
 * `Cache-Control: public, max-age=…` and a strong `ETag`, and a matching `If-None-Match` gets a 304. When
 * the token cannot be read the route answers 503 with `Retry-After` and logs the typed error; the set is
 * read again after `retryAfter`, not on every request. `HEAD` is answered as `GET`, without a body. Only
 * the public members of asymmetric keys are ever written.
 *
 * @since 0.1.0
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Tracer from "effect/Tracer"
import { InvalidOptions } from "hsmkey/HsmError"
import type * as HsmJwk from "hsmkey/HsmJwk"
import * as Jwks from "hsmkey/Jwks"
import type * as SessionPool from "hsmkey/SessionPool"
import * as Expiring from "./internal/expiring.js"
import * as Publication from "./internal/publication.js"

/**
 * Where a JWK Set is published by convention, and where the route is unless `path` says otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPath = "/.well-known/jwks.json" as const

/**
 * The media type of a JWK Set (RFC 7517 §8.5). jose's `createRemoteJWKSet` asks for it (with
 * `application/json`) and reads any JSON body.
 *
 * @since 0.1.0
 * @category constants
 */
export const contentType = "application/jwk-set+json" as const

/**
 * Options of the route. A new key reaches relying parties at most `timeToLive` plus `maxAge` after it is on
 * the token: publish a key that long before signing with it, and keep a retired one published as long
 * after its last signature is still valid.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = HsmJwk.ListError, R = SessionPool.SessionPool> {
  /**
   * The set to publish, read again after each `timeToLive`: by default `Jwks.fromToken()`, every key pair on
   * the token of the `SessionPool` in context. `Jwks.fromToken({ kid })` changes how kids are made;
   * `Effect.succeed(Jwks.fromKeys(keys))` publishes a fixed list; its typed failures answer 503 as the
   * token's do.
   */
  readonly keys?: Effect.Effect<Jwks.JsonWebKeySet, E, R> | undefined
  /** Where `route`, `router` and `layerHttpLayerRouter` serve the set (default `/.well-known/jwks.json`). */
  readonly path?: `/${string}` | undefined
  /** How long clients may keep a response: `Cache-Control: public, max-age` (default 5 minutes). */
  readonly maxAge?: Duration.DurationInput | undefined
  /** How long the set read from the token is served before it is read again (default 1 minute). */
  readonly timeToLive?: Duration.DurationInput | undefined
  /**
   * After a failed read, how long the route answers 503 before it reads again, and what its `Retry-After`
   * says (default 10 seconds, at least 1).
   */
  readonly retryAfter?: Duration.DurationInput | undefined
}

/**
 * What `make` gives: an `HttpApp` that answers every request itself.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler = Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>

const DEFAULT_MAX_AGE = Duration.minutes(5)
const DEFAULT_TIME_TO_LIVE = Duration.minutes(1)
const DEFAULT_RETRY_AFTER = Duration.seconds(10)

const OPTION_NAMES: ReadonlySet<string> = new Set(["keys", "path", "maxAge", "timeToLive", "retryAfter"])

const invalid = (detail: string) => new InvalidOptions({ detail: `HttpJwks: ${detail}` })

// A duration option: absent, or what `Duration.decode` reads as a finite duration.
const duration = (
  options: Options<unknown, unknown>,
  name: "maxAge" | "timeToLive" | "retryAfter",
  fallback: Duration.Duration
): Duration.Duration | InvalidOptions => {
  const value = options[name]
  if (value === undefined) return fallback
  const decoded = Duration.decodeUnknown(value)
  return Option.isSome(decoded) && Duration.isFinite(decoded.value)
    ? decoded.value
    : invalid(`${name} must be a finite duration`)
}

interface Settings {
  readonly maxAge: Duration.Duration
  readonly timeToLive: Duration.Duration
  readonly retryAfter: Duration.Duration
  readonly path: HttpRouter.PathInput
}

const settings = (options: Options<unknown, unknown>): Effect.Effect<Settings, InvalidOptions> =>
  Effect.suspend(() => {
    if (!Predicate.isRecord(options)) return Effect.fail(invalid("the options must be an object"))
    for (const name of Object.keys(options)) {
      if (!OPTION_NAMES.has(name)) return Effect.fail(invalid(`unknown option ${JSON.stringify(name.slice(0, 64))}`))
    }
    if (options.keys !== undefined && !Effect.isEffect(options.keys)) {
      return Effect.fail(invalid("keys must be an Effect of a JsonWebKeySet"))
    }
    const path: unknown = options.path ?? defaultPath
    if (typeof path !== "string" || !path.startsWith("/")) return Effect.fail(invalid("path must start with \"/\""))
    const maxAge = duration(options, "maxAge", DEFAULT_MAX_AGE)
    if (maxAge instanceof InvalidOptions) return Effect.fail(maxAge)
    const timeToLive = duration(options, "timeToLive", DEFAULT_TIME_TO_LIVE)
    if (timeToLive instanceof InvalidOptions) return Effect.fail(timeToLive)
    const retryAfter = duration(options, "retryAfter", DEFAULT_RETRY_AFTER)
    if (retryAfter instanceof InvalidOptions) return Effect.fail(retryAfter)
    return Effect.succeed({ maxAge, timeToLive, retryAfter, path: path as HttpRouter.PathInput })
  })

// A failed read in a log line: the error's tag and message (hsmkey's messages name no secret), never its fields.
const describe = (error: unknown): string =>
  Predicate.hasProperty(error, "_tag") && typeof error._tag === "string"
    ? `${error._tag}${error instanceof Error ? `: ${error.message}` : ""}`
    : error instanceof Error
    ? error.message
    : `a failure (${typeof error})`

const UNAVAILABLE = new TextEncoder().encode(JSON.stringify({
  error: "temporarily_unavailable",
  error_description: "The key set cannot be read now; retry later."
}))

/**
 * The handler that serves the set, with its own cache of it. The `SessionPool` in context (or what `keys`
 * needs) is taken here, once; the handler needs only the request and never fails: a failed read is a 503.
 * Mount it with `HttpRouter.get(path, handler)`; `HEAD` is answered as `GET`, without a body.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { HttpJwks } from "@hsmkey/platform"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "signing" })
 *   const app = HttpRouter.empty.pipe(HttpRouter.get(HttpJwks.defaultPath, yield* HttpJwks.make()))
 *   // One request, in process; `HttpServer.serve(app)` answers the same over HTTP.
 *   const request = HttpServerRequest.fromWeb(new Request("http://localhost/.well-known/jwks.json"))
 *   const answer = yield* Effect.provideService(app, HttpServerRequest.HttpServerRequest, request)
 *   const response = HttpServerResponse.toWeb(answer)
 *   assert.strictEqual(response.status, 200)
 *   assert.strictEqual(response.headers.get("content-type"), "application/jwk-set+json")
 *   assert.strictEqual(response.headers.get("cache-control"), "public, max-age=300")
 *   const body = yield* Effect.promise(() => response.json() as Promise<{ readonly keys: unknown }>)
 *   assert.deepStrictEqual(body.keys, [key.publicJwk])
 * })
 *
 * Effect.runPromise(Effect.provide(Effect.scoped(program), Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = HsmJwk.ListError, R = SessionPool.SessionPool>(
  options: Options<E, R> = {}
): Effect.Effect<Handler, InvalidOptions, R> => Effect.map(build(options), ({ handler }) => handler)

const build = <E, R>(
  options: Options<E, R>
): Effect.Effect<{ readonly handler: Handler; readonly path: HttpRouter.PathInput }, InvalidOptions, R> =>
  Effect.gen(function*() {
    const { maxAge, path, retryAfter, timeToLive } = yield* settings(options)
    const keys = (options.keys ?? Jwks.fromToken()) as Effect.Effect<Jwks.JsonWebKeySet, E, R>
    // The services `keys` needs, without the span `make` ran in: a read is a child of the request that made it.
    const captured = Context.omit(Tracer.ParentSpan)(yield* Effect.context<R>()) as Context.Context<R>
    const maxAgeSeconds = Math.floor(Duration.toSeconds(maxAge))
    const retryAfterSeconds = Math.max(1, Math.ceil(Duration.toSeconds(retryAfter)))
    const cacheControl = `public, max-age=${maxAgeSeconds}`

    const read = keys.pipe(
      Effect.map(Publication.make),
      Effect.tap((publication) => Effect.annotateCurrentSpan("hsmkey.jwks.keys", publication.keys)),
      Effect.tapError((error) =>
        Effect.logWarning(
          `The JWKS route could not read its key set (${describe(error)}); it answers 503 for ${retryAfterSeconds} s`
        )
      ),
      Effect.withSpan("HttpJwks.read", { captureStackTrace: false }),
      (read) =>
        Effect.contextWithEffect((current: Context.Context<never>) =>
          Effect.provide(read, Context.merge(current, captured))
        )
    )
    const current = yield* Expiring.make(read, (exit) =>
      Exit.isSuccess(exit)
        ? Duration.toMillis(timeToLive)
        : Exit.isInterrupted(exit)
        ? 0
        : retryAfterSeconds * 1000)

    const unavailable = HttpServerResponse.uint8Array(UNAVAILABLE, {
      status: 503,
      contentType: "application/json",
      headers: { "cache-control": "no-store", "retry-after": String(retryAfterSeconds) }
    })

    const respond = (request: HttpServerRequest.HttpServerRequest, publication: Publication.Publication) => {
      const headers = { "cache-control": cacheControl, etag: publication.etag }
      if (Publication.noneMatch(request.headers["if-none-match"], publication.etag)) {
        return HttpServerResponse.empty({ status: 304, headers })
      }
      return request.method === "HEAD"
        // The length a GET would have: servers send no body for HEAD, and this one has none to send.
        ? HttpServerResponse.empty({
          status: 200,
          headers: { ...headers, "content-type": contentType, "content-length": String(publication.body.length) }
        })
        : HttpServerResponse.uint8Array(publication.body, { contentType, headers })
    }

    const handler: Handler = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      Effect.match(current, {
        onFailure: () => unavailable,
        onSuccess: (publication) => respond(request, publication)
      })).pipe(Effect.withSpan("HttpJwks.serve", { captureStackTrace: false }))
    return { handler, path }
  })

/**
 * The route: `GET` (and so `HEAD`) of `path` (default `/.well-known/jwks.json`) to `make`'s handler, for
 * `HttpRouter.fromIterable` or `HttpRouter.append`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const route = <E = HsmJwk.ListError, R = SessionPool.SessionPool>(
  options: Options<E, R> = {}
): Effect.Effect<HttpRouter.Route<never, never>, InvalidOptions, R> =>
  Effect.map(build(options), ({ handler, path }) => HttpRouter.makeRoute("GET", path, handler))

/**
 * A router that has only the route, to `HttpRouter.concat` or `HttpRouter.mount` into an app's router.
 *
 * @since 0.1.0
 * @category constructors
 */
export const router = <E = HsmJwk.ListError, R = SessionPool.SessionPool>(
  options: Options<E, R> = {}
): Effect.Effect<HttpRouter.HttpRouter, InvalidOptions, R> =>
  Effect.map(route(options), (route) => HttpRouter.fromIterable([route]))

/**
 * The route as a layer of `HttpLayerRouter`, the router built from layers.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHttpLayerRouter = <E = HsmJwk.ListError, R = SessionPool.SessionPool>(
  options: Options<E, R> = {}
): Layer.Layer<never, InvalidOptions, HttpLayerRouter.HttpRouter | R> =>
  Layer.unwrapEffect(
    Effect.map(build(options), ({ handler, path }) => HttpLayerRouter.add("GET", path, handler))
  )
