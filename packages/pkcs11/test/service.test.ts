/**
 * What the service adds over a driver, checked with a driver that records what it is asked.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, type Pkcs11 } from "@hsmkey/pkcs11"
import * as FifoSemaphore from "@hsmkey/pkcs11/internal/fifoSemaphore"
import { Deferred, Effect, Fiber, Redacted } from "effect"
import { CryptokiError, type Driver } from "../src/internal/driver.js"
import * as Service from "../src/internal/service.js"

const { CKR } = Constants

const unused = (): never => {
  throw new Error("not used by this test")
}

const fakeDriver = (overrides: Partial<Driver>): Driver => ({
  moduleId: "fake",
  exclusive: undefined,
  objectGeneration: () => 0,
  retain: () => true,
  release: () => undefined,
  getInfo: unused,
  getSlotList: unused,
  getSlotInfo: unused,
  getTokenInfo: unused,
  getMechanismList: unused,
  getMechanismInfo: unused,
  initToken: unused,
  openSession: unused,
  closeSession: unused,
  closeAllSessions: unused,
  getSessionInfo: unused,
  login: unused,
  logout: unused,
  initPin: unused,
  setPin: unused,
  findObjects: unused,
  getAttributes: unused,
  setAttributes: unused,
  createObject: unused,
  destroyObject: unused,
  generateKeyPair: unused,
  generateKey: unused,
  sign: unused,
  verify: unused,
  decrypt: unused,
  ...overrides
})

const session = 1 as Pkcs11.SessionHandle
const key = 2 as Pkcs11.ObjectHandle
const slot = 3 as Pkcs11.SlotId

describe("Pkcs11 service", () => {
  it.effect("anything but a Cryptoki return value is a defect, not a typed error", () =>
    Effect.gen(function*() {
      const service = Service.make(fakeDriver({
        logout: () => {
          throw new TypeError("Argument 0 has wrong type")
        }
      }))
      const exit = yield* Effect.exit(service.logout(session))
      assert.isTrue(exit._tag === "Failure" && exit.cause._tag === "Die")
    }))

  it.effect("CKR_USER_ALREADY_LOGGED_IN is success, and the PIN reaches the driver only unwrapped at the call", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const service = Service.make(fakeDriver({
        login: (_session, _type, pin) => {
          seen.push(pin)
          if (seen.length > 1) throw new CryptokiError("C_Login", CKR.USER_ALREADY_LOGGED_IN)
        }
      }))
      const pin = Redacted.make("s3cret")
      assert.strictEqual(yield* service.login(session, pin), "logged-in")
      assert.strictEqual(yield* service.login(session, pin), "already-logged-in")
      assert.deepStrictEqual(seen, ["s3cret", "s3cret"])
    }))

  it.effect("empty input to sign, verify or decrypt is refused before any operation starts", () =>
    Effect.gen(function*() {
      let calls = 0
      const service = Service.make(fakeDriver({
        sign: async () => {
          calls++
          return new Uint8Array(1)
        },
        verify: async () => {
          calls++
          return true
        },
        decrypt: async () => {
          calls++
          return new Uint8Array(1)
        }
      }))
      const empty = new Uint8Array(0)
      for (
        const call of [
          Effect.asVoid(service.sign(session, { type: 0 }, key, empty)),
          Effect.asVoid(service.verify(session, { type: 0 }, key, empty, new Uint8Array(1))),
          Effect.asVoid(service.decrypt(session, { type: 0 }, key, empty))
        ]
      ) {
        const error = yield* Effect.flip(call)
        assert.strictEqual(error._tag === "Pkcs11Error" ? error.returnValue : error._tag, "CKR_ARGUMENTS_BAD")
      }
      assert.strictEqual(calls, 0)
    }))

  it.effect("calls on one session never overlap; calls on different sessions do", () =>
    Effect.gen(function*() {
      let active = new Map<number, number>()
      let maxPerSession = 0
      let maxOverall = 0
      const service = Service.make(fakeDriver({
        sign: async (s) => {
          active.set(s, (active.get(s) ?? 0) + 1)
          maxPerSession = Math.max(maxPerSession, active.get(s)!)
          maxOverall = Math.max(maxOverall, [...active.values()].reduce((a, b) => a + b, 0))
          await new Promise((resolve) => setTimeout(resolve, 1))
          active.set(s, active.get(s)! - 1)
          return new Uint8Array([s])
        }
      }))
      yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) => service.sign((i % 4) as Pkcs11.SessionHandle, { type: 0 }, key, new Uint8Array([i])),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(maxPerSession, 1)
      assert.strictEqual(maxOverall, 4)
      active = new Map()
    }))

  it.live("an interrupted call keeps its session until the native call settles", () =>
    Effect.gen(function*() {
      let settle: () => void = () => {}
      let signing = 0
      let overlapped = false
      const service = Service.make(fakeDriver({
        sign: () => {
          signing++
          if (signing > 1) overlapped = true
          return new Promise<Uint8Array>((resolve) => {
            settle = () => {
              signing--
              resolve(new Uint8Array())
            }
          })
        },
        getSessionInfo: () => {
          if (signing > 0) overlapped = true
          return { slotId: 1, state: 3, flags: 6, deviceError: 0 }
        }
      }))
      const first = yield* Effect.fork(service.sign(session, { type: 0 }, key, new Uint8Array([1])))
      yield* Effect.yieldNow()
      const interrupting = yield* Effect.fork(Fiber.interrupt(first))
      const next = yield* Effect.fork(service.sessionInfo(session))
      yield* Effect.sleep("5 millis")
      assert.isFalse(overlapped)
      settle()
      yield* Fiber.join(interrupting)
      assert.strictEqual((yield* Fiber.join(next)).state, "rw-user")
      assert.isFalse(overlapped)
    }))
})

describe("closing a session while a signature runs off the event loop's thread", () => {
  // SoftHSM2 frees a session under a C_Sign running on another thread: the process died (SIGSEGV).
  const signing = () => {
    const settles: Array<() => void> = []
    const events: Array<string> = []
    const service = Service.make(fakeDriver({
      sign: () =>
        new Promise<Uint8Array>((resolve) =>
          settles.push(() => {
            events.push("signed")
            resolve(new Uint8Array([7]))
          })
        ),
      signBatch: (_thread, _session, items) =>
        new Promise((resolve) =>
          settles.push(() => {
            events.push("batch signed")
            resolve(items.map(() => new Uint8Array([8])))
          })
        ),
      closeSession: () => void events.push("closed"),
      closeAllSessions: () => void events.push("all closed"),
      openSession: () => session
    }))
    return { service, settles, events }
  }

  it.live("C_CloseSession waits for it, and a signature asked for meanwhile is refused at once", () =>
    Effect.gen(function*() {
      const { events, service, settles } = signing()
      const direct = service.signDirect!(session, { type: 0 }, key, new Uint8Array([1]), false) as Promise<unknown>
      const closing = yield* Effect.fork(service.closeSession(session))
      yield* Effect.sleep("5 millis")
      assert.deepStrictEqual(events, [])
      const refused = service.signDirect!(session, { type: 0 }, key, new Uint8Array([1]), false)
      assert.strictEqual((refused as { readonly _tag: string })._tag, "SessionFailed")
      settles[0]()
      assert.deepStrictEqual(yield* Effect.promise(() => direct), new Uint8Array([7]))
      yield* Fiber.join(closing)
      assert.deepStrictEqual(events, ["signed", "closed"])
      // Closed, the handle may be the token's next session: signing on it is not refused any more.
      assert.instanceOf(service.signDirect!(session, { type: 0 }, key, new Uint8Array([1]), false), Promise)
    }))

  it.live("C_CloseAllSessions waits for every batch in flight on the slot's sessions", () =>
    Effect.gen(function*() {
      const { events, service, settles } = signing()
      const opened = yield* service.openSession(slot)
      const batch = service.signBatch!(0, opened, [{ mechanism: { type: 0 }, key, data: new Uint8Array([1]) }])
      const closing = yield* Effect.fork(service.closeAllSessions(slot))
      yield* Effect.sleep("5 millis")
      assert.deepStrictEqual(events, [])
      settles[0]()
      yield* Effect.promise(() => batch)
      yield* Fiber.join(closing)
      assert.deepStrictEqual(events, ["batch signed", "all closed"])
    }))
})

describe("FifoSemaphore", () => {
  it.effect("serves waiters in arrival order", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(1)
      const order: Array<number> = []
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(semaphore.withPermit(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiters = yield* Effect.forEach([1, 2, 3, 4], (i) =>
        Effect.fork(semaphore.withPermit(Effect.sync(() =>
          order.push(i)
        ))).pipe(Effect.tap(() => Effect.yieldNow())))
      assert.strictEqual(semaphore.waiting, 4)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Effect.forEach(waiters, Fiber.join)
      assert.deepStrictEqual(order, [1, 2, 3, 4])
      assert.strictEqual(semaphore.available, 1)
    }))

  it.live("waiters interrupted while queued, just granted, or just after never strand a permit", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(2)
      for (let round = 0; round < 300; round++) {
        const gate = yield* Deferred.make<void>()
        const holders = yield* Effect.forEach([1, 2], () => Effect.fork(semaphore.withPermit(Deferred.await(gate))))
        const victims = yield* Effect.forEach(
          [1, 2, 3],
          (i) => Effect.fork(i % 2 === 0 ? Effect.scoped(semaphore.takeScoped) : semaphore.withPermit(Effect.void))
        )
        yield* Effect.yieldNow()
        yield* Deferred.succeed(gate, undefined)
        for (let i = 0; i < round % 4; i++) yield* Effect.yieldNow()
        yield* Effect.forEach(victims, Fiber.interrupt)
        yield* Effect.forEach(holders, Fiber.join)
        assert.strictEqual(semaphore.available, 2, `round ${round}`)
        assert.strictEqual(semaphore.waiting, 0)
      }
    }))

  it.effect("bounds concurrency to its permits", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(3)
      let active = 0
      let peak = 0
      yield* Effect.forEach(
        Array.from({ length: 50 }),
        () =>
          semaphore.withPermit(Effect.gen(function*() {
            active++
            peak = Math.max(peak, active)
            yield* Effect.yieldNow()
            active--
          })),
        { concurrency: "unbounded", discard: true }
      )
      assert.strictEqual(peak, 3)
    }))
})
