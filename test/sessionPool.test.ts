/**
 * SessionPool against the emulator, a throwaway SoftHSM2 token and openCryptoki, unchanged. Sessions and
 * logins are counted on the way to the token (`Calls`), so the bounds hold for what the token really saw.
 */
import { assert, describe, layer } from "@effect/vitest"
import { NodePkcs11 } from "@hsmkey/node"
import { Constants, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Context, Effect, Fiber, Layer, Option, Random, Redacted, TestServices } from "effect"
import { Capabilities, HsmJwk, HsmSession, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import { backends, TestToken } from "./support/backends.js"
import { Calls, counting } from "./support/counting.js"
import { offered } from "./support/matrix.js"
import { quickType, rawSession, unique, watchedPkcs11 } from "./support/pool.js"

const { CKO } = Constants

const poolOptions = (extra: Partial<SessionPool.SessionPoolOptions> = {}) =>
  Effect.map(TestToken, (token) => ({ tokenLabel: token.label, userPin: token.userPin, maxSessions: 4, ...extra }))

/** Runs `effect` with `pool` as the `SessionPool` in context: hsmkey's operations borrow from it. */
const inPool = <A, E, R>(pool: SessionPool.SessionPool.Service, effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, SessionPool.SessionPool, pool)

/** A signing key on the token (of the cheapest type it signs with), made once per test through the pool. */
const signingKey = (pool: SessionPool.SessionPool.Service) =>
  Effect.flatMap(quickType, (type) => inPool(pool, HsmJwk.generate({ type, label: unique("pool-key") })))

/** A compact JWS of `message`, signed in a session the pool lends. */
const signWith = (pool: SessionPool.SessionPool.Service, key: HsmJwk.HsmJwk, message: Uint8Array) =>
  inPool(pool, Jws.sign(message, key))

/** Whether jose, on its own, verifies `jws` as `message` signed by `key`. */
const verifies = (key: HsmJwk.HsmJwk, message: Uint8Array, jws: string) =>
  Effect.promise(() =>
    jose.compactVerify(jws, key.publicKey).then(
      (verified) => Buffer.from(verified.payload).equals(Buffer.from(message)),
      () => false
    )
  )

/** The login state of the token as a session opened now, beside hsmkey's, sees it. */
const tokenState = Effect.scoped(
  Effect.flatMap(rawSession(), (raw) => Effect.map(raw.pkcs11.sessionInfo(raw.handle), (info) => info.state))
)

/** A good login: tokens such as openCryptoki count wrong PINs across logins (FINAL_TRY after two). */
const resetPinCount = Effect.flatMap(poolOptions(), (options) => Effect.scoped(SessionPool.make(options)))

for (const backend of backends("hsmkey-pool")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(Layer.provideMerge(counting, backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)
      test(
        "load: 10,000 signatures from 1,000 fibers through a pool of 4, each verified by jose; 4 sessions plus the login one at most, none left",
        {},
        () =>
          Effect.gen(function*() {
            const calls = yield* Calls
            const token = yield* TestToken
            // The cheapest key to sign and verify 10,000 times: the emulator's ECDSA is JavaScript.
            const type = (["Ed25519", "P-256", "RSA-2048"] as const).find((t) =>
              Capabilities.canGenerate(token.capabilities, t)
            )!
            calls.reset()
            const started = performance.now()
            yield* Effect.scoped(Effect.gen(function*() {
              const pool = yield* SessionPool.make(yield* poolOptions())
              const key = yield* inPool(pool, HsmJwk.generate({ type, label: unique("load-key") }))
              const verified = yield* Effect.forEach(
                Array.from({ length: 1000 }, (_, fiber) => fiber),
                (fiber) =>
                  Effect.gen(function*() {
                    let good = 0
                    for (let i = 0; i < 10; i++) {
                      const message = new TextEncoder().encode(`fiber ${fiber}, message ${i}`)
                      if (yield* verifies(key, message, yield* signWith(pool, key, message))) good++
                    }
                    return good
                  }),
                { concurrency: "unbounded" }
              )
              assert.strictEqual(verified.reduce((a, b) => a + b, 0), 10_000)
              assert.isAtMost(calls.peak, 5)
              assert.strictEqual(calls.logins, 1)
              const stats = yield* pool.stats
              assert.deepStrictEqual({ leased: stats.leased, waiting: stats.waiting }, { leased: 0, waiting: 0 })
            }))
            assert.strictEqual(calls.open, 0)
            console.log(
              `load, ${token.backend} ${type}: 10,000 signed and verified in ${
                ((performance.now() - started) / 1000).toFixed(1)
              } s, at most ${calls.peak} sessions, ${calls.logins} login, ${calls.open} left`
            )
          })
      )

      test(
        "1,000 borrows interrupted at random points leak nothing; the pool serves on",
        {},
        () =>
          Effect.gen(function*() {
            const calls = yield* Calls
            calls.reset()
            yield* Effect.scoped(Effect.gen(function*() {
              const pool = yield* SessionPool.make(yield* poolOptions({ maxSessions: 3 }))
              const key = yield* signingKey(pool)
              const message = new TextEncoder().encode("after the storm")
              yield* Effect.forEach(
                Array.from({ length: 1000 }, (_, i) => i),
                () =>
                  Effect.gen(function*() {
                    const fiber = yield* Effect.fork(signWith(pool, key, message))
                    const steps = yield* Random.nextIntBetween(0, 40)
                    for (let i = 0; i < steps; i++) yield* Effect.yieldNow()
                    yield* Fiber.interrupt(fiber)
                  }),
                { concurrency: 20, discard: true }
              ).pipe(Effect.withRandom(Random.make("hsmkey interruptions")))
              const stats = yield* pool.stats
              assert.strictEqual(stats.leased, 0)
              assert.strictEqual(stats.waiting, 0)
              assert.isAtMost(calls.open, 4)
              const jws = yield* signWith(pool, key, message)
              assert.isTrue(yield* verifies(key, message, jws))
            }))
            assert.strictEqual(calls.open, 0)
          })
      )

      test("two pools on one module and token share one C_Initialize and one login", {}, () =>
        Effect.gen(function*() {
          const calls = yield* Calls
          const token = yield* TestToken
          const control = yield* Effect.serviceOption(MemoryPkcs11.Control)
          const initializations = token.modulePath === undefined
            ? Effect.succeed(0)
            : Effect.map(NodePkcs11.moduleStatus(token.modulePath), (status) => status.initializeCalls)
          const initialized = yield* initializations
          // The emulator counts every C_Login it is asked for, through whichever service.
          const emulatorLogins = Option.match(control, {
            onNone: () => Effect.succeed(0),
            onSome: (control) => Effect.map(control.stats(token.label), (stats) => stats.loginCalls)
          })
          const emulatorLoginsBefore = yield* emulatorLogins
          calls.reset()
          yield* Effect.scoped(Effect.gen(function*() {
            const options = yield* poolOptions()
            const first = yield* SessionPool.make(options)
            const key = yield* signingKey(first)
            // The second pool gets its Pkcs11 from an independently built service on the same module,
            // counted on its own: `calls` sees only the first service.
            const other = yield* Effect.provideService(Layer.build(counting), Pkcs11.Pkcs11, yield* token.reopen)
            const otherCalls = Context.get(other, Calls)
            const second = yield* Effect.provide(SessionPool.make(options), other)
            // The second pool's sessions see the private key: they are logged in, by the first pool's login.
            const found = yield* inPool(second, HsmJwk.fromHsm({ label: key.label! }))
            assert.strictEqual(found.kid, key.kid)
            assert.strictEqual(calls.logins + otherCalls.logins, 1)
            if (Option.isSome(control)) assert.strictEqual((yield* emulatorLogins) - emulatorLoginsBefore, 1)
            assert.strictEqual(yield* initializations, initialized)
          }))
        }))

      test(
        "20 pools made at once with a wrong PIN fail with PinIncorrect after one C_Login, and it is never tried again",
        {},
        () =>
          Effect.gen(function*() {
            const calls = yield* Calls
            calls.reset()
            const options = yield* poolOptions({ userPin: Redacted.make("badpin51") })
            const first = yield* Effect.forEach(
              Array.from({ length: 20 }),
              () => Effect.flip(Effect.scoped(SessionPool.make(options))),
              { concurrency: "unbounded" }
            )
            assert.deepStrictEqual([...new Set(first.map((error) => error._tag))], ["PinIncorrect"])
            assert.strictEqual(calls.logins, 1)
            const again = yield* Effect.flip(Effect.scoped(SessionPool.make(options)))
            assert.strictEqual(again._tag, "PinIncorrect")
            assert.strictEqual(calls.logins, 1)
            assert.strictEqual(calls.open, 0)
            // Only the rejected PIN is remembered: the right one still logs in.
            yield* resetPinCount
            assert.strictEqual(calls.logins, 2)
          })
      )

      test(
        "the login ends with the last pool that has a PIN; a later PIN is checked by the token",
        {},
        () =>
          Effect.gen(function*() {
            const calls = yield* Calls
            yield* Effect.scoped(Effect.gen(function*() {
              const pinless = yield* SessionPool.make(yield* poolOptions({ userPin: undefined }))
              // A pool without a PIN finds a private key only while another pool keeps the token logged in.
              const lookup = (key: HsmJwk.HsmJwk) =>
                Effect.either(inPool(pinless, HsmJwk.fromHsm({ label: key.label! })))
              const key = yield* Effect.scoped(Effect.gen(function*() {
                const key = yield* signingKey(yield* SessionPool.make(yield* poolOptions()))
                const found = yield* lookup(key)
                assert.strictEqual(found._tag === "Right" ? found.right.kid : found.left.message, key.kid)
                return key
              }))
              const hidden = yield* Effect.flip(inPool(pinless, HsmJwk.fromHsm({ label: key.label! })))
              assert.strictEqual(hidden._tag === "KeyNotFound" ? hidden.reason : hidden._tag, "not-logged-in")
              calls.reset()
              const error = yield* Effect.flip(
                Effect.scoped(SessionPool.make(yield* poolOptions({ userPin: Redacted.make("badpin71") })))
              )
              assert.strictEqual(error._tag, "PinIncorrect")
              assert.strictEqual(calls.logins, 1)
              yield* Effect.scoped(Effect.gen(function*() {
                yield* SessionPool.make(yield* poolOptions())
                const found = yield* lookup(key)
                assert.strictEqual(found._tag === "Right" ? found.right.kid : found.left.message, key.kid)
              }))
            }))
          })
      )

      test(
        "a login made by other code is shared but left to it: the pool does not log out",
        {},
        () =>
          Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const token = yield* TestToken
            const slots = yield* pkcs11.slots()
            const infos = yield* Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot))
            const { slotId: slot } = infos.find((info) => info.serialNumber === token.serialNumber)!
            yield* Effect.acquireUseRelease(
              pkcs11.openSession(slot),
              (own) =>
                Effect.gen(function*() {
                  assert.strictEqual(yield* pkcs11.login(own, token.userPin), "logged-in")
                  yield* Effect.scoped(Effect.gen(function*() {
                    const pool = yield* SessionPool.make(yield* poolOptions())
                    yield* pool.withSession(Effect.void)
                  }))
                  assert.strictEqual((yield* pkcs11.sessionInfo(own)).state, "ro-user")
                  yield* pkcs11.logout(own)
                }),
              (own) => Effect.orDie(pkcs11.closeSession(own))
            )
          })
      )

      test(
        "a second pool with another PIN is refused: the token would not check it",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            yield* SessionPool.make(yield* poolOptions())
            const error = yield* Effect.flip(
              SessionPool.make(yield* poolOptions({ userPin: Redacted.make("other-pin") }))
            )
            assert.strictEqual(error._tag, "PinMismatch")
            assert.notInclude(error.message, "other-pin")
          }))
      )

      test("a lost login is restored once, and keys are found again", {}, () =>
        Effect.gen(function*() {
          const calls = yield* Calls
          calls.reset()
          yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make(yield* poolOptions())
            const key = yield* signingKey(pool)
            // Something else in the application logs out: PKCS#11 logs out every session of the token.
            yield* Effect.scoped(Effect.flatMap(rawSession(), (raw) => raw.pkcs11.logout(raw.handle)))
            assert.strictEqual(yield* tokenState, "ro-public")
            const message = new TextEncoder().encode("after a logout")
            const results = yield* Effect.forEach(
              Array.from({ length: 8 }),
              () => Effect.flatMap(signWith(pool, key, message), (jws) => verifies(key, message, jws)),
              { concurrency: "unbounded" }
            )
            assert.deepStrictEqual(results, Array.from({ length: 8 }, () => true))
            assert.strictEqual(calls.logins, 2)
            assert.strictEqual(yield* tokenState, "ro-user")
          }))
        }))

      test("a session closed behind the pool's back is replaced", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const { opened, service } = yield* watchedPkcs11
          const pool = yield* Effect.provideService(
            SessionPool.make(yield* poolOptions({ maxSessions: 1 })),
            Pkcs11.Pkcs11,
            service
          )
          const key = yield* signingKey(pool)
          const before = opened.length
          yield* pool.withSession(Effect.void)
          const lent = opened.slice(before)
          assert.strictEqual(lent.length, 1)
          yield* pkcs11.closeSession(lent[0])
          // Tokens such as openCryptoki may hand the new session the closed one's number: count opens instead.
          const message = new TextEncoder().encode("in a new session")
          const jws = yield* signWith(pool, key, message)
          assert.strictEqual(opened.length, before + 2)
          // It signed with the private key: the new session is logged in.
          assert.isTrue(yield* verifies(key, message, jws))
        })))

      test("lends read-only sessions unless read/write is asked for", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const { opened, service } = yield* watchedPkcs11
          const pool = yield* Effect.provideService(SessionPool.make(yield* poolOptions()), Pkcs11.Pkcs11, service)
          const template = { class: CKO.DATA, token: true, private: true, label: "pool-rw" }
          // Each lease below is the first of its kind, so its session is the one opened for it.
          const lease = (rw: boolean) =>
            Effect.gen(function*() {
              const before = opened.length
              return yield* pool.withSession(
                Effect.map(HsmSession.CurrentSession, (session) => ({ session, handles: opened.slice(before) })),
                { rw }
              )
            })
          const ro = yield* lease(false)
          assert.isFalse(ro.session.rw)
          assert.strictEqual(ro.handles.length, 1)
          assert.strictEqual((yield* pkcs11.sessionInfo(ro.handles[0])).state, "ro-user")
          const refused = yield* Effect.flip(pkcs11.createObject(ro.handles[0], template))
          assert.strictEqual(refused._tag === "SessionFailed" ? refused.reason : refused._tag, "read-only")
          const rw = yield* lease(true)
          assert.isTrue(rw.session.rw)
          assert.strictEqual(rw.handles.length, 1)
          assert.strictEqual((yield* pkcs11.sessionInfo(rw.handles[0])).state, "rw-user")
          const object = yield* pkcs11.createObject(rw.handles[0], template)
          yield* pkcs11.destroyObject(rw.handles[0], object)
        })))

      test(
        "a caller who cannot get a session in time fails with PoolTimeout",
        {},
        () =>
          TestServices.provideLive(Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make(yield* poolOptions({ maxSessions: 1, acquireTimeout: "50 millis" }))
            yield* pool.session()
            const error = yield* Effect.flip(pool.withSession(Effect.void))
            assert.strictEqual(error._tag, "PoolTimeout")
            assert.strictEqual((yield* pool.stats).waiting, 0)
          })))
      )

      test(
        "names the token by label or serial, and says which labels exist when none matches",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            const token = yield* TestToken
            const bySerial = yield* SessionPool.make({ tokenSerial: token.serialNumber, userPin: token.userPin })
            assert.strictEqual(bySerial.token.label, token.label)
            const missing = yield* Effect.flip(SessionPool.make({ tokenLabel: "no-such-token" }))
            assert.strictEqual(missing._tag, "TokenNotFound")
            assert.include(missing._tag === "TokenNotFound" ? missing.available : [], token.label)
            assert.include(missing.message, `"${token.label}"`)
            const both = yield* Effect.flip(
              SessionPool.make({ tokenLabel: token.label, tokenSerial: token.serialNumber })
            )
            assert.strictEqual(both._tag, "InvalidOptions")
            const neither = yield* Effect.flip(SessionPool.make({}))
            assert.strictEqual(neither._tag, "InvalidOptions")
            const size = yield* Effect.flip(SessionPool.make({ tokenLabel: token.label, maxSessions: 0 }))
            assert.strictEqual(size._tag, "InvalidOptions")
          }))
      )

      test("without a PIN the pool lends public sessions and logs nobody in", {}, () =>
        Effect.gen(function*() {
          const calls = yield* Calls
          const token = yield* TestToken
          const key = yield* Effect.scoped(Effect.flatMap(SessionPool.make(yield* poolOptions()), signingKey))
          calls.reset()
          yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make({ tokenLabel: token.label })
            // The public key shows, the private key is hidden: the session is public.
            const error = yield* Effect.flip(inPool(pool, HsmJwk.fromHsm({ label: key.label! })))
            assert.strictEqual(error._tag === "KeyNotFound" ? error.reason : error._tag, "not-logged-in")
          }))
          assert.strictEqual(calls.logins, 0)
        }))

      test("the pool's release logs out; a lease's release does not", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          // A session of the test's own, open throughout: closing the pool's sessions alone would not end
          // the login while it is open, only a C_Logout does.
          const outside = yield* rawSession()
          const stateOutside = Effect.map(outside.pkcs11.sessionInfo(outside.handle), (info) => info.state)
          yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make(yield* poolOptions())
            yield* pool.withSession(Effect.void)
            assert.strictEqual(yield* stateOutside, "ro-user")
          }))
          assert.strictEqual(yield* stateOutside, "ro-public")
        })))
    })
  })
}
