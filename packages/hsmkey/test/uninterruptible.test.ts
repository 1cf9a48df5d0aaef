/**
 * hsmkey called from an uninterruptible region: `Effect.acquireRelease`'s acquire and release, finalizers,
 * `HttpApp.toWebHandler`. Its own waits (for a permit, a session, a lane, a login) end as they do anywhere
 * else: by the grant, by `acquireTimeout`, or by the pool closing, never by interrupting the caller.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Option,
  Redacted,
  Scope,
  TestClock,
  TestServices
} from "effect"
import { HsmJwk, Jwe, Jws, Jwt, SessionPool } from "hsmkey"

const userPin = Redacted.make("uninterruptible-pin")

const Emulator = MemoryPkcs11.layer({ tokens: [{ label: "u", userPin }] })

const pool = (options: Partial<SessionPool.SessionPoolOptions> = {}) =>
  SessionPool.make({ tokenLabel: "u", userPin, acquireTimeout: "3 seconds", ...options })

/**
 * Runs `self` uninterruptibly, and fails the test (rather than hang it) when it has not finished within
 * `limit` of real time: the stuck fiber is left behind, disconnected.
 */
const promptly = <A, E, R>(self: Effect.Effect<A, E, R>, limit: Duration.DurationInput = "2 seconds") =>
  Effect.uninterruptible(self).pipe(
    Effect.disconnect,
    Effect.timeoutFail({
      duration: limit,
      onTimeout: () => new Error(`an uninterruptible caller still waits after ${Duration.format(limit)}`)
    }),
    TestServices.provideLive
  )

/** Awaits a fiber, failing the test when it has not ended within `limit` of real time. */
const ended = <A, E>(fiber: Fiber.Fiber<A, E>, limit: Duration.DurationInput = "2 seconds") =>
  Fiber.await(fiber).pipe(
    Effect.timeoutFail({
      duration: limit,
      onTimeout: () => new Error(`the caller still waits after ${Duration.format(limit)}`)
    }),
    TestServices.provideLive
  )

/** The tag of the error an exit failed with. */
const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>): Option.Option<string> =>
  Exit.isFailure(exit) ? Option.map(Cause.failureOption(exit.cause), (error) => error._tag) : Option.none()

/**
 * Lends the pool's session to a scope of its own, closed by the test or, should it fail first, before the
 * pool closes (a pool's close waits for its leases).
 */
const hold = (p: SessionPool.SessionPool.Service) =>
  Effect.gen(function*() {
    const holder = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(holder, Exit.void))
    yield* Scope.extend(p.session(), holder)
    return holder
  })

/** Lets forked fibers run up to their next wait. */
const settle = TestServices.provideLive(Effect.sleep("20 millis"))

describe("hsmkey in an uninterruptible region, on the emulator", () => {
  it.scoped("keys: generate, fromHsm, list, destroy", () =>
    Effect.gen(function*() {
      const p = yield* pool()
      const work = Effect.gen(function*() {
        const made = yield* promptly(HsmJwk.generate({ type: "P-256", label: "made" }))
        const found = yield* promptly(HsmJwk.fromHsm({ label: "made" }))
        assert.strictEqual(found.kid, made.kid)
        assert.deepStrictEqual((yield* promptly(HsmJwk.list())).map((key) => key.label), ["made"])
        yield* promptly(HsmJwk.destroy(made))
        assert.deepStrictEqual(yield* promptly(HsmJwk.list()), [])
      })
      yield* Effect.provideService(work, SessionPool.SessionPool, p)
    }).pipe(Effect.provide(Emulator)))

  it.scoped("JOSE: Jws.sign on the signing engine and in a session lent by withSession, Jwt.sign, Jwe.decrypt", () =>
    Effect.gen(function*() {
      const p = yield* pool()
      const work = Effect.gen(function*() {
        const key = yield* HsmJwk.generate({ type: "P-256", label: "signing" })
        const rsa = yield* HsmJwk.generate({ type: "RSA-2048", label: "inbox", use: "enc" })
        // Twice each: once while the engine opens its lane, once on the lane it has.
        for (const payload of ["first", "second"]) {
          const jws = yield* promptly(Jws.sign(payload, key))
          assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(jws, key)).payload), payload)
        }
        const lent = yield* promptly(SessionPool.withSession(Jws.sign("lent", key)))
        assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(lent, key)).payload), "lent")
        const inside = yield* SessionPool.withSession(promptly(Jws.sign("in the session in context", key)))
        yield* Jws.verify(inside, key)
        const jwt = yield* promptly(Jwt.sign({ scope: "api" }, key, { subject: "alice" }))
        assert.strictEqual((yield* Jwt.verify(jwt, key)).payload.sub, "alice")
        const jwe = yield* Jwe.encrypt("secret", rsa, { enc: "A256GCM" })
        const { plaintext } = yield* promptly(Jwe.decrypt(jwe, rsa))
        assert.strictEqual(new TextDecoder().decode(plaintext), "secret")
      })
      yield* Effect.provideService(work, SessionPool.SessionPool, p)
    }).pipe(Effect.provide(Emulator)))

  it.scoped("Effect.acquireRelease with a key made in acquire and destroyed in release, the release on interruption", () =>
    Effect.gen(function*() {
      const p = yield* pool()
      const resource = Effect.acquireRelease(
        HsmJwk.generate({ type: "Ed25519", label: "scoped" }),
        (key) => Effect.orDie(HsmJwk.destroy(key))
      )
      const work = Effect.gen(function*() {
        const label = yield* promptly(Effect.scoped(Effect.map(resource, (key) => key.label)))
        assert.strictEqual(label, "scoped")
        assert.deepStrictEqual(yield* HsmJwk.list(), [])
        // A fiber interrupted while it holds the key: its release runs as the interruption ends it.
        const acquired = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          Effect.scoped(
            Effect.zipRight(resource, Deferred.succeed(acquired, undefined)).pipe(
              Effect.zipRight(Effect.never)
            )
          )
        )
        yield* Deferred.await(acquired)
        yield* Fiber.interruptFork(fiber)
        assert.isTrue(Exit.isInterrupted(yield* ended(fiber)))
        assert.deepStrictEqual(yield* HsmJwk.list(), [])
      })
      yield* Effect.provideService(work, SessionPool.SessionPool, p)
    }).pipe(Effect.provide(Emulator)))

  it.scoped("a busy pool of one: an uninterruptible caller fails with PoolTimeout at acquireTimeout, not later", () =>
    Effect.gen(function*() {
      const p = yield* pool({ maxSessions: 1 })
      const holder = yield* hold(p)
      const waiter = yield* Effect.fork(Effect.uninterruptible(p.withSession(Effect.void)))
      yield* settle
      assert.strictEqual((yield* p.stats).waiting, 1)
      yield* TestClock.adjust("2999 millis")
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)), "no PoolTimeout before acquireTimeout")
      yield* TestClock.adjust("1 millis")
      const exit = yield* ended(waiter)
      assert.deepStrictEqual(failureTag(exit), Option.some("PoolTimeout"))
      assert.strictEqual((yield* p.stats).waiting, 0)
      yield* Scope.close(holder, Exit.void)
      // No permit was lost: the pool lends its one session again.
      yield* promptly(p.withSession(Effect.void))
      assert.deepInclude(yield* p.stats, { leased: 0, waiting: 0 })
    }).pipe(Effect.provide(Emulator)))

  it.scoped("a read/write caller waiting for a place beside a held read-only session times out too", () =>
    Effect.gen(function*() {
      const p = yield* pool({ maxSessions: 1 })
      const holder = yield* hold(p)
      const waiter = yield* Effect.fork(Effect.uninterruptible(p.withSession(Effect.void, { rw: true })))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      const exit = yield* ended(waiter)
      assert.deepStrictEqual(failureTag(exit), Option.some("PoolTimeout"))
      yield* Scope.close(holder, Exit.void)
      yield* promptly(p.withSession(Effect.void, { rw: true }))
      assert.deepInclude(yield* p.stats, { leased: 0, waiting: 0 })
    }).pipe(Effect.provide(Emulator)))

  it.scoped("a waiting uninterruptible caller gets the session once it is given back, interrupted or not", () =>
    Effect.gen(function*() {
      const p = yield* pool({ maxSessions: 1 })
      const holder = yield* hold(p)
      const ran = { count: 0 }
      const lease = Effect.uninterruptible(p.withSession(Effect.sync(() => ran.count++)))
      const plain = yield* Effect.fork(lease)
      const interrupted = yield* Effect.fork(lease)
      yield* settle
      // An interruption waits for the uninterruptible region to end; the caller's waits are its own.
      yield* Fiber.interruptFork(interrupted)
      yield* settle
      assert.strictEqual((yield* p.stats).waiting, 2)
      yield* Scope.close(holder, Exit.void)
      assert.isTrue(Exit.isSuccess(yield* ended(plain)))
      assert.isTrue(Exit.isInterrupted(yield* ended(interrupted)))
      assert.strictEqual(ran.count, 2)
      assert.deepInclude(yield* p.stats, { leased: 0, waiting: 0 })
      yield* promptly(p.withSession(Effect.void))
    }).pipe(Effect.provide(Emulator)))

  it.scoped("a waiting uninterruptible caller fails with PoolClosed when the pool closes", () =>
    Effect.gen(function*() {
      const poolScope = yield* Scope.make()
      const p = yield* Scope.extend(pool({ maxSessions: 1, acquireTimeout: "1 hour" }), poolScope)
      const holder = yield* hold(p)
      const waiter = yield* Effect.fork(Effect.uninterruptible(p.withSession(Effect.void)))
      yield* settle
      // The pool's close waits for the lease it lent; the waiting caller hears of it at once.
      const closing = yield* Effect.fork(Scope.close(poolScope, Exit.void))
      const exit = yield* ended(waiter)
      assert.deepStrictEqual(failureTag(exit), Option.some("PoolClosed"))
      yield* Scope.close(holder, Exit.void)
      assert.isTrue(Exit.isSuccess(yield* ended(closing)))
    }).pipe(Effect.provide(Emulator)))
})
