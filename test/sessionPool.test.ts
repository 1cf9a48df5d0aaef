/**
 * SessionPool against the emulator, a throwaway SoftHSM2 token and openCryptoki, unchanged. Sessions and
 * logins are counted on the way to the token (`Calls`), so the bounds hold for what the token really saw.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Constants, NodePkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Fiber, Layer, Random, Redacted, TestServices } from "effect"
import { HsmError, type HsmSession, SessionPool } from "hsmkey"
import * as Crypto from "node:crypto"
import { backends, generateKeyPair, publicKeyObject, TestToken } from "./support/backends.js"
import { Calls, counting } from "./support/counting.js"
import { offered } from "./support/matrix.js"
import { quickCase, type SignatureCase, toBeSigned } from "./support/signatures.js"

const { CKO } = Constants

const poolOptions = (extra: Partial<SessionPool.SessionPoolOptions> = {}) =>
  Effect.map(TestToken, (token) => ({ tokenLabel: token.label, userPin: token.userPin, maxSessions: 4, ...extra }))

/**
 * A signing key on the token (of the cheapest type it signs with), made once per test through an RW lease,
 * found by CKA_ID in each lease.
 */
const signingKey = (pool: SessionPool.SessionPool.Service) =>
  pool.withSession((session) =>
    Effect.gen(function*() {
      const id = Crypto.randomBytes(8)
      const c = quickCase((yield* TestToken).capabilities.mechanisms)
      const pair = yield* Effect.provideService(
        generateKeyPair(session.handle, c.keyType, { token: true, id, label: "pool-key" }),
        Pkcs11.Pkcs11,
        session.pkcs11
      )
      const publicKey = yield* Effect.provideService(
        publicKeyObject(session.handle, pair.publicKey),
        Pkcs11.Pkcs11,
        session.pkcs11
      )
      return { id, publicKey, c }
    }), { rw: true })

const signWith = (session: HsmSession.HsmSession, key: { id: Uint8Array; c: SignatureCase }, message: Uint8Array) =>
  Effect.gen(function*() {
    const [handle] = yield* session.pkcs11.findObjects(session.handle, { class: CKO.PRIVATE_KEY, id: key.id })
    return yield* session.pkcs11.sign(session.handle, key.c.mechanism, handle, toBeSigned(key.c, message))
  })

/** A good login: tokens such as openCryptoki count wrong PINs across logins (FINAL_TRY after two). */
const resetPinCount = Effect.flatMap(poolOptions(), (options) => Effect.scoped(SessionPool.make(options)))

for (const backend of backends("hsmkey-pool")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(Layer.provideMerge(counting, backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)
      test(
        "1,000 fibers sign through a pool of 4: never more than 4 sessions plus the login one",
        {},
        () =>
          Effect.gen(function*() {
            const calls = yield* Calls
            calls.reset()
            yield* Effect.scoped(Effect.gen(function*() {
              const pool = yield* SessionPool.make(yield* poolOptions())
              const key = yield* signingKey(pool)
              const verified = yield* Effect.forEach(
                Array.from({ length: 1000 }, (_, i) => new TextEncoder().encode(`message ${i}`)),
                (message) =>
                  Effect.map(
                    pool.withSession((session) => signWith(session, key, message)),
                    (signature) => key.c.verify(key.publicKey, message, signature)
                  ),
                { concurrency: "unbounded" }
              )
              assert.strictEqual(verified.filter(Boolean).length, 1000)
              assert.isAtMost(calls.peak, 5)
              assert.strictEqual(calls.logins, 1)
              const stats = yield* pool.stats
              assert.deepStrictEqual({ leased: stats.leased, waiting: stats.waiting }, { leased: 0, waiting: 0 })
            }))
            assert.strictEqual(calls.open, 0)
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
                    const fiber = yield* Effect.fork(pool.withSession((session) => signWith(session, key, message)))
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
              const signature = yield* pool.withSession((session) => signWith(session, key, message))
              assert.isTrue(key.c.verify(key.publicKey, message, signature))
            }))
            assert.strictEqual(calls.open, 0)
          })
      )

      test("two pools on one module and token share one C_Initialize and one login", {}, () =>
        Effect.gen(function*() {
          const calls = yield* Calls
          const token = yield* TestToken
          const initializations = token.modulePath === undefined
            ? Effect.succeed(0)
            : Effect.map(NodePkcs11.moduleStatus(token.modulePath), (status) => status.initializeCalls)
          const initialized = yield* initializations
          calls.reset()
          yield* Effect.scoped(Effect.gen(function*() {
            const options = yield* poolOptions()
            const first = yield* SessionPool.make(options)
            // The second pool gets its Pkcs11 from an independently built service on the same module.
            const other = yield* token.reopen
            const second = yield* Effect.provideService(SessionPool.make(options), Pkcs11.Pkcs11, other)
            yield* first.withSession(() => Effect.void)
            yield* second.withSession((session) =>
              Effect.map(
                session.pkcs11.sessionInfo(session.handle),
                (info) => assert.strictEqual(info.state, "ro-user")
              )
            )
            assert.strictEqual(calls.logins, 1)
            assert.strictEqual(yield* initializations, initialized)
          }))
        }))

      test(
        "a wrong PIN fails with PinIncorrect after one C_Login, and is never tried again",
        {},
        () =>
          Effect.gen(function*() {
            const calls = yield* Calls
            calls.reset()
            const options = yield* poolOptions({ userPin: Redacted.make("badpin51") })
            const first = yield* Effect.flip(Effect.scoped(SessionPool.make(options)))
            assert.strictEqual(first._tag, "PinIncorrect")
            assert.strictEqual(calls.logins, 1)
            const again = yield* Effect.flip(Effect.scoped(SessionPool.make(options)))
            assert.strictEqual(again._tag, "PinIncorrect")
            assert.strictEqual(calls.logins, 1)
            assert.strictEqual(calls.open, 0)
            yield* resetPinCount
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
              const stateOf = pinless.withSession((session) =>
                Effect.map(session.pkcs11.sessionInfo(session.handle), (info) => info.state)
              )
              yield* Effect.scoped(SessionPool.make(yield* poolOptions()))
              assert.strictEqual(yield* stateOf, "ro-public")
              calls.reset()
              const error = yield* Effect.flip(
                Effect.scoped(SessionPool.make(yield* poolOptions({ userPin: Redacted.make("badpin71") })))
              )
              assert.strictEqual(error._tag, "PinIncorrect")
              assert.strictEqual(calls.logins, 1)
              yield* Effect.scoped(Effect.gen(function*() {
                yield* SessionPool.make(yield* poolOptions())
                assert.strictEqual(yield* stateOf, "ro-user")
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
                    yield* pool.withSession(() => Effect.void)
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

      test("a lost login is restored once, in a new epoch, and keys are found again", {}, () =>
        Effect.gen(function*() {
          const calls = yield* Calls
          calls.reset()
          yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make(yield* poolOptions())
            const key = yield* signingKey(pool)
            const before = yield* pool.withSession((session) => Effect.succeed(session.epoch))
            // Something else in the application logs out: PKCS#11 logs out every session of the token.
            yield* pool.withSession((session) => session.pkcs11.logout(session.handle))
            const message = new TextEncoder().encode("after a logout")
            const results = yield* Effect.forEach(
              Array.from({ length: 8 }),
              () =>
                pool.withSession((session) =>
                  Effect.map(signWith(session, key, message), (signature) => ({ signature, epoch: session.epoch }))
                ),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(calls.logins, 2)
            for (const { epoch, signature } of results) {
              assert.isAbove(epoch, before)
              assert.isTrue(key.c.verify(key.publicKey, message, signature))
            }
          }))
        }))

      test("a session closed behind the pool's back is replaced", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const calls = yield* Calls
          const pool = yield* SessionPool.make(yield* poolOptions({ maxSessions: 1 }))
          yield* pool.withSession((session) => session.pkcs11.closeSession(session.handle))
          const opened = calls.open
          // Tokens such as openCryptoki may hand the new session the closed one's number: count opens instead.
          const info = yield* pool.withSession((session) => session.pkcs11.sessionInfo(session.handle))
          assert.strictEqual(calls.open, opened + 1)
          assert.strictEqual(info.state, "ro-user")
        })))

      test("lends read-only sessions unless read/write is asked for", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const pool = yield* SessionPool.make(yield* poolOptions())
          const template = { class: CKO.DATA, token: true, private: true, label: "pool-rw" }
          const refused = yield* pool.withSession((session) => {
            assert.isFalse(session.rw)
            return Effect.flip(session.pkcs11.createObject(session.handle, template))
          })
          assert.strictEqual(refused._tag === "SessionFailed" ? refused.reason : refused._tag, "read-only")
          yield* pool.withSession((session) => {
            assert.isTrue(session.rw)
            return Effect.flatMap(
              session.pkcs11.createObject(session.handle, template),
              (object) => session.pkcs11.destroyObject(session.handle, object)
            )
          }, { rw: true })
        })))

      test(
        "a caller who cannot get a session in time fails with PoolTimeout",
        {},
        () =>
          TestServices.provideLive(Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make(yield* poolOptions({ maxSessions: 1, acquireTimeout: "50 millis" }))
            yield* pool.session()
            const error = yield* Effect.flip(pool.withSession(() => Effect.void))
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
          calls.reset()
          yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make({ tokenLabel: token.label })
            const state = yield* pool.withSession((s) => Effect.map(s.pkcs11.sessionInfo(s.handle), (i) => i.state))
            assert.strictEqual(state, "ro-public")
          }))
          assert.strictEqual(calls.logins, 0)
        }))

      test("the pool's release logs out; a lease's release does not", {}, () =>
        Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const token = yield* TestToken
          const slot = yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make(yield* poolOptions())
            const lease = yield* pool.withSession((s) => Effect.succeed(s.slotId))
            // A session opened now, outside the pool, sees the login the pool keeps.
            const outside = yield* pkcs11.openSession(lease)
            assert.strictEqual((yield* pkcs11.sessionInfo(outside)).state, "ro-user")
            yield* pkcs11.closeSession(outside)
            return lease
          }))
          const after = yield* pkcs11.openSession(slot)
          assert.strictEqual((yield* pkcs11.sessionInfo(after)).state, "ro-public")
          yield* pkcs11.closeSession(after)
          assert.isDefined(token)
        }))
    })
  })
}

describe("HsmError", () => {
  // Type-level as much as run time: every tag of the union is caught by name, and nothing is left.
  const recover = (effect: Effect.Effect<string, HsmError.HsmError>): Effect.Effect<string> =>
    effect.pipe(
      Effect.catchTags({
        PinIncorrect: (e) => Effect.succeed(`${e._tag}:${e.method}`),
        PinLocked: (e) => Effect.succeed(`${e._tag}:${e.reason}`),
        PinExpired: (e) => Effect.succeed(`${e._tag}:${e.reason}`),
        PinInvalid: (e) => Effect.succeed(`${e._tag}:${e.name}`),
        PinMismatch: (e) => Effect.succeed(`${e._tag}:${e.token}`),
        PinNotInitialized: (e) => Effect.succeed(`${e._tag}:${e.method}`),
        TokenInUse: (e) => Effect.succeed(`${e._tag}:${e.operation}`),
        SessionFailed: (e) => Effect.succeed(`${e._tag}:${e.reason}`),
        TokenNotPresent: (e) => Effect.succeed(`${e._tag}:${e.name}`),
        TokenNotFound: (e) => Effect.succeed(`${e._tag}:${e.available.join(",")}`),
        TokenAmbiguous: (e) => Effect.succeed(`${e._tag}:${e.serialNumbers.length}`),
        MechanismInvalid: (e) => Effect.succeed(`${e._tag}:${e.name}`),
        ObjectHandleInvalid: (e) => Effect.succeed(`${e._tag}:${e.name}`),
        ModuleLoadFailed: (e) => Effect.succeed(`${e._tag}:${e.path}`),
        PoolTimeout: (e) => Effect.succeed(`${e._tag}:${e.timeoutMillis}`),
        InvalidOptions: (e) => Effect.succeed(`${e._tag}:${e.detail}`),
        Pkcs11Error: (e) => Effect.succeed(`${e._tag}:${e.name}`),
        InvalidKeyReference: (e) => Effect.succeed(`${e._tag}:${e.detail}`),
        KeyNotFound: (e) => Effect.succeed(`${e._tag}:${e.reason}`),
        KeyAmbiguous: (e) => Effect.succeed(`${e._tag}:${e.count}`),
        KeyExists: (e) => Effect.succeed(`${e._tag}:${e.query}`),
        UnsupportedKey: (e) => Effect.succeed(`${e._tag}:${e.detail}`),
        InvalidKeyMaterial: (e) => Effect.succeed(`${e._tag}:${e.detail}`),
        UnsupportedAlgorithm: (e) => Effect.succeed(`${e._tag}:${e.alg}`),
        AlgorithmMismatch: (e) => Effect.succeed(`${e._tag}:${e.alg}/${e.keyType}`),
        MechanismUnsupported: (e) => Effect.succeed(`${e._tag}:${e.mechanisms.join(",")}`),
        InvalidHeader: (e) => Effect.succeed(`${e._tag}:${e.detail}`),
        InvalidClaims: (e) => Effect.succeed(`${e._tag}:${e.detail}`),
        InvalidSignature: (e) => Effect.succeed(`${e._tag}:${e.length}/${e.expected}`),
        VerificationFailed: (e) => Effect.succeed(`${e._tag}:${e.code}`),
        DecryptionFailed: (e) => Effect.succeed(`${e._tag}:${e.message}`)
      })
    )

  it.effect("every error of the union is matched by Effect.catchTag", () =>
    Effect.gen(function*() {
      const call = { method: "C_Login", code: 0xa0, name: "CKR_PIN_INCORRECT" }
      const errors: ReadonlyArray<readonly [HsmError.HsmError, string]> = [
        [new HsmError.PinIncorrect({ method: "C_Login" }), "PinIncorrect:C_Login"],
        [new HsmError.PinLocked({ method: "C_Login", reason: "final-try" }), "PinLocked:final-try"],
        [new HsmError.PinExpired({ method: "C_Login", reason: "to-be-changed" }), "PinExpired:to-be-changed"],
        [new HsmError.PinInvalid(call), "PinInvalid:CKR_PIN_INCORRECT"],
        [new HsmError.PinMismatch({ token: "t" }), "PinMismatch:t"],
        [new HsmError.PinNotInitialized({ method: "C_Login" }), "PinNotInitialized:C_Login"],
        [
          new HsmError.TokenInUse({ token: "t", operation: "change the PIN", holder: "2 pools" }),
          "TokenInUse:change the PIN"
        ],
        [new HsmError.SessionFailed({ ...call, reason: "limit" }), "SessionFailed:limit"],
        [new HsmError.TokenNotPresent(call), "TokenNotPresent:CKR_PIN_INCORRECT"],
        [new HsmError.TokenNotFound({ selector: "label \"x\"", available: ["a", "b"] }), "TokenNotFound:a,b"],
        [new HsmError.TokenAmbiguous({ label: "x", serialNumbers: ["1", "2"] }), "TokenAmbiguous:2"],
        [new HsmError.MechanismInvalid(call), "MechanismInvalid:CKR_PIN_INCORRECT"],
        [new HsmError.ObjectHandleInvalid(call), "ObjectHandleInvalid:CKR_PIN_INCORRECT"],
        [new HsmError.ModuleLoadFailed({ path: "/x.so", reason: "gone" }), "ModuleLoadFailed:/x.so"],
        [new HsmError.PoolTimeout({ token: "t", timeoutMillis: 5 }), "PoolTimeout:5"],
        [new HsmError.InvalidOptions({ detail: "d" }), "InvalidOptions:d"],
        [new HsmError.Pkcs11Error(call), "Pkcs11Error:CKR_PIN_INCORRECT"],
        [new HsmError.InvalidKeyReference({ detail: "d" }), "InvalidKeyReference:d"],
        [new HsmError.KeyNotFound({ query: "q", token: "t", reason: "public-only" }), "KeyNotFound:public-only"],
        [new HsmError.KeyAmbiguous({ query: "q", token: "t", count: 2 }), "KeyAmbiguous:2"],
        [new HsmError.KeyExists({ query: "q", token: "t" }), "KeyExists:q"],
        [new HsmError.UnsupportedKey({ detail: "d" }), "UnsupportedKey:d"],
        [new HsmError.InvalidKeyMaterial({ detail: "d" }), "InvalidKeyMaterial:d"],
        [new HsmError.UnsupportedAlgorithm({ alg: "none" }), "UnsupportedAlgorithm:none"],
        [new HsmError.AlgorithmMismatch({ alg: "ES256", keyType: "RSA-2048" }), "AlgorithmMismatch:ES256/RSA-2048"],
        [
          new HsmError.MechanismUnsupported({ operation: "sign", alg: "ES256", token: "t", mechanisms: ["CKM_ECDSA"] }),
          "MechanismUnsupported:CKM_ECDSA"
        ],
        [new HsmError.InvalidHeader({ detail: "d" }), "InvalidHeader:d"],
        [new HsmError.InvalidClaims({ detail: "d" }), "InvalidClaims:d"],
        [new HsmError.InvalidSignature({ alg: "ES256", length: 70, expected: 64 }), "InvalidSignature:70/64"],
        [new HsmError.VerificationFailed({ code: "ERR_X", detail: "d" }), "VerificationFailed:ERR_X"],
        [new HsmError.DecryptionFailed(), "DecryptionFailed:JWE decryption failed"]
      ]
      for (const [error, expected] of errors) {
        assert.strictEqual(yield* recover(Effect.fail(error)), expected)
      }
    }))
})
