/**
 * The session in context, where it could go wrong: a pool on another token, nested borrows from a pool of
 * one, a session kept in context while the token loses its login, and a session captured past its lease.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Effect, Layer, Redacted } from "effect"
import { HsmJwk, HsmSession, Jws, SessionPool } from "hsmkey"

const userPin = Redacted.make("context-pin")

const Tokens = MemoryPkcs11.layer({ tokens: [{ label: "A", userPin }, { label: "B", userPin }] })

describe("the session in context", () => {
  it.scoped("serves only work on its own token: the pool in context names the token", () =>
    Effect.gen(function*() {
      const poolA = yield* SessionPool.make({ tokenLabel: "A", userPin })
      const poolB = yield* SessionPool.make({ tokenLabel: "B", userPin })
      yield* Effect.provideService(HsmJwk.generate({ type: "P-256", label: "onB" }), SessionPool.SessionPool, poolB)
      const [found, made, listed] = yield* poolA.withSession(
        Effect.all([
          HsmJwk.fromHsm({ label: "onB" }),
          HsmJwk.generate({ type: "P-256", label: "madeOnB" }),
          HsmJwk.list()
        ]).pipe(Effect.provideService(SessionPool.SessionPool, poolB)),
        { rw: true }
      )
      assert.strictEqual(found.token.label, "B")
      assert.strictEqual(made.token.label, "B")
      assert.deepStrictEqual(listed.map((key) => key.label), ["madeOnB", "onB"])
      const onA = yield* Effect.provideService(HsmJwk.list(), SessionPool.SessionPool, poolA)
      assert.deepStrictEqual(onA, [])
    }).pipe(Effect.provide(Tokens)))

  it.scoped("nested borrows of a pool of one use the session in context instead of waiting for it", () =>
    Effect.gen(function*() {
      const pool = yield* SessionPool.make({ tokenLabel: "A", userPin, maxSessions: 1, acquireTimeout: "1 second" })
      const inner = yield* pool.withSession(
        pool.withSession(Effect.gen(function*() {
          const key = yield* HsmJwk.generate({ type: "P-256", label: "nested" })
          yield* Jws.sign("nested", key)
          return yield* pool.stats
        })),
        { rw: true }
      ).pipe(Effect.provideService(SessionPool.SessionPool, pool))
      assert.deepInclude(inner, { open: 1, leased: 1 })
    }).pipe(Effect.provide(Tokens)))

  it.scoped("kept in context for a whole program, it heals a lost login as a lent session does", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const before = (yield* control.stats("A")).loginCalls
      yield* Effect.gen(function*() {
        const key = yield* HsmJwk.generate({ type: "P-256", label: "kept" })
        yield* Jws.sign("before", key)
        yield* control.forceLogout("A")
        yield* Jws.verify(yield* Jws.sign("after a lost login", key), key)
      }).pipe(
        Effect.provide(
          SessionPool.layerSession({ rw: true }).pipe(
            Layer.provideMerge(SessionPool.layer({ tokenLabel: "A", userPin }))
          )
        )
      )
      assert.strictEqual((yield* control.stats("A")).loginCalls, before + 2)
    }).pipe(Effect.provide(Tokens)))

  it.scoped("captured past its lease, it is never used again: the work borrows from the pool", () =>
    Effect.gen(function*() {
      const pool = yield* SessionPool.make({ tokenLabel: "A", userPin, maxSessions: 3 })
      const key = yield* Effect.provideService(
        HsmJwk.generate({ type: "P-256", label: "captured" }),
        SessionPool.SessionPool,
        pool
      )
      const captured = yield* pool.withSession(HsmSession.CurrentSession)
      // The session it was (the pool's one read-only session) is lent to someone else now.
      yield* pool.session()
      assert.deepInclude(yield* pool.stats, { open: 2, leased: 1 })
      yield* Jws.sign("with a stale session in context", key).pipe(
        Effect.provideService(HsmSession.CurrentSession, captured),
        Effect.provideService(SessionPool.SessionPool, pool)
      )
      assert.deepInclude(yield* pool.stats, { open: 3, leased: 1 })
    }).pipe(Effect.provide(Tokens)))
})
