/**
 * What an application's tracer sees of signing: one span per JWS or JWT, with the key's kid, and
 * everything else hsmkey opens beneath it. Under Effect's built-in tracer no span is made at all (nothing
 * could read it), which the signing benchmark measures; here, the spans a tracer is owed.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Pkcs11 } from "@hsmkey/pkcs11"
import { Effect } from "effect"
import { HsmJwk, Jws, Jwt, SessionPool } from "hsmkey"
import { backends, TestToken } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { quickType, unique } from "./support/pool.js"
import { recordingTracer } from "./support/tracing.js"

const pool = Effect.flatMap(
  TestToken,
  (token) => SessionPool.make({ tokenLabel: token.label, userPin: token.userPin, maxSessions: 2 })
)

for (const backend of backends("hsmkey-tracing")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(backend.layer, { timeout: 120_000 })((it) => {
      const test = offered(it)
      test(
        "each Jws.sign is one span with the kid; what it opens on the way is beneath it",
        {},
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: yield* quickType, label: unique("traced") })
            const { spans, tracer } = recordingTracer()
            const signed = yield* Effect.forEach(
              Array.from({ length: 20 }, (_, i) => `payload ${i}`),
              (payload) => Jws.sign(payload, key)
            ).pipe(Effect.withTracer(tracer))
            for (const jws of signed) yield* Jws.verify(jws, key)
            const roots = spans.filter((span) => span.parentId === undefined)
            assert.deepStrictEqual(roots.map((span) => span.name), Array(20).fill("Jws.sign"))
            for (const root of roots) assert.strictEqual(root.attributes.get("hsm.kid"), key.kid)
            const beneath = (root: string) => spans.filter((span) => span.parentId === root)
            // The first signature proves the key's handle on the Effect path, with spans of its own.
            assert.isAbove(beneath(roots[0].spanId).length, 0)
            // The others take the fast path, which opens none, where the library signs calls in parallel; a
            // library signed one call at a time (openCryptoki) takes the Effect path, which checks the session.
            const fast = (yield* Pkcs11.Pkcs11).signDirect !== undefined
            for (const root of roots.slice(1)) {
              assert.deepStrictEqual(
                beneath(root.spanId).map((span) => span.name),
                fast ? [] : ["Pkcs11.C_GetSessionInfo", "HsmJwk.sign"]
              )
            }
          }).pipe(Effect.provideServiceEffect(SessionPool.SessionPool, pool), Effect.scoped)
      )

      test("Jwt.sign is one span, its Jws.sign beneath it", {}, () =>
        Effect.gen(function*() {
          const key = yield* HsmJwk.generate({ type: yield* quickType, label: unique("traced-jwt") })
          yield* Jwt.sign({ sub: "warm" }, key)
          const { spans, tracer } = recordingTracer()
          yield* Jwt.sign({ sub: "traced" }, key).pipe(Effect.withTracer(tracer))
          assert.deepStrictEqual(spans.slice(0, 2).map((span) => [span.name, span.parentId]), [
            ["Jwt.sign", undefined],
            ["Jws.sign", "0"]
          ])
          assert.isTrue(spans.slice(2).every((span) => span.parentId !== undefined && span.parentId !== "0"))
          assert.strictEqual(spans[0].attributes.get("hsm.kid"), key.kid)
        }).pipe(Effect.provideServiceEffect(SessionPool.SessionPool, pool), Effect.scoped))
    })
  })
}
