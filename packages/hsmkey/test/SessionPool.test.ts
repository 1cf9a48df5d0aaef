/**
 * SessionPool under what only the emulator can stage: PIN lockout flags, session limits, injected
 * failures, a token pulled out and put back in another slot.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, Curve, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Exit, Layer, Metric, Option, Redacted, Scope, TestClock, TestServices, Tracer } from "effect"
import { type HsmSession, SessionPool } from "hsmkey"
import * as LoginRegistry from "../src/internal/loginRegistry.js"
import * as Metrics from "../src/internal/metrics.js"

const { CKM, CKO, CKR } = Constants

const userPin = Redacted.make("pool-user-4711")

const emulator = (
  token: Partial<MemoryPkcs11.TokenOptions> = {},
  more: ReadonlyArray<MemoryPkcs11.TokenOptions> = []
) => MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin, ...token }, ...more] })

const pool = (options: Partial<SessionPool.SessionPoolOptions> = {}) =>
  SessionPool.make({ tokenLabel: "emu", userPin, maxSessions: 4, ...options })

const keyId = new Uint8Array([0x42])

const generateKey = (session: HsmSession.HsmSession) =>
  session.pkcs11.generateKeyPair(session.handle, { type: CKM.EC_KEY_PAIR_GEN }, {
    publicKey: { ecParams: Curve.ecParams("P-256"), token: true, id: keyId },
    privateKey: { sign: true, token: true, private: true, id: keyId }
  })

const sign = (session: HsmSession.HsmSession) =>
  Effect.gen(function*() {
    const [key] = yield* session.pkcs11.findObjects(session.handle, { class: CKO.PRIVATE_KEY, id: keyId })
    return yield* session.pkcs11.sign(session.handle, { type: CKM.ECDSA }, key, new Uint8Array(32))
  })

describe("SessionPool on the emulator", () => {
  it.scoped("1,000 borrowers never see more than 4 sessions plus the login one, per the token's own count", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* pool()
        yield* p.withSession(generateKey, { rw: true })
        yield* control.resetPeak("emu")
        yield* Effect.forEach(Array.from({ length: 1000 }), () => p.withSession(sign), {
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
      yield* Effect.forEach(Array.from({ length: 20 }), () => p.withSession(() => Effect.yieldNow()), {
        concurrency: "unbounded",
        discard: true
      })
      assert.strictEqual((yield* control.stats("emu")).peakSessions, 3)
    }).pipe(Effect.provide(emulator({ maxSessions: 3 }))))

  it.scoped("closes sessions left idle longer than idleTimeToLive; the login stays", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const p = yield* pool({ idleTimeToLive: "1 minute" })
      yield* Effect.forEach(Array.from({ length: 3 }), () => p.withSession(() => Effect.yieldNow()), {
        concurrency: "unbounded",
        discard: true
      })
      assert.strictEqual((yield* control.stats("emu")).openSessions, 4)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual((yield* control.stats("emu")).openSessions, 1)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, "user")
      assert.strictEqual((yield* p.withSession((s) => s.pkcs11.sessionInfo(s.handle))).state, "ro-user")
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

  it.scoped("a session the token forgets during a sign fails that request typed; the pool recovers", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const p = yield* pool({ maxSessions: 2 })
      yield* p.withSession(generateKey, { rw: true })
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
      const failed = yield* Effect.flip(p.withSession(sign))
      assert.strictEqual(failed._tag, "SessionFailed")
      const results = yield* Effect.forEach(Array.from({ length: 10 }), () => p.withSession(sign), {
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
      yield* p.withSession(generateKey, { rw: true })
      yield* Effect.forEach(Array.from({ length: 4 }), () => p.withSession(sign), { concurrency: "unbounded" })
      const oldSlot = (yield* control.stats("emu")).slotId
      const logins = (yield* control.stats("emu")).loginCalls

      yield* control.removeToken("emu")
      const outcomes = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.either(p.withSession(sign)), {
        concurrency: "unbounded"
      }).pipe(TestServices.provideLive, Effect.timeout("10 seconds"))
      for (const outcome of outcomes) {
        assert.strictEqual(outcome._tag === "Left" ? outcome.left._tag : "Right", "TokenNotPresent")
      }
      assert.strictEqual((yield* p.stats).leased, 0)

      const newSlot = yield* control.insertToken("emu")
      assert.notStrictEqual(newSlot, oldSlot)
      const signed = yield* Effect.forEach(Array.from({ length: 4 }), () => p.withSession(sign), {
        concurrency: "unbounded"
      })
      assert.strictEqual(signed.length, 4)
      assert.strictEqual((yield* control.stats("emu")).loginCalls, logins + 1)
      const slots = yield* p.withSession((s) => Effect.succeed(s.slotId))
      assert.strictEqual(slots, newSlot)
    }).pipe(Effect.provide(emulator())))

  it.scoped("leases that see a lost login at once log in again once", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const pkcs11 = yield* Pkcs11.Pkcs11
      const [slot] = yield* pkcs11.slots()
      const info = yield* pkcs11.tokenInfo(slot)
      const entry = yield* LoginRegistry.acquire(pkcs11, info, userPin)
      yield* LoginRegistry.ensureLoggedIn(entry, userPin)
      const epoch = entry.epoch
      yield* control.forceLogout("emu")
      const before = (yield* control.stats("emu")).loginCalls
      yield* Effect.all(Array.from({ length: 10 }, () => LoginRegistry.relogin(entry, userPin, epoch)), {
        concurrency: "unbounded"
      })
      assert.strictEqual((yield* control.stats("emu")).loginCalls, before + 1)
      assert.isAbove(entry.epoch, epoch)
      assert.strictEqual((yield* control.stats("emu")).loggedIn, "user")
    }).pipe(Effect.provide(emulator())))

  it.scoped("pools that joined with a PIN the token then rejects fail without another C_Login", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const pkcs11 = yield* Pkcs11.Pkcs11
      const [slot] = yield* pkcs11.slots()
      const info = yield* pkcs11.tokenInfo(slot)
      const wrong = Redacted.make("not-the-pin-6160")
      const first = yield* LoginRegistry.acquire(pkcs11, info, wrong)
      const second = yield* LoginRegistry.acquire(pkcs11, info, wrong)
      const before = (yield* control.stats("emu")).loginCalls
      assert.strictEqual((yield* Effect.flip(LoginRegistry.ensureLoggedIn(first, wrong)))._tag, "PinIncorrect")
      assert.strictEqual((yield* Effect.flip(LoginRegistry.ensureLoggedIn(second, wrong)))._tag, "PinIncorrect")
      assert.strictEqual((yield* Effect.flip(LoginRegistry.relogin(second, wrong, second.epoch)))._tag, "PinIncorrect")
      assert.strictEqual((yield* control.stats("emu")).loginCalls, before + 1)
      // The rejected PIN no longer holds the token: the right one may join and log in.
      const right = yield* LoginRegistry.acquire(pkcs11, info, userPin)
      yield* LoginRegistry.ensureLoggedIn(right, userPin)
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
      yield* Effect.flip(p.withSession(() => Effect.void)).pipe(TestServices.provideLive)
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
      const spans: Array<{ name: string; attributes: Map<string, unknown> }> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          const span = Tracer.externalSpan({ spanId: `${spans.length}`, traceId: "t" })
          const attributes = new Map<string, unknown>()
          spans.push({ name, attributes })
          return {
            ...span,
            _tag: "Span",
            name,
            parent,
            context,
            links: [...links],
            kind,
            status: { _tag: "Started", startTime },
            attributes,
            sampled: true,
            end: () => {},
            attribute: (key: string, value: unknown) => attributes.set(key, value),
            event: () => {},
            addLinks: () => {}
          }
        },
        context: (f) => f()
      })
      yield* Effect.gen(function*() {
        const p = yield* pool()
        yield* p.withSession(generateKey, { rw: true })
        yield* p.withSession(sign)
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

describe("SessionPool layers", () => {
  it.effect("SessionPool.layer provides the pool; the accessors borrow from it", () =>
    Effect.gen(function*() {
      const state = yield* SessionPool.withSession((session) =>
        Effect.map(session.pkcs11.sessionInfo(session.handle), (info) => info.state)
      )
      assert.strictEqual(state, "ro-user")
      const rw = yield* Effect.scoped(Effect.map(SessionPool.session({ rw: true }), (s) => s.rw))
      assert.isTrue(rw)
    }).pipe(
      Effect.provide(SessionPool.layer({ tokenLabel: "emu", userPin }).pipe(Layer.provide(emulator())))
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
