/**
 * The JWKS route as a relying party and an operator see it: the token's public keys with their media type
 * and caching headers, 304s, a cache that reads the token once per `timeToLive`, a 503 that says when to
 * come back, and a real HTTP client (jose's `createRemoteJWKSet`) that verifies what the token signed.
 */
import {
  HttpApp,
  HttpLayerRouter,
  HttpRouter,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Constants, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { HttpJwks } from "@hsmkey/platform"
import { SoftHsm } from "@hsmkey/softhsm"
import { Context, Effect, Layer, Logger, Redacted, type Scope, TestClock, TestServices } from "effect"
import { HsmJwk, Jwks, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { softHsmAvailable } from "../../../test/support/softhsm.js"
import { type RecordedSpan, recordingTracer } from "../../../test/support/tracing.js"

const { CKR } = Constants

const userPin = Redacted.make("jwks-route-pin")
const ec = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })

/** How often the route read the token's key list: `C_FindObjects*` calls for private keys, counted on the way. */
class Reads extends Context.Tag("test/Reads")<Reads, { count: number }>() {}

const counting: Layer.Layer<Pkcs11.Pkcs11 | Reads, never, Pkcs11.Pkcs11> = Layer.effectContext(
  Effect.map(Pkcs11.Pkcs11, (inner) => {
    const reads = { count: 0 }
    const service: Pkcs11.Pkcs11.Service = {
      ...inner,
      findObjects: (session, template) => {
        if (template.class === Constants.CKO.PRIVATE_KEY && template.label === undefined) reads.count++
        return inner.findObjects(session, template)
      }
    }
    return Context.make(Pkcs11.Pkcs11, service).pipe(Context.add(Reads, reads))
  })
)

const Emulated = SessionPool.layer({ tokenLabel: "jwks", userPin }).pipe(
  Layer.provideMerge(counting),
  Layer.provideMerge(MemoryPkcs11.layer({
    tokens: [{
      label: "jwks",
      userPin,
      keys: [
        { label: "ec", id: "01", key: ec.privateKey },
        { label: "rsa", id: "02", key: rsa.privateKey },
        { label: "hmac", id: "03", key: { kty: "oct", k: Crypto.randomBytes(32).toString("base64url") } }
      ]
    }]
  }))
)

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

/** One request to an app, in process, answered as a server would hand it to the web. */
const call = (
  app: Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    unknown,
    HttpServerRequest.HttpServerRequest | Scope.Scope
  >,
  init: RequestInit & { readonly path?: string } = {}
): Effect.Effect<Answer> =>
  Effect.gen(function*() {
    const request = HttpServerRequest.fromWeb(new Request(`http://localhost${init.path ?? HttpJwks.defaultPath}`, init))
    const response = yield* Effect.provideService(
      Effect.orDie(Effect.scoped(app)),
      HttpServerRequest.HttpServerRequest,
      request
    )
    const web = HttpServerResponse.toWeb(response)
    return { status: web.status, headers: web.headers, body: yield* Effect.promise(() => web.text()) }
  })

const reads = Effect.map(Reads, (reads) => reads.count)

describe("HttpJwks on the emulator", () => {
  it.effect("serves Jwks.fromToken as application/jwk-set+json with Cache-Control and a strong ETag", () =>
    Effect.gen(function*() {
      const app = yield* HttpJwks.router()
      const answer = yield* call(app)
      assert.strictEqual(answer.status, 200)
      assert.deepStrictEqual(JSON.parse(answer.body), yield* Jwks.fromToken())
      assert.lengthOf(JSON.parse(answer.body).keys, 2, "key pairs only: the HMAC secret is not published")
      assert.strictEqual(answer.headers.get("content-type"), "application/jwk-set+json")
      assert.strictEqual(answer.headers.get("cache-control"), "public, max-age=300")
      assert.strictEqual(answer.headers.get("content-length"), String(Buffer.byteLength(answer.body)))
      const etag = answer.headers.get("etag")!
      assert.strictEqual(etag, `"${Crypto.createHash("sha256").update(answer.body).digest("base64url")}"`)
      for (const secret of ["\"d\"", "\"p\"", "\"q\"", "\"k\"", Redacted.value(userPin)]) {
        assert.notInclude(answer.body, secret)
      }
      const again = yield* call(app)
      assert.strictEqual(again.headers.get("etag"), etag, "the same keys give the same tag")
    }).pipe(Effect.provide(Emulated)))

  it.effect("answers a matching If-None-Match with 304 and no body; any other with the set", () =>
    Effect.gen(function*() {
      const app = yield* HttpJwks.router({ maxAge: "90 seconds" })
      const etag = (yield* call(app)).headers.get("etag")!
      for (const header of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
        const answer = yield* call(app, { headers: { "if-none-match": header } })
        assert.strictEqual(answer.status, 304, header)
        assert.strictEqual(answer.body, "")
        assert.strictEqual(answer.headers.get("etag"), etag)
        assert.strictEqual(answer.headers.get("cache-control"), "public, max-age=90")
      }
      const stale = yield* call(app, { headers: { "if-none-match": "\"stale\"" } })
      assert.strictEqual(stale.status, 200)
      assert.deepStrictEqual(JSON.parse(stale.body), yield* Jwks.fromToken())
      const head = yield* call(app, { method: "HEAD", headers: { "if-none-match": etag } })
      assert.strictEqual(head.status, 304)
    }).pipe(Effect.provide(Emulated)))

  it.effect("answers HEAD with GET's headers and no body; other methods are the router's", () =>
    Effect.gen(function*() {
      const app = yield* HttpJwks.router()
      const get = yield* call(app)
      const head = yield* call(app, { method: "HEAD" })
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.body, "")
      for (const name of ["content-type", "content-length", "cache-control", "etag"]) {
        assert.strictEqual(head.headers.get(name), get.headers.get(name), name)
      }
      const post = yield* Effect.provideService(
        Effect.flip(Effect.scoped(app)),
        HttpServerRequest.HttpServerRequest,
        HttpServerRequest.fromWeb(new Request(`http://localhost${HttpJwks.defaultPath}`, { method: "POST" }))
      )
      assert.strictEqual(post._tag, "RouteNotFound")
    }).pipe(Effect.provide(Emulated)))

  it.effect("served by HttpApp.toWebHandler, which runs the app uninterruptibly, it answers a web Request", () =>
    Effect.gen(function*() {
      const handler = HttpApp.toWebHandler(yield* HttpJwks.make())
      const answer = (init?: RequestInit) =>
        Effect.promise(() => handler(new Request(`http://localhost${HttpJwks.defaultPath}`, init))).pipe(
          Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("no answer within 2 s") }),
          TestServices.provideLive
        )
      const response = yield* answer()
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), "application/jwk-set+json")
      assert.deepStrictEqual(yield* Effect.promise(() => response.json()), yield* Jwks.fromToken())
      const etag = response.headers.get("etag")!
      assert.strictEqual((yield* answer({ headers: { "if-none-match": etag } })).status, 304)
    }).pipe(Effect.provide(Emulated)))

  it.effect("reads the token once per timeToLive, once for concurrent requests, and shows a new key after it", () =>
    Effect.gen(function*() {
      const app = yield* HttpJwks.router({ timeToLive: "30 seconds" })
      const before = yield* reads
      const first = yield* Effect.all(Array.from({ length: 8 }, () => call(app)), { concurrency: "unbounded" })
      assert.strictEqual((yield* reads) - before, 1, "concurrent requests wait on one read")
      const added = yield* HsmJwk.generate({ type: "Ed25519", label: "added" })
      yield* TestClock.adjust("29 seconds")
      const cached = yield* call(app)
      assert.strictEqual(cached.body, first[0].body, "served from memory until timeToLive")
      assert.strictEqual((yield* reads) - before, 1)
      yield* TestClock.adjust("1 second")
      const fresh = yield* call(app)
      assert.strictEqual((yield* reads) - before, 2)
      assert.deepStrictEqual(JSON.parse(fresh.body), yield* Jwks.fromToken())
      assert.include(JSON.parse(fresh.body).keys.map((key: { kid: string }) => key.kid), added.kid)
      assert.notStrictEqual(fresh.headers.get("etag"), cached.headers.get("etag"))
      const revalidated = yield* call(app, { headers: { "if-none-match": cached.headers.get("etag")! } })
      assert.strictEqual(revalidated.status, 200, "a tag of the old set no longer matches")
    }).pipe(Effect.provide(Emulated)))

  it.effect("a token failure is a 503 with Retry-After and a small JSON body, logged once, read again later", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => logs.push(String(message)))
      const control = yield* MemoryPkcs11.Control
      const app = yield* HttpJwks.router({ timeToLive: "1 minute", retryAfter: "15 seconds" })
      assert.strictEqual((yield* call(app)).status, 200)
      yield* TestClock.adjust("1 minute")
      yield* control.failNext({ method: "C_FindObjectsInit", code: CKR.DEVICE_ERROR })
      const before = yield* reads
      const failed = yield* call(app).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      assert.strictEqual(failed.status, 503)
      assert.strictEqual(failed.headers.get("retry-after"), "15")
      assert.strictEqual(failed.headers.get("content-type"), "application/json")
      assert.strictEqual(failed.headers.get("cache-control"), "no-store")
      assert.deepStrictEqual(JSON.parse(failed.body), {
        error: "temporarily_unavailable",
        error_description: "The key set cannot be read now; retry later."
      })
      assert.lengthOf(logs, 1)
      assert.match(logs[0], /Pkcs11Error.*CKR_DEVICE_ERROR.*503/)
      assert.notInclude(logs[0], Redacted.value(userPin))

      yield* TestClock.adjust("14 seconds")
      assert.strictEqual((yield* call(app)).status, 503, "the failure is kept for retryAfter")
      assert.strictEqual((yield* reads) - before, 1, "and the token is not read meanwhile")
      yield* TestClock.adjust("1 second")
      const recovered = yield* call(app)
      assert.strictEqual(recovered.status, 200)
      assert.deepStrictEqual(JSON.parse(recovered.body), yield* Jwks.fromToken())
    }).pipe(Effect.provide(Emulated)))

  it.scoped("as a layer of HttpLayerRouter, or a route, at the path it is given", () =>
    Effect.gen(function*() {
      const expected = JSON.parse(JSON.stringify(yield* Jwks.fromToken()))
      const layered = yield* HttpLayerRouter.toHttpEffect(HttpJwks.layerHttpLayerRouter({ path: "/keys" }))
      const routed = HttpRouter.fromIterable([yield* HttpJwks.route({ path: "/keys" })])
      for (const app of [layered, routed]) {
        const answer = yield* call(app, { path: "/keys" })
        assert.strictEqual(answer.status, 200)
        assert.deepStrictEqual(JSON.parse(answer.body), expected)
        assert.strictEqual(answer.headers.get("content-type"), "application/jwk-set+json")
        const head = yield* call(app, { path: "/keys", method: "HEAD" })
        assert.strictEqual(head.status, 200)
        assert.strictEqual(head.body, "")
        const elsewhere = yield* Effect.flip(Effect.provideService(
          Effect.scoped(app),
          HttpServerRequest.HttpServerRequest,
          HttpServerRequest.fromWeb(new Request(`http://localhost${HttpJwks.defaultPath}`))
        ))
        assert.strictEqual((elsewhere as { _tag: string })._tag, "RouteNotFound")
      }
    }).pipe(Effect.provide(Emulated)))

  it.effect("a request is one HttpJwks.serve span; a read of the set is a child of the request that made it", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      // Made under a span of its own, as in a traced layer: the reads must not hang under it.
      const app = yield* Effect.withSpan(HttpJwks.router(), "startup")
      yield* call(app).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      yield* call(app).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      const byId = new Map(spans.map((span) => [span.spanId, span]))
      const parentOf = (span: RecordedSpan) => span.parentId === undefined ? undefined : byId.get(span.parentId)?.name
      assert.deepStrictEqual(spans.filter((span) => span.name === "HttpJwks.serve").map(parentOf), [
        "request",
        "request"
      ])
      const reads = spans.filter((span) => span.name === "HttpJwks.read")
      assert.deepStrictEqual(reads.map(parentOf), ["HttpJwks.serve"], "one read, under the first request")
      assert.strictEqual(reads[0].attributes.get("hsmkey.jwks.keys"), 2)
      assert.include(spans.map(parentOf), "HttpJwks.read", "Jwks.fromToken's own spans are under the read")
    }).pipe(Effect.provide(Emulated)))

  it.effect("publishes a given set without a pool, and never a private or secret member of it", () =>
    Effect.gen(function*() {
      const pair = ec.privateKey.export({ format: "jwk" })
      const given = {
        keys: [
          { ...pair, kid: "given", alg: "ES256", use: "sig" },
          { kty: "oct", k: "c2VjcmV0", kid: "secret" }
        ]
      } as unknown as Jwks.JsonWebKeySet
      // No SessionPool in context: the type says so, and nothing asks for one.
      const app = yield* HttpJwks.router({ keys: Effect.succeed(given), path: "/keys" })
      const answer = yield* call(app, { path: "/keys" })
      assert.strictEqual(answer.status, 200)
      assert.deepStrictEqual(JSON.parse(answer.body), {
        keys: [{ kty: "EC", x: pair.x, y: pair.y, crv: "P-256", kid: "given", alg: "ES256", use: "sig" }]
      })
      assert.notInclude(answer.body, pair.d!)
    }))

  it.effect("the README's options: kids from labels, a max-age of 10 minutes, a read every 30 seconds", () =>
    Effect.gen(function*() {
      const handler = yield* HttpJwks.make({
        keys: Jwks.fromToken({ kid: "label" }),
        maxAge: "10 minutes",
        timeToLive: "30 seconds",
        retryAfter: "5 seconds"
      })
      const app = HttpRouter.empty.pipe(HttpRouter.get(HttpJwks.defaultPath, handler))
      const answer = yield* call(app)
      assert.deepStrictEqual(JSON.parse(answer.body).keys.map((key: { kid: string }) => key.kid), ["ec", "rsa"])
      assert.strictEqual(answer.headers.get("cache-control"), "public, max-age=600")
      const before = yield* reads
      yield* TestClock.adjust("30 seconds")
      yield* call(app)
      assert.strictEqual((yield* reads) - before, 1)
    }).pipe(Effect.provide(Emulated)))

  it.effect("options that cannot work fail with InvalidOptions", () =>
    Effect.gen(function*() {
      const keys = Effect.succeed({ keys: [] })
      for (
        const options of [
          { keys, maxAge: "forever" },
          { keys, timeToLive: Infinity },
          { keys, path: "jwks.json" },
          { keys, ttl: "1 minute" },
          { keys: { keys: [] } }
        ]
      ) {
        const error = yield* Effect.flip(HttpJwks.make(options as HttpJwks.Options<never, never>))
        assert.strictEqual(error._tag, "InvalidOptions", JSON.stringify(options))
        assert.include(error.message, "HttpJwks")
      }
    }))
})

// The same over a real socket, on each backend: what `createRemoteJWKSet` fetches and what `HEAD` gets.
const Served = NodeHttpServer.layer(() => Http.createServer(), { host: "127.0.0.1", port: 0 })

const overHttp = (name: string, backend: Layer.Layer<SessionPool.SessionPool, unknown>, skip: boolean) =>
  describe.skipIf(skip)(`HttpJwks over HTTP on ${name}`, () => {
    it.live("jose's createRemoteJWKSet verifies a JWT signed in the token; HEAD gets headers only", () =>
      Effect.gen(function*() {
        const key = yield* SessionPool.withSession(HsmJwk.generate({ type: "P-256", label: "served" }), { rw: true })
        yield* HttpServer.serveEffect(yield* HttpJwks.router({ maxAge: "1 minute" }))
        const url = new URL(HttpJwks.defaultPath, yield* HttpServer.addressFormattedWith(Effect.succeed))
        const jwt = yield* Jwt.sign({ sub: "alice" }, key, { issuer: "hsmkey-test", expiresIn: "1 minute" })
        const { payload, protectedHeader } = yield* Effect.promise(() =>
          jose.jwtVerify(jwt, jose.createRemoteJWKSet(url), { issuer: "hsmkey-test" })
        )
        assert.strictEqual(payload.sub, "alice")
        assert.strictEqual(protectedHeader.kid, key.kid)

        const get = yield* Effect.promise(() => fetch(url))
        const body = yield* Effect.promise(() => get.text())
        assert.deepStrictEqual(JSON.parse(body), yield* Jwks.fromToken())
        assert.strictEqual(get.headers.get("content-type"), "application/jwk-set+json")
        assert.strictEqual(get.headers.get("cache-control"), "public, max-age=60")
        const etag = get.headers.get("etag")!
        const notModified = yield* Effect.promise(() => fetch(url, { headers: { "if-none-match": etag } }))
        assert.strictEqual(notModified.status, 304)

        const head = yield* Effect.promise(() => fetch(url, { method: "HEAD" }))
        assert.strictEqual(head.status, 200)
        assert.strictEqual(head.headers.get("content-length"), String(Buffer.byteLength(body)))
        assert.strictEqual(head.headers.get("etag"), etag)
        assert.strictEqual(yield* Effect.promise(() => head.text()), "")
        const post = yield* Effect.promise(() => fetch(url, { method: "POST" }))
        assert.strictEqual(post.status, 404)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(Served, backend))))
  })

overHttp("the emulator", Emulated, false)
overHttp("SoftHSM2", SoftHsm.layerPool({ tokenLabel: "jwks-route" }), !softHsmAvailable)

describe("packages/platform/README.md", () => {
  it("shows only code that CI runs: each block is in examples/jwks-server.ts or this file", () => {
    const read = (file: string) => Fs.readFileSync(Path.resolve(import.meta.dirname, file), "utf8")
    // Compared line by line without the indentation, which a block out of its context loses.
    const lines = (text: string) => text.split("\n").map((line) => line.trim()).join("\n")
    const sources = [read("../../../examples/jwks-server.ts"), read("HttpJwks.test.ts")].map(lines)
    const blocks = [...read("../README.md").matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => lines(match[1]))
    assert.isAtLeast(blocks.length, 2)
    for (const block of blocks) {
      assert.isTrue(sources.some((source) => source.includes(block)), `README block run nowhere:\n${block}`)
    }
  })
})
