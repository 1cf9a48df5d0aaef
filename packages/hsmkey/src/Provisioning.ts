/**
 * Setting up a token's PINs, with no `SessionPool`: a pool cannot be built on a token whose user PIN
 * was never set or must be changed, so these need only `Pkcs11`.
 *
 * `initUserPin` is the security officer's: it logs in as SO and sets the user PIN (`C_InitPIN`), which
 * also unlocks a locked one. `changePin` changes the user PIN, or the SO PIN, with the current one
 * (`C_SetPIN`). Both PINs stay `Redacted` until the native call. Every PIN state has its typed error:
 * `PinIncorrect`, `PinLocked` (also `"final-try"`: hsmkey does not risk the attempt that would lock a PIN
 * unless `loginOnFinalTry` says so), `PinNotInitialized`, `PinInvalid` (a PIN the token refuses, with
 * the lengths it takes). Neither runs while session pools of this process use the token
 * (`TokenInUse`): an SO login logs every session of the process out, and a pool would log in again with
 * a PIN that is no longer right.
 *
 * @since 0.1.0
 */
import { Pkcs11, type SessionHandle, type TokenInfo } from "@hsmkey/pkcs11/Pkcs11"
import { PinInvalid, PinLocked, PinNotInitialized, type Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import { type InvalidOptions, type TokenAmbiguous, TokenInUse, type TokenNotFound } from "./HsmError.js"
import * as LoginRegistry from "./internal/loginRegistry.js"
import * as Options from "./internal/options.js"
import * as TokenLookup from "./internal/tokenLookup.js"

/**
 * Names the token by exactly one of `tokenLabel` and `tokenSerial`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenOptions {
  readonly tokenLabel?: string | undefined
  readonly tokenSerial?: string | undefined
  /**
   * Make the one attempt the token has left before the PIN used to log in locks (`CKF_*_PIN_FINAL_TRY`).
   * By default hsmkey refuses with `PinLocked` (`reason: "final-try"`).
   */
  readonly loginOnFinalTry?: boolean | undefined
}

/**
 * Options of `initUserPin`.
 *
 * @since 0.1.0
 * @category models
 */
export interface InitUserPinOptions extends TokenOptions {
  readonly soPin: Redacted.Redacted<string>
  readonly userPin: Redacted.Redacted<string>
}

/**
 * Options of `changePin`: whose PIN (`"user"` by default, or `"so"`), from which to which.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChangePinOptions extends TokenOptions {
  readonly userType?: "user" | "so" | undefined
  readonly oldPin: Redacted.Redacted<string>
  readonly newPin: Redacted.Redacted<string>
}

/**
 * What provisioning can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ProvisioningError = Pkcs11Failure | InvalidOptions | TokenNotFound | TokenAmbiguous | TokenInUse

const refuseWhenInUse = (pkcs11: Pkcs11.Service, info: TokenInfo, operation: string) => {
  const pools = LoginRegistry.poolsOn(pkcs11, info.serialNumber)
  return pools === 0
    ? Effect.void
    : Effect.fail(new TokenInUse({ token: info.label, operation, holder: `${pools} session pool(s) of this process` }))
}

const checkFlags = (
  info: TokenInfo,
  who: "user" | "so",
  method: string,
  loginOnFinalTry: boolean | undefined
): Effect.Effect<void, PinLocked | PinNotInitialized> => {
  if (who === "user" && !info.userPinInitialized) {
    return Effect.fail(new PinNotInitialized({ method, token: info.label }))
  }
  const status = who === "user" ? info.userPin : info.soPin
  if (status.locked) return Effect.fail(new PinLocked({ method, token: info.label, reason: "locked" }))
  if (status.finalTry && loginOnFinalTry !== true) {
    return Effect.fail(new PinLocked({ method, token: info.label, reason: "final-try" }))
  }
  return Effect.void
}

// A refused new PIN says which lengths the token takes.
const withLengths = (info: TokenInfo) => (error: Pkcs11Failure): Pkcs11Failure =>
  error._tag === "PinInvalid"
    ? new PinInvalid({ ...error, minLength: info.minPinLength, maxLength: info.maxPinLength })
    : error

/**
 * A read/write session on the token for `use`, logged in as `who` with `pin` when given, and logged out
 * again (when this login was ours) and closed after, whatever happens.
 */
const withRwSession = <A, E>(
  pkcs11: Pkcs11.Service,
  info: TokenInfo,
  login: { readonly pin: Redacted.Redacted<string> } | undefined,
  use: (session: SessionHandle) => Effect.Effect<A, E>
): Effect.Effect<A, E | Pkcs11Failure> =>
  Effect.acquireUseRelease(
    pkcs11.openSession(info.slotId, { rw: true }),
    (session) =>
      login === undefined ? use(session) : Effect.acquireUseRelease(
        pkcs11.login(session, login.pin, "so"),
        () => use(session),
        (result) => result === "logged-in" ? Effect.ignoreLogged(pkcs11.logout(session)) : Effect.void
      ),
    (session) => Effect.ignoreLogged(pkcs11.closeSession(session))
  )

const findToken = (pkcs11: Pkcs11.Service, options: TokenOptions) =>
  Effect.flatMap(TokenLookup.selectorOf(options), (selector) => TokenLookup.find(pkcs11, selector))

const isPin = (u: unknown): boolean => Redacted.isRedacted(u) && typeof Redacted.value(u) === "string"

// What was given instead of a PIN, never the PIN itself: a Redacted number is still a PIN.
const describePin = (u: unknown): string =>
  Redacted.isRedacted(u) ? `a Redacted ${Options.kindOf(Redacted.value(u))}` : Options.kindOf(u)

const pin = Options.required(
  isPin,
  "a Redacted PIN of text (a PIN in the clear would reach logs and spans)",
  describePin
)
const loginOnFinalTry = Options.optional(Predicate.isBoolean, "a boolean")

const initUserPinOptions = { soPin: pin, userPin: pin, loginOnFinalTry }
// Any other userType changePin would check as the SO's, and then change the user PIN.
const changePinOptions = { oldPin: pin, newPin: pin, loginOnFinalTry, userType: Options.oneOf(["user", "so"]) }

/**
 * Sets the user PIN as the security officer (`C_Login` as SO, `C_InitPIN`, `C_Logout`): for a token whose
 * user PIN was never set, or to reset a locked one.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Redacted } from "effect"
 * import { Provisioning } from "hsmkey"
 *
 * const soPin = Redacted.make("security-officer")
 *
 * // A token whose user PIN was never set: the SO sets it.
 * const program = Provisioning.initUserPin({ tokenLabel: "new", soPin, userPin: Redacted.make("1234") })
 *
 * Effect.runPromise(program.pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "new", soPin }] }))))
 * ```
 *
 * @since 0.1.0
 * @category provisioning
 */
export const initUserPin = (options: InitUserPinOptions): Effect.Effect<void, ProvisioningError, Pkcs11> =>
  Effect.gen(function*() {
    yield* Options.refuse(Options.problem("initUserPin options", options, initUserPinOptions))
    const pkcs11 = yield* Pkcs11
    const info = yield* findToken(pkcs11, options)
    yield* refuseWhenInUse(pkcs11, info, "initialize the user PIN")
    yield* checkFlags(info, "so", "C_Login", options.loginOnFinalTry)
    yield* withRwSession(
      pkcs11,
      info,
      { pin: options.soPin },
      (session) => Effect.mapError(pkcs11.initPin(session, options.userPin), withLengths(info))
    )
    LoginRegistry.forgetRejected(pkcs11, info.serialNumber)
  }).pipe(Effect.withSpan("Provisioning.initUserPin", { captureStackTrace: false }))

/**
 * Changes the user PIN (by default) or the SO PIN, given the current one (`C_SetPIN`). The user PIN is
 * changed in a public read/write session, as PKCS#11 allows; the SO PIN after an SO login.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Provisioning, SessionPool } from "hsmkey"
 *
 * const oldPin = Redacted.make("1234")
 * const newPin = Redacted.make("5678")
 *
 * const program = Effect.gen(function*() {
 *   yield* Provisioning.changePin({ tokenLabel: "demo", oldPin, newPin })
 *   // A pool logs in with the new PIN from now on.
 *   const keys = yield* HsmJwk.list().pipe(
 *     Effect.provide(SessionPool.layer({ tokenLabel: "demo", userPin: newPin }))
 *   )
 *   assert.deepStrictEqual(keys, [])
 * })
 *
 * Effect.runPromise(
 *   program.pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin: oldPin }] })))
 * )
 * ```
 *
 * @since 0.1.0
 * @category provisioning
 */
export const changePin = (options: ChangePinOptions): Effect.Effect<void, ProvisioningError, Pkcs11> =>
  Effect.gen(function*() {
    yield* Options.refuse(Options.problem("changePin options", options, changePinOptions))
    const pkcs11 = yield* Pkcs11
    const who = options.userType ?? "user"
    const info = yield* findToken(pkcs11, options)
    yield* refuseWhenInUse(pkcs11, info, `change the ${who === "so" ? "SO" : "user"} PIN`)
    yield* checkFlags(info, who, "C_SetPIN", options.loginOnFinalTry)
    yield* withRwSession(
      pkcs11,
      info,
      who === "so" ? { pin: options.oldPin } : undefined,
      (session) =>
        Effect.gen(function*() {
          // Without a login C_SetPIN changes the user PIN, but whoever is logged in decides whose PIN it
          // changes: with an SO login made by other code of this process, it would be the SO's.
          if (who === "user" && (yield* pkcs11.sessionInfo(session)).state === "rw-so") {
            return yield* new TokenInUse({
              token: info.label,
              operation: "change the user PIN",
              holder: "a security officer login of other code of this process"
            })
          }
          yield* Effect.mapError(pkcs11.setPin(session, options.oldPin, options.newPin), withLengths(info))
        })
    )
    if (who === "user") LoginRegistry.forgetRejected(pkcs11, info.serialNumber)
  }).pipe(Effect.withSpan("Provisioning.changePin", { captureStackTrace: false }))
