/**
 * PIN states and their remedies, with no pool: a user PIN never set, a PIN one try from locking, a PIN
 * changed. On openCryptoki the wrong-PIN counter persists on the token and FINAL_TRY comes after two, so
 * every test that enters a wrong PIN ends with a good login; the emulator is told to count as it does.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Redacted } from "effect"
import { HsmJwk, Jws, Provisioning, SessionPool } from "hsmkey"
import { backends, openCryptokiLike, TestToken, tokenSlot } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { assertFailure, quickType, typedFailure, unique } from "./support/pool.js"

/** Whether a pool with this PIN logs in and signs on the token. */
const signsWith = (tokenSerial: string, userPin: Redacted.Redacted<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const pool = yield* SessionPool.make({ tokenSerial, userPin })
    const type = yield* quickType
    yield* Effect.gen(function*() {
      const key = yield* HsmJwk.generate({ type, label: unique("pin") })
      const jws = yield* Jws.sign("logged in", key)
      yield* Jws.verify(jws, key)
    }).pipe(Effect.provideService(SessionPool.SessionPool, pool))
  }))

/** Two wrong user PINs through C_Login, as another tool would enter them. */
const twoWrongPins = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const slot = yield* tokenSlot
  yield* Effect.acquireUseRelease(
    pkcs11.openSession(slot),
    (session) =>
      Effect.forEach(["bad-pin1", "bad-pin2"], (pin) => Effect.flip(pkcs11.login(session, Redacted.make(pin))), {
        discard: true
      }),
    (session) => Effect.ignore(pkcs11.closeSession(session))
  )
})

const userPinStatus = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  return (yield* pkcs11.tokenInfo(yield* tokenSlot)).userPin
})

for (const backend of backends("hsmkey-pins", { memory: openCryptokiLike })) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(backend.layer, { timeout: 600_000 })((it) => {
      const test = offered(it)

      test(
        "a user PIN never set is PinNotInitialized, and the security officer sets it with initUserPin",
        {},
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const label = `blank-${Date.now() % 100000}`
            const { serialNumber } = yield* token.blank(token.backend === "openCryptoki" ? token.label : label)
            const refused = yield* typedFailure(
              Effect.scoped(SessionPool.make({ tokenSerial: serialNumber, userPin: token.userPin }))
            )
            assert.strictEqual(refused._tag, "PinNotInitialized")
            assert.include(refused.message, "C_InitPIN")
            assert.notInclude(refused.message, "C_SetPIN")
            const short = yield* typedFailure(
              Provisioning.initUserPin({ tokenSerial: serialNumber, soPin: token.soPin, userPin: Redacted.make("123") })
            )
            assert.strictEqual(short._tag, "PinInvalid")
            assert.match(short.message, /takes \d+ to \d+ characters/)
            yield* Provisioning.initUserPin({ tokenSerial: serialNumber, soPin: token.soPin, userPin: token.userPin })
            yield* signsWith(serialNumber, token.userPin)
          })
      )

      test("a wrong SO PIN is PinIncorrect, and the right one then works", {}, () =>
        Effect.gen(function*() {
          const token = yield* TestToken
          const wrong = yield* typedFailure(
            Provisioning.initUserPin({
              tokenSerial: token.serialNumber,
              soPin: Redacted.make("bad-so-1"),
              userPin: token.userPin
            })
          )
          assert.strictEqual(wrong._tag, "PinIncorrect")
          assert.notInclude(wrong.message, "bad-so-1")
          // The right SO PIN resets the SO counter (openCryptoki locks the SO PIN at three wrong ones).
          yield* Provisioning.initUserPin({
            tokenSerial: token.serialNumber,
            soPin: token.soPin,
            userPin: token.userPin
          })
          yield* signsWith(token.serialNumber, token.userPin)
        }))

      test(
        "one wrong PIN from locking, the pool refuses even the right one unless an operator opts in",
        { features: ["pin-lockout"] },
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            yield* twoWrongPins
            assert.isTrue((yield* userPinStatus).finalTry, "the token flags CKF_USER_PIN_FINAL_TRY")
            const refused = yield* typedFailure(
              Effect.scoped(SessionPool.make({ tokenSerial: token.serialNumber, userPin: token.userPin }))
            )
            assertFailure(refused, { _tag: "PinLocked", reason: "final-try" })
            assert.include(refused.message, "loginOnFinalTry")
            // Refusing made no attempt: the PIN is as close to locking as before, not locked.
            const status = yield* userPinStatus
            assert.isTrue(status.finalTry)
            assert.isFalse(status.locked)
            yield* Effect.scoped(
              SessionPool.make({ tokenSerial: token.serialNumber, userPin: token.userPin, loginOnFinalTry: true })
            )
            assert.isFalse((yield* userPinStatus).finalTry, "a good login clears it")
            yield* signsWith(token.serialNumber, token.userPin)
          })
      )

      test(
        "changePin changes the user PIN with the old one; pools then log in with the new one only",
        {},
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const tokenSerial = token.serialNumber
            const newPin = Redacted.make("new-1234")
            const tooShort = yield* typedFailure(
              Provisioning.changePin({ tokenSerial, oldPin: token.userPin, newPin: Redacted.make("12") })
            )
            assert.strictEqual(tooShort._tag, "PinInvalid")
            yield* Effect.scoped(Effect.gen(function*() {
              yield* SessionPool.make({ tokenSerial, userPin: token.userPin })
              const busy = yield* typedFailure(Provisioning.changePin({ tokenSerial, oldPin: token.userPin, newPin }))
              assert.strictEqual(busy._tag, "TokenInUse")
            }))
            yield* Provisioning.changePin({ tokenSerial, oldPin: token.userPin, newPin })
            yield* signsWith(tokenSerial, newPin)
            const old = yield* typedFailure(Effect.scoped(SessionPool.make({ tokenSerial, userPin: token.userPin })))
            assert.strictEqual(old._tag, "PinIncorrect")
            yield* Provisioning.changePin({ tokenSerial, oldPin: newPin, newPin: token.userPin })
            // A PIN the token once rejected may be right again after a change.
            yield* signsWith(tokenSerial, token.userPin)
          })
      )

      test("changePin changes the SO PIN too", { features: ["settable-so-pin"] }, () =>
        Effect.gen(function*() {
          const token = yield* TestToken
          const tokenSerial = token.serialNumber
          const newPin = Redacted.make("new-so-9")
          yield* Provisioning.changePin({ tokenSerial, userType: "so", oldPin: token.soPin, newPin })
          yield* Provisioning.initUserPin({ tokenSerial, soPin: newPin, userPin: token.userPin })
          yield* Provisioning.changePin({ tokenSerial, userType: "so", oldPin: newPin, newPin: token.soPin })
          yield* Provisioning.initUserPin({ tokenSerial, soPin: token.soPin, userPin: token.userPin })
        }))
    })
  })
}
