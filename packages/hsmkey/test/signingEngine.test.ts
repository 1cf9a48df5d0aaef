/**
 * The pool's signing lanes under what only the emulator can stage: a session that dies while a batch is
 * queued, transient faults retried (and what is never retried), callers interrupted while they wait in the
 * queue, a pool of one shared by lanes and leases.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Redacted, Schedule, Scope } from "effect"
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
  it.scoped("a session that dies under a queued batch costs no request: all are signed, in a new session", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const { key, pool, sign } = yield* setup(1)
      yield* sign("warm")
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
      const signed = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => `payload ${i}`),
        (payload) => sign(payload),
        { concurrency: "unbounded" }
      )
      for (const jws of signed) yield* Jws.verify(jws, key)
      assert.isAtMost((yield* pool.stats).open, 1)
      assert.isAtMost((yield* control.stats("lanes")).openSessions, 2)
    }).pipe(Effect.provide(emulator)))

  for (
    const [name, code] of [
      ["CKR_SESSION_HANDLE_INVALID", CKR.SESSION_HANDLE_INVALID],
      ["CKR_SESSION_CLOSED", CKR.SESSION_CLOSED],
      ["CKR_USER_NOT_LOGGED_IN", CKR.USER_NOT_LOGGED_IN],
      ["CKR_DEVICE_REMOVED", CKR.DEVICE_REMOVED]
    ] as const
  ) {
    it.scoped(`5 × ${name} on C_Sign under 200 signatures over a pool of 4: no request fails`, () =>
      Effect.gen(function*() {
        const control = yield* MemoryPkcs11.Control
        const { key, pool } = yield* setup(4)
        const strict = yield* SessionPool.make({
          tokenLabel: "lanes",
          userPin,
          maxSessions: 4,
          signingRetry: Schedule.stop
        })
        const run = (on: SessionPool.SessionPool.Service) =>
          Effect.gen(function*() {
            yield* Effect.provideService(Jws.sign("warm", key), SessionPool.SessionPool, on)
            yield* control.failNext({ method: "C_Sign", code, times: 5 })
            return yield* Effect.forEach(
              Array.from({ length: 200 }, (_, i) => `payload ${i}`),
              (payload) => Effect.exit(Effect.provideService(Jws.sign(payload, key), SessionPool.SessionPool, on)),
              { concurrency: 16 }
            )
          })
        // Without retries each fault costs one request: the faults are met.
        assert.strictEqual((yield* run(strict)).filter(Exit.isFailure).length, 5)
        const outcomes = yield* run(pool)
        assert.deepStrictEqual(outcomes.filter(Exit.isFailure).map(String), [])
        for (const outcome of outcomes) if (Exit.isSuccess(outcome)) yield* Jws.verify(outcome.value, key)
        assert.isAtMost((yield* pool.stats).open, 4)
        // A passing CKR_DEVICE_REMOVED costs no login either: the token still holds the login session.
        assert.strictEqual((yield* control.stats("lanes")).loginCalls, 1)
      }).pipe(Effect.provide(emulator)))
  }

  it.scoped("what is not transient reaches the caller at once; signingRetry: Schedule.stop retries nothing", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const pool = yield* SessionPool.make({ tokenLabel: "lanes", userPin, maxSessions: 2 })
      const strict = yield* SessionPool.make({
        tokenLabel: "lanes",
        userPin,
        maxSessions: 2,
        signingRetry: Schedule.stop
      })
      const key = yield* Effect.provideService(
        HsmJwk.generate({ type: "P-256", label: "strict" }),
        SessionPool.SessionPool,
        pool
      )
      const on = (p: SessionPool.SessionPool.Service) =>
        Effect.provideService(Jws.sign("x", key), SessionPool.SessionPool, p)
      yield* on(pool)
      yield* on(strict)
      yield* control.failNext({ method: "C_Sign", code: CKR.GENERAL_ERROR })
      const general = yield* Effect.flip(on(pool))
      assert.strictEqual(general._tag, "Pkcs11Error")
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
      const lost = yield* Effect.flip(on(strict))
      assert.isTrue(lost._tag === "SessionFailed" && lost.reason === "closed", String(lost))
      yield* Jws.verify(yield* on(strict), key)
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

describe("a closed pool", () => {
  it.scoped("a caller waiting when the pool closes, and callers after, fail with PoolClosed, not an interruption", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* SessionPool.make({ tokenLabel: "lanes", userPin, maxSessions: 1 }).pipe(Scope.extend(scope))
      const key = yield* Effect.provideService(
        HsmJwk.generate({ type: "P-256", label: "closing" }),
        SessionPool.SessionPool,
        pool
      )
      const release = yield* Deferred.make<void>()
      const held = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        pool.withSession(Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release)))
      )
      yield* Deferred.await(held)
      const waiter = yield* Effect.fork(pool.withSession(Effect.void))
      const signer = yield* Effect.fork(Effect.provideService(Jws.sign("queued", key), SessionPool.SessionPool, pool))
      yield* Effect.yieldNow()
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      const waited = yield* Fiber.await(waiter)
      assert.isTrue(
        Exit.isFailure(waited) && Cause.failureOption(waited.cause).pipe(Option.exists((e) => e._tag === "PoolClosed")),
        String(waited)
      )
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(closing)
      const signed = yield* Fiber.await(signer)
      // Signed before the close, or told the pool closed: never interrupted.
      assert.isFalse(Exit.isInterrupted(signed), String(signed))
      const after = yield* Effect.flip(Effect.provideService(Jws.sign("after", key), SessionPool.SessionPool, pool))
      assert.strictEqual(after._tag, "PoolClosed")
      const lease = yield* Effect.flip(pool.withSession(Effect.void))
      assert.strictEqual(lease._tag, "PoolClosed")
    }).pipe(Effect.provide(emulator)))
})

describe("a token removed and put back while the pool is idle", () => {
  it.scoped("the next request finds it again, in its new slot, and is signed", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const { key, sign } = yield* setup(2)
      const strict = yield* SessionPool.make({
        tokenLabel: "lanes",
        userPin,
        maxSessions: 2,
        signingRetry: Schedule.stop
      })
      const signStrict = (payload: string) =>
        Effect.provideService(Jws.sign(payload, key), SessionPool.SessionPool, strict)
      yield* sign("before")
      yield* signStrict("before")
      const oldSlot = (yield* control.stats("lanes")).slotId
      yield* control.removeToken("lanes")
      const newSlot = yield* control.insertToken("lanes")
      assert.notStrictEqual(newSlot, oldSlot)
      yield* Jws.verify(yield* sign("after"), key)
      // Without retries the first request is the removal's (what issue 11 found).
      assert.strictEqual((yield* Effect.flip(signStrict("after")))._tag, "TokenNotPresent")
      yield* Jws.verify(yield* signStrict("after that"), key)
    }).pipe(Effect.provide(emulator)))
})
