/**
 * SessionPool under what only the emulator can stage: PIN lockout flags, session limits, injected
 * failures, a token pulled out and put back in another slot.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import {
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Redacted,
  Schedule,
  Scope,
  TestClock,
  TestServices
} from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import { recordingTracer } from "../../../test/support/tracing.js"
import * as Metrics from "../src/internal/metrics.js"

const { CKR } = Constants

const userPin = Redacted.make("pool-user-4711")

const emulator = (
  token: Partial<MemoryPkcs11.TokenOptions> = {},
  more: ReadonlyArray<MemoryPkcs11.TokenOptions> = []
) => MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin, ...token }, ...more] })

const pool = (options: Partial<SessionPool.SessionPoolOptions> = {}) =>
  SessionPool.make({ tokenLabel: "emu", userPin, maxSessions: 4, ...options })

/** A P-256 signing key made on the token through the pool (in a read/write session it borrows). */
const generateKey = (p: SessionPool.SessionPool.Service) =>
  Effect.provideService(HsmJwk.generate({ type: "P-256", label: "pool-key" }), SessionPool.SessionPool, p)

/** A compact JWS, signed in a session the pool lends. */
const sign = (p: SessionPool.SessionPool.Service, key: HsmJwk.HsmJwk) =>
  Effect.provideService(Jws.sign("pool payload", key), SessionPool.SessionPool, p)

describe("SessionPool on the emulator", () => {
  it.scoped("1,000 borrowers never see more than 4 sessions plus the login one, per the token's own count", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* pool()
        const key = yield* generateKey(p)
        yield* control.resetPeak("emu")
        yield* Effect.forEach(Array.from({ length: 1000 }), () => sign(p, key), {
          concurrency: "unbounded",
          discard: true
        })
        const stats = yield* control.stats("emu")
        assert.isAtMost(stats.peakSessions, 5)
        assert.strictEqual(stats.loginCalls, 1)
      }))
      assert.strictEqual((yield* control.stats("emu")).openSessions, 0)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, undefined)
    }).pipe(Effect.provide(emulator())))

  it.scoped("refuses to log in when one more wrong PIN would lock it, or it is locked: no C_Login", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const pkcs11 = yield* Pkcs11.Pkcs11
      const [slot] = yield* pkcs11.slots()
      const session = yield* pkcs11.openSession(slot)
      yield* Effect.flip(pkcs11.login(session, Redacted.make("bad-1")))
      yield* Effect.flip(pkcs11.login(session, Redacted.make("bad-2")))
      assert.isTrue((yield* pkcs11.tokenInfo(slot)).userPin.finalTry)
      const before = (yield* control.stats("emu")).loginCalls

      const finalTry = yield* Effect.flip(Effect.scoped(pool()))
      assert.strictEqual(finalTry._tag, "PinLocked")
      assert.strictEqual(finalTry._tag === "PinLocked" ? finalTry.reason : "", "final-try")
      assert.strictEqual((yield* control.stats("emu")).loginCalls, before)

      yield* Effect.flip(pkcs11.login(session, Redacted.make("bad-3")))
      const locked = yield* Effect.flip(Effect.scoped(pool()))
      assert.strictEqual(locked._tag === "PinLocked" ? locked.reason : locked._tag, "locked")
      assert.strictEqual((yield* control.stats("emu")).loginCalls, before + 1)
    }).pipe(Effect.provide(emulator({ pinRetries: 3 }))))

  it.effect("a PIN that must be changed first is PinExpired, without a C_Login", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const error = yield* Effect.flip(Effect.scoped(pool()))
      assert.strictEqual(error._tag, "PinExpired")
      assert.strictEqual(error._tag === "PinExpired" ? error.reason : "", "to-be-changed")
      assert.strictEqual((yield* control.stats("emu")).loginCalls, 0)
    }).pipe(Effect.provide(emulator({ userPinToBeChanged: true }))))

  it.scoped("caps the pool by the token's session limit, less the login session", () =>
    Effect.gen(function*() {
      const p = yield* pool({ maxSessions: 8 })
      assert.strictEqual((yield* p.stats).maxSessions, 2)
      const control = yield* MemoryPkcs11.Control
      yield* Effect.forEach(Array.from({ length: 20 }), () => p.withSession(Effect.yieldNow()), {
        concurrency: "unbounded",
        discard: true
      })
      assert.strictEqual((yield* control.stats("emu")).peakSessions, 3)
    }).pipe(Effect.provide(emulator({ maxSessions: 3 }))))

  it.scoped("closes sessions left idle longer than idleTimeToLive; the login stays", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const p = yield* pool({ idleTimeToLive: "1 minute" })
      yield* Effect.forEach(Array.from({ length: 3 }), () => p.withSession(Effect.yieldNow()), {
        concurrency: "unbounded",
        discard: true
      })
      assert.strictEqual((yield* control.stats("emu")).openSessions, 4)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual((yield* control.stats("emu")).openSessions, 1)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, "user")
      // New sessions are logged in, without another C_Login: they make a private key and sign with it.
      yield* sign(p, yield* generateKey(p))
      assert.strictEqual((yield* control.stats("emu")).loginCalls, 1)
    }).pipe(Effect.provide(emulator())))

  it.scoped("two tokens with one label are TokenAmbiguous; the serial number picks one", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(pool())
      assert.strictEqual(error._tag, "TokenAmbiguous")
      const p = yield* SessionPool.make({ tokenSerial: "serial-b", userPin })
      assert.strictEqual(p.token.serialNumber, "serial-b")
    }).pipe(
      Effect.provide(emulator({ serialNumber: "serial-a" }, [{ label: "emu", serialNumber: "serial-b", userPin }]))
    ))

  it.scoped("a session the token forgets during a sign costs no request (signed again); the pool recovers", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const p = yield* pool({ maxSessions: 2 })
      const key = yield* generateKey(p)
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
      yield* sign(p, key)
      // Without retries, the request is the fault's.
      const strict = yield* pool({ maxSessions: 2, signingRetry: Schedule.stop })
      yield* sign(strict, key)
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
      const failed = yield* Effect.flip(sign(strict, key))
      assert.strictEqual(failed._tag, "SessionFailed")
      const results = yield* Effect.forEach(Array.from({ length: 10 }), () => sign(p, key), {
        concurrency: "unbounded"
      })
      assert.strictEqual(results.length, 10)
      const stats = yield* p.stats
      assert.isAtMost(stats.open, 2)
      assert.isAtMost((yield* control.stats("emu")).openSessions, 3)
    }).pipe(Effect.provide(emulator())))

  it.scoped("a removed token fails every waiter with TokenNotPresent; put back in a new slot, it serves again", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const p = yield* pool({ maxSessions: 2 })
      const key = yield* generateKey(p)
      yield* Effect.forEach(Array.from({ length: 4 }), () => sign(p, key), { concurrency: "unbounded" })
      const oldSlot = (yield* control.stats("emu")).slotId
      const logins = (yield* control.stats("emu")).loginCalls

      yield* control.removeToken("emu")
      const outcomes = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.either(sign(p, key)), {
        concurrency: "unbounded"
      }).pipe(TestServices.provideLive, Effect.timeout("10 seconds"))
      for (const outcome of outcomes) {
        assert.strictEqual(outcome._tag === "Left" ? outcome.left._tag : "Right", "TokenNotPresent")
      }
      assert.strictEqual((yield* p.stats).leased, 0)

      const newSlot = yield* control.insertToken("emu")
      assert.notStrictEqual(newSlot, oldSlot)
      // The key loaded before the token went away signs again: keys are found by CKA_ID, not by handle.
      const signed = yield* Effect.forEach(Array.from({ length: 4 }), () => sign(p, key), {
        concurrency: "unbounded"
      })
      assert.strictEqual(signed.length, 4)
      assert.strictEqual((yield* control.stats("emu")).loginCalls, logins + 1)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, "user")
    }).pipe(Effect.provide(emulator())))

  it.scoped("pools whose PIN was changed behind their back fail after one C_Login; the new PIN logs in", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const pkcs11 = yield* Pkcs11.Pkcs11
      const first = yield* pool()
      const second = yield* pool()
      const key = yield* generateKey(first)
      // Someone changes the user PIN while the pools are up (they share one login), and the token loses
      // its login, as after a reset.
      const newPin = Redacted.make("pool-user-0815")
      yield* Effect.scoped(Effect.gen(function*() {
        const [slot] = yield* pkcs11.slots()
        const session = yield* Effect.acquireRelease(
          pkcs11.openSession(slot, { rw: true }),
          (session) => Effect.orDie(pkcs11.closeSession(session))
        )
        yield* pkcs11.setPin(session, userPin, newPin)
      }))
      yield* control.forceLogout("emu")
      const before = (yield* control.stats("emu")).loginCalls
      const failures = yield* Effect.all(
        Array.from({ length: 10 }, (_, i) => Effect.flip(sign(i % 2 === 0 ? first : second, key))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(failures.map((e) => e._tag), Array.from({ length: 10 }, () => "PinIncorrect"))
      assert.strictEqual((yield* control.stats("emu")).loginCalls, before + 1)
      // The rejected PIN no longer holds the token: a pool with the new one may join, and logs in.
      const third = yield* pool({ userPin: newPin })
      yield* sign(third, key)
      assert.strictEqual((yield* control.stats("emu")).loginCalls, before + 2)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, "user")
    }).pipe(Effect.provide(emulator())))

  it.scoped("counts logins, waits, sessions in use and errors by tag", () =>
    Effect.gen(function*() {
      const tagged = <T>(metric: Metric.Metric<any, any, T>, ...tags: ReadonlyArray<readonly [string, string]>) =>
        Metric.value(tags.reduce((m, [k, v]) => Metric.tagged(m, k, v), metric))
      const logins = (yield* tagged(Metrics.logins, ["token", "metrics"])).count
      const p = yield* SessionPool.make({ tokenLabel: "metrics", userPin, maxSessions: 1, acquireTimeout: "20 millis" })
      assert.strictEqual((yield* tagged(Metrics.logins, ["token", "metrics"])).count, logins + 1)
      const waits = (yield* tagged(Metrics.sessionWait, ["token", "metrics"])).count
      const scope = yield* Scope.make()
      yield* Scope.extend(p.session(), scope)
      assert.strictEqual((yield* tagged(Metrics.sessionsInUse, ["token", "metrics"])).value, 1)
      const timeouts = (yield* tagged(Metrics.errors, ["token", "metrics"], ["error", "PoolTimeout"])).count
      yield* Effect.flip(p.withSession(Effect.void)).pipe(TestServices.provideLive)
      assert.strictEqual(
        (yield* tagged(Metrics.errors, ["token", "metrics"], ["error", "PoolTimeout"])).count,
        timeouts + 1
      )
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* tagged(Metrics.sessionsInUse, ["token", "metrics"])).value, 0)
      assert.strictEqual((yield* tagged(Metrics.sessionWait, ["token", "metrics"])).count, waits + 1)
    }).pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "metrics", userPin }] }))))

  it.scoped("traces each acquisition and each token call, with the token and the mechanism, never the PIN", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      yield* Effect.gen(function*() {
        const p = yield* pool()
        yield* sign(p, yield* generateKey(p))
      }).pipe(Effect.withTracer(tracer), Effect.scoped)
      const acquire = spans.find((s) => s.name === "SessionPool.acquire")
      assert.strictEqual(acquire?.attributes.get("hsm.token"), "emu")
      const signSpan = spans.find((s) => s.name === "Pkcs11.C_Sign")
      assert.strictEqual(signSpan?.attributes.get("pkcs11.mechanism"), "CKM_ECDSA")
      assert.strictEqual(signSpan?.attributes.get("pkcs11.token"), "emu")
      assert.isDefined(spans.find((s) => s.name === "SessionPool.login"))
      assert.notInclude(JSON.stringify(spans.map((s) => [s.name, [...s.attributes]])), Redacted.value(userPin))
    }).pipe(Effect.provide(emulator())))
})

describe("deadlines under load on the emulator", () => {
  it.live(
    "with 256 callers signing ES256, a lease's acquireTimeout of 100 ms ends it within 300 ms",
    () =>
      Effect.gen(function*() {
        const p = yield* pool({ maxSessions: 2, acquireTimeout: "100 millis" })
        const key = yield* generateKey(p)
        let stop = false
        const load = yield* Effect.fork(Effect.forEach(
          Array.from({ length: 256 }),
          () => Effect.whileLoop({ while: () => !stop, body: () => sign(p, key), step: () => {} }),
          { concurrency: "unbounded", discard: true }
        ))
        yield* Effect.sleep("200 millis")
        const start = performance.now()
        // Once: the emulator's ECDSA held the event loop, and this lease ended after 1.5 s.
        const lease = yield* Effect.exit(p.withSession(Effect.sleep("10 millis")))
        const took = performance.now() - start
        stop = true
        yield* Fiber.join(load)
        assert.isBelow(
          took,
          300,
          `the lease ended after ${took.toFixed(0)} ms: ${Exit.isSuccess(lease) ? "lent" : lease}`
        )
      }).pipe(Effect.scoped, Effect.provide(emulator())),
    60_000
  )
})

describe("a passing CKR_DEVICE_REMOVED beside another session on the token", () => {
  // The token keeps a login while any session of the process is open: here a public pool's lease.
  const besideHeldSession = (faults: Effect.Effect<void, never, MemoryPkcs11.Control>) =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) warnings.push(String(message))
      })
      const held = yield* Deferred.make<void>()
      const publicPool = yield* SessionPool.make({ tokenLabel: "emu", maxSessions: 1 })
      const lease = yield* Effect.forkScoped(publicPool.withSession(Deferred.await(held)))
      const signed = yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* pool()
        const key = yield* generateKey(p)
        yield* sign(p, key)
        yield* faults
        const outcomes = yield* Effect.forEach([1, 2, 3], () => Effect.exit(sign(p, key)))
        for (const outcome of outcomes) if (Exit.isSuccess(outcome)) yield* Jws.verify(outcome.value, key)
        return outcomes.filter(Exit.isSuccess).length
      })).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const after = yield* control.stats("emu")
      yield* Deferred.succeed(held, undefined)
      yield* Fiber.join(lease)
      return { signed, after, warnings }
    })

  it.scoped("costs no request and no login, and the pool still logs out when it closes", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      // The signature fails, and so does the check of the session it was tried on.
      const { after, signed, warnings } = yield* besideHeldSession(Effect.zipRight(
        control.failNext({ method: "C_Sign", code: CKR.DEVICE_REMOVED }),
        control.failNext({ method: "C_GetSessionInfo", code: CKR.DEVICE_REMOVED })
      ))
      assert.strictEqual(signed, 3)
      // Once: a second C_Login, answered CKR_USER_ALREADY_LOGGED_IN, a warning, and no logout at the end.
      assert.strictEqual(after.loginCalls, 1)
      assert.strictEqual(after.loggedIn, undefined)
      assert.strictEqual(after.openSessions, 1)
      assert.deepStrictEqual(warnings, [])
    }).pipe(Effect.provide(emulator())))

  it.scoped("when the login session's check fails too, the login that outlived it is still the pool's to end", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const { after, signed, warnings } = yield* besideHeldSession(Effect.zipRight(
        control.failNext({ method: "C_Sign", code: CKR.DEVICE_REMOVED }),
        control.failNext({ method: "C_GetSessionInfo", code: CKR.DEVICE_REMOVED, times: 2 })
      ))
      assert.strictEqual(signed, 3)
      // The pool logged in again on a new login session, and the token answered that it was logged in.
      assert.strictEqual(after.loginCalls, 2)
      assert.strictEqual(after.loggedIn, undefined)
      assert.strictEqual(after.openSessions, 1)
      assert.deepStrictEqual(warnings, [])
    }).pipe(Effect.provide(emulator())))
})

describe("a C_CloseSession that fails while the token keeps the session", () => {
  const warningsTo = (warnings: Array<string>) =>
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ logLevel, message }) => {
        if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) warnings.push(String(message))
      })
    )

  it.scoped("is closed again when the pool closes: no session is left open, and the pool logs out", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const warnings: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* pool()
        yield* sign(p, yield* generateKey(p))
        yield* control.failNext({ method: "C_CloseSession", code: CKR.GENERAL_ERROR })
      })).pipe(Effect.provide(warningsTo(warnings)))
      const after = yield* control.stats("emu")
      // Once: the session stayed open on the token, and the token stayed logged in through it.
      assert.strictEqual(after.openSessions, 0)
      assert.strictEqual(after.loggedIn, undefined)
      assert.strictEqual(warnings.length, 1)
      assert.include(warnings[0], "CKR_GENERAL_ERROR")
    }).pipe(Effect.provide(emulator())))

  it.scoped("is closed again before the pool opens another, so the token's count stays the pool's", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const p = yield* pool({ maxSessions: 1 })
      const key = yield* generateKey(p)
      yield* sign(p, key)
      // A session left in an operation is closed when its lease ends; its close fails.
      yield* control.failNext({ method: "C_SignInit", code: CKR.OPERATION_ACTIVE })
      yield* control.failNext({ method: "C_CloseSession", code: CKR.DEVICE_ERROR })
      const error = yield* Effect.flip(
        Effect.provideService(p.withSession(Jws.sign("stuck", key)), SessionPool.SessionPool, p)
      )
      assert.strictEqual(error._tag, "Pkcs11Error")
      yield* control.resetPeak("emu")
      assert.strictEqual((yield* control.stats("emu")).openSessions, 2)
      yield* Jws.verify(yield* sign(p, key), key)
      // The login session and the one the pool opened: the kept one was closed first.
      assert.strictEqual((yield* control.stats("emu")).openSessions, 2)
      assert.strictEqual((yield* control.stats("emu")).peakSessions, 2)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)), Effect.provide(emulator())))

  for (const asked of [false, true]) {
    it.scoped(
      `a pool closing on a token removed and put back meanwhile (${
        asked ? "" : "not "
      }asked while out) warns of nothing`,
      () =>
        Effect.gen(function*() {
          const control = yield* MemoryPkcs11.Control
          const warnings: Array<string> = []
          yield* Effect.scoped(Effect.gen(function*() {
            const p = yield* pool()
            const key = yield* generateKey(p)
            yield* sign(p, key)
            yield* control.removeToken("emu")
            if (asked) assert.strictEqual((yield* Effect.flip(sign(p, key)))._tag, "TokenNotPresent")
            yield* control.insertToken("emu")
          })).pipe(Effect.provide(warningsTo(warnings)))
          assert.deepStrictEqual(warnings, [])
          assert.strictEqual((yield* control.stats("emu")).openSessions, 0)
          assert.strictEqual((yield* control.stats("emu")).loggedIn, undefined)
        }).pipe(Effect.provide(emulator()))
    )
  }

  it.scoped("one that fails every time is named when the pool closes", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const warnings: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* pool({ maxSessions: 1 })
        yield* sign(p, yield* generateKey(p))
        yield* control.failNext({ method: "C_CloseSession", code: CKR.GENERAL_ERROR, times: 2 })
      })).pipe(Effect.provide(warningsTo(warnings)))
      assert.strictEqual((yield* control.stats("emu")).openSessions, 1)
      assert.include(warnings.at(-1), "1 sessions of token \"emu\" could not be closed")
    }).pipe(Effect.provide(emulator())))
})

describe("SessionPool layers", () => {
  it.effect("SessionPool.layer provides the pool; the accessors borrow from it", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      // Operations borrow from the layer's pool on their own; its sessions are logged in.
      const key = yield* HsmJwk.generate({ type: "P-256", label: "layer-key" })
      const found = yield* SessionPool.withSession(HsmJwk.fromHsm({ label: "layer-key" }))
      assert.strictEqual(found.kid, key.kid)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, "user")
      assert.strictEqual((yield* control.stats("emu")).loginCalls, 1)
      const ro = yield* Effect.scoped(SessionPool.session())
      assert.deepStrictEqual([ro.token.label, ro.rw], ["emu", false])
      const rw = yield* Effect.scoped(Effect.map(SessionPool.session({ rw: true }), (s) => s.rw))
      assert.isTrue(rw)
    }).pipe(
      Effect.provide(SessionPool.layer({ tokenLabel: "emu", userPin }).pipe(Layer.provideMerge(emulator())))
    ))

  it.effect("a missing token fails the layer build with TokenNotFound", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.provide(
          SessionPool.SessionPool,
          SessionPool.layer({ tokenLabel: "absent" }).pipe(Layer.provide(emulator()))
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      const failure = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.causeOption(exit)) : undefined
      assert.include(String(failure), "TokenNotFound")
    }))
})
