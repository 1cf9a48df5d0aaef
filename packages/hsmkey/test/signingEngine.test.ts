/**
 * The pool's signing lanes under what only the emulator can stage: a session that dies while a batch is
 * queued, callers interrupted while they wait in the queue, a pool of one shared by lanes and leases.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Effect, Exit, Fiber, Redacted } from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"

const { CKR } = Constants

const userPin = Redacted.make("lanes-user-4711")

const emulator = MemoryPkcs11.layer({ tokens: [{ label: "lanes", userPin }] })

const setup = (maxSessions: number) =>
  Effect.gen(function*() {
    const pool = yield* SessionPool.make({ tokenLabel: "lanes", userPin, maxSessions, acquireTimeout: "2 seconds" })
    const key = yield* Effect.provideService(
      HsmJwk.generate({ type: "P-256", label: "lane-key" }),
      SessionPool.SessionPool,
      pool
    )
    const sign = (payload: string) => Effect.provideService(Jws.sign(payload, key), SessionPool.SessionPool, pool)
    return { pool, key, sign }
  })

describe("signing lanes", () => {
  it.scoped("a session that dies under a queued batch fails one request; the rest are signed on a new one", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const { key, pool, sign } = yield* setup(1)
      yield* sign("warm")
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => `payload ${i}`),
        (payload) => Effect.exit(sign(payload)),
        { concurrency: "unbounded" }
      )
      const failures = outcomes.filter(Exit.isFailure)
      assert.strictEqual(failures.length, 1)
      const failure = failures[0].cause
      assert.isTrue(failure._tag === "Fail" && failure.error._tag === "SessionFailed", String(failure))
      for (const outcome of outcomes) {
        if (Exit.isSuccess(outcome)) yield* Jws.verify(outcome.value, key)
      }
      assert.isAtMost((yield* pool.stats).open, 1)
      assert.isAtMost((yield* control.stats("lanes")).openSessions, 2)
    }).pipe(Effect.provide(emulator)))

  it.scoped("callers interrupted while queued leave nothing behind; the others are signed", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      yield* Effect.scoped(Effect.gen(function*() {
        const { key, pool, sign } = yield* setup(1)
        yield* sign("warm")
        const fibers = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => `payload ${i}`),
          (payload) => Effect.fork(sign(payload))
        )
        yield* Effect.forEach(fibers.filter((_, i) => i % 2 === 1), Fiber.interrupt, { discard: true })
        const kept = yield* Effect.forEach(fibers.filter((_, i) => i % 2 === 0), Fiber.join)
        assert.strictEqual(kept.length, 20)
        for (const jws of kept) yield* Jws.verify(jws, key)
        assert.strictEqual((yield* pool.stats).leased, 0)
        yield* sign("after")
      }))
      assert.strictEqual((yield* control.stats("lanes")).openSessions, 0)
    }).pipe(Effect.provide(emulator)))

  it.scoped("on a pool of one, a lease takes the idle lane's session, and signing goes on after it", () =>
    Effect.gen(function*() {
      const { key, pool, sign } = yield* setup(1)
      yield* sign("before")
      assert.strictEqual((yield* pool.stats).open, 1)
      const inLease = yield* pool.withSession(
        Effect.provideService(HsmJwk.fromHsm({ label: "lane-key" }), SessionPool.SessionPool, pool)
      )
      assert.strictEqual(inLease.kid, key.kid)
      yield* Jws.verify(yield* sign("after"), key)
      assert.strictEqual((yield* pool.stats).open, 1)
    }).pipe(Effect.provide(emulator)))
})
