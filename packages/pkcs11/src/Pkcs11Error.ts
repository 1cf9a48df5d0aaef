/**
 * Typed failures of Cryptoki calls.
 *
 * Return values a caller handles differently have their own class (`PinIncorrect`, `SessionFailed`,
 * ...); every other `CKR_*` is a `Pkcs11Error` carrying the failing method, the code and its name.
 * None of them holds a PIN, so none can print one.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { CKR, mechanismName, returnValueName } from "./Constants.js"

const hex = (code: number): string => `0x${code.toString(16).padStart(8, "0")}`

const callFields = {
  /** The Cryptoki function that failed, such as `"C_Login"`. */
  method: Schema.String,
  /** The `CK_RV` returned by the token. */
  code: Schema.Number,
  /** The name of `code`, such as `"CKR_PIN_INCORRECT"`. */
  returnValue: Schema.String
}

/**
 * A Cryptoki call failed with a return value that has no more specific class here.
 *
 * @since 0.1.0
 * @category errors
 */
export class Pkcs11Error extends Schema.TaggedError<Pkcs11Error>("@hsmkey/pkcs11/Pkcs11Error")("Pkcs11Error", {
  ...callFields
}) {
  /** @since 0.1.0 */
  override get message(): string {
    const advice = this.code === CKR.CRYPTOKI_NOT_INITIALIZED
      ? "; the library was closed (nothing holds it any more: its layers and pools were released)"
      : ""
    return `${this.method} failed: ${this.returnValue} (${hex(this.code)})${advice}`
  }
}

/**
 * The token rejected the PIN (`CKR_PIN_INCORRECT`). The token may count the attempt towards a lockout:
 * do not try the same PIN again.
 *
 * @since 0.1.0
 * @category errors
 */
export class PinIncorrect extends Schema.TaggedError<PinIncorrect>("@hsmkey/pkcs11/PinIncorrect")("PinIncorrect", {
  method: Schema.String,
  /** The label of the token, when known. */
  token: Schema.optional(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `PIN rejected by ${
      tokenText(this.token)
    } (${this.method}); it may count towards a lockout, so it is not retried`
  }
}

/**
 * The PIN is locked (`CKR_PIN_LOCKED`), or one more wrong attempt would lock it and the caller refused
 * to risk it (`reason: "final-try"`: the token flags `CKF_USER_PIN_FINAL_TRY` or `CKF_SO_PIN_FINAL_TRY`).
 *
 * @since 0.1.0
 * @category errors
 */
export class PinLocked extends Schema.TaggedError<PinLocked>("@hsmkey/pkcs11/PinLocked")("PinLocked", {
  method: Schema.String,
  token: Schema.optional(Schema.String),
  reason: Schema.Literal("locked", "final-try")
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return this.reason === "locked"
      ? `The PIN of ${tokenText(this.token)} is locked (${this.method}); the security officer must reset it ` +
        "(C_InitPIN)"
      : `The PIN of ${tokenText(this.token)} has one attempt left before it locks; refusing to try it ` +
        `(${this.method}): log in once with the right PIN through another tool, or opt in with loginOnFinalTry`
  }
}

/**
 * The PIN has expired or must be changed before the token allows user functions (`CKR_PIN_EXPIRED`, or
 * `CKF_USER_PIN_TO_BE_CHANGED` on the token).
 *
 * @since 0.1.0
 * @category errors
 */
export class PinExpired extends Schema.TaggedError<PinExpired>("@hsmkey/pkcs11/PinExpired")("PinExpired", {
  method: Schema.String,
  token: Schema.optional(Schema.String),
  reason: Schema.Literal("expired", "to-be-changed")
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `The PIN of ${tokenText(this.token)} ${
      this.reason === "expired" ? "has expired" : "must be changed before first use"
    } (${this.method}); set a new one with C_SetPIN (hsmkey: Provisioning.changePin)`
  }
}

/**
 * The token refused a new PIN (`CKR_PIN_INVALID`, `CKR_PIN_LEN_RANGE`, `CKR_PIN_TOO_WEAK`).
 *
 * @since 0.1.0
 * @category errors
 */
export class PinInvalid extends Schema.TaggedError<PinInvalid>("@hsmkey/pkcs11/PinInvalid")("PinInvalid", {
  ...callFields,
  /** The shortest and longest PIN the token takes (`ulMinPinLen`, `ulMaxPinLen`), when known. */
  minLength: Schema.optional(Schema.Number),
  maxLength: Schema.optional(Schema.Number)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    const range = this.minLength !== undefined && this.maxLength !== undefined
      ? `; it takes ${this.minLength} to ${this.maxLength} characters`
      : "; check its length and characters"
    return `The token refused the new PIN: ${this.returnValue} (${this.method})${range}`
  }
}

/**
 * The token's user PIN was never set (`CKR_USER_PIN_NOT_INITIALIZED`, or `CKF_USER_PIN_INITIALIZED`
 * clear): nobody can log in as the user until the security officer sets it with `C_InitPIN`. Changing it
 * (`C_SetPIN`) cannot work.
 *
 * @since 0.1.0
 * @category errors
 */
export class PinNotInitialized
  extends Schema.TaggedError<PinNotInitialized>("@hsmkey/pkcs11/PinNotInitialized")("PinNotInitialized", {
    method: Schema.String,
    token: Schema.optional(Schema.String)
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `The user PIN of ${tokenText(this.token)} was never set (${this.method}); the security officer ` +
      "must set it first with C_InitPIN (hsmkey: Provisioning.initUserPin)"
  }
}

/**
 * The session cannot serve the call: it is closed or unknown (`reason: "closed"`), the token allows no
 * more sessions (`"limit"`), a read-only session was used for a write or an SO login (`"read-only"`),
 * or the call needs a logged-in user (`"not-logged-in"`).
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionFailed extends Schema.TaggedError<SessionFailed>("@hsmkey/pkcs11/SessionFailed")(
  "SessionFailed",
  {
    ...callFields,
    reason: Schema.Literal("closed", "limit", "read-only", "not-logged-in", "conflict"),
    /** The session the call was made on, for calls on one. */
    session: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.method} failed: ${this.returnValue}; ${sessionAdvice[this.reason]}`
  }
}

const sessionAdvice: Record<SessionFailed["reason"], string> = {
  "closed": "the session is closed or unknown, open a new one",
  "limit": "the token allows no more sessions, close some or lower the pool size",
  "read-only": "open a read/write session for this call",
  "not-logged-in": "log in first",
  "conflict": "another session state prevents this call"
}

/**
 * The token is gone: removed, not recognized, or its slot id is no longer valid (slot ids change when
 * a token is re-inserted). Look the token up again by label or serial.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenNotPresent extends Schema.TaggedError<TokenNotPresent>("@hsmkey/pkcs11/TokenNotPresent")(
  "TokenNotPresent",
  { ...callFields }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.method} failed: ${this.returnValue}; the token is not present, find it again by label or serial`
  }
}

/**
 * The token does not support the mechanism, or not with these parameters (`CKR_MECHANISM_INVALID`,
 * `CKR_MECHANISM_PARAM_INVALID`).
 *
 * @since 0.1.0
 * @category errors
 */
export class MechanismInvalid extends Schema.TaggedError<MechanismInvalid>("@hsmkey/pkcs11/MechanismInvalid")(
  "MechanismInvalid",
  {
    ...callFields,
    mechanism: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    const mechanism = this.mechanism === undefined ? "the mechanism" : mechanismName(this.mechanism)
    return `${this.method} failed: ${this.returnValue}; the token does not support ${mechanism}${
      this.code === CKR.MECHANISM_PARAM_INVALID ? " with these parameters" : ""
    }`
  }
}

/**
 * An object or key handle is no longer valid (`CKR_OBJECT_HANDLE_INVALID`, `CKR_KEY_HANDLE_INVALID`).
 * Handles die on logout and when the last session on the token closes: find the object again.
 *
 * @since 0.1.0
 * @category errors
 */
export class ObjectHandleInvalid
  extends Schema.TaggedError<ObjectHandleInvalid>("@hsmkey/pkcs11/ObjectHandleInvalid")("ObjectHandleInvalid", {
    ...callFields
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.method} failed: ${this.returnValue}; the handle is stale, find the object again by CKA_ID or label`
  }
}

/**
 * The PKCS#11 library could not be loaded or initialized.
 *
 * @since 0.1.0
 * @category errors
 */
export class ModuleLoadFailed extends Schema.TaggedError<ModuleLoadFailed>("@hsmkey/pkcs11/ModuleLoadFailed")(
  "ModuleLoadFailed",
  {
    /** The library path as given. */
    path: Schema.String,
    reason: Schema.String,
    /** The `CK_RV` of `C_GetFunctionList` or `C_Initialize`, when one was returned. */
    code: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Cannot load the PKCS#11 library "${this.path}": ${this.reason}`
  }
}

/**
 * Every typed failure of a Cryptoki call.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Redacted } from "effect"
 *
 * const login = (pin: string) =>
 *   Effect.gen(function*() {
 *     const pkcs11 = yield* Pkcs11.Pkcs11
 *     const [slot] = yield* pkcs11.slots({ tokenPresent: true })
 *     const session = yield* pkcs11.openSession(slot)
 *     return yield* pkcs11.login(session, Redacted.make(pin))
 *   }).pipe(
 *     // A wrong PIN is the caller's to report: trying it again would count towards a lockout.
 *     Effect.catchTag("PinIncorrect", (error) => Effect.succeed(`rejected by ${error.token}`))
 *   )
 *
 * const Emulator = MemoryPkcs11.layer({ tokens: [{ label: "t", userPin: Redacted.make("1234") }] })
 *
 * Effect.runPromise(Effect.provide(login("0000"), Emulator)).then((result) =>
 *   assert.strictEqual(result, "rejected by t")
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Pkcs11Failure =
  | Pkcs11Error
  | PinIncorrect
  | PinLocked
  | PinExpired
  | PinInvalid
  | PinNotInitialized
  | SessionFailed
  | TokenNotPresent
  | MechanismInvalid
  | ObjectHandleInvalid

/**
 * Context a caller knows and the return value does not.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailureContext {
  readonly token?: string | undefined
  readonly mechanism?: number | undefined
  /** The session handle of a call made on one. */
  readonly session?: number | undefined
}

/**
 * Maps a return value of `method` to its typed failure.
 *
 * @example
 * ```ts
 * import { Constants, Pkcs11Error } from "@hsmkey/pkcs11"
 *
 * const error = Pkcs11Error.fromReturnValue("C_Login", Constants.CKR.PIN_INCORRECT, { token: "signing" })
 * assert.strictEqual(error._tag, "PinIncorrect")
 *
 * const other = Pkcs11Error.fromReturnValue("C_Sign", Constants.CKR.DEVICE_ERROR)
 * assert.strictEqual(other._tag, "Pkcs11Error")
 * assert.strictEqual(other.message, "C_Sign failed: CKR_DEVICE_ERROR (0x00000030)")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromReturnValue = (method: string, code: number, context: FailureContext = {}): Pkcs11Failure => {
  const call = { method, code, returnValue: returnValueName(code) }
  const token = context.token
  const session = context.session
  switch (code) {
    case CKR.PIN_INCORRECT:
      return new PinIncorrect({ method, token })
    case CKR.PIN_LOCKED:
      return new PinLocked({ method, token, reason: "locked" })
    case CKR.PIN_EXPIRED:
      return new PinExpired({ method, token, reason: "expired" })
    case CKR.PIN_INVALID:
    case CKR.PIN_LEN_RANGE:
    case CKR.PIN_TOO_WEAK:
      return new PinInvalid(call)
    case CKR.USER_PIN_NOT_INITIALIZED:
      return new PinNotInitialized({ method, token })
    case CKR.SESSION_HANDLE_INVALID:
    case CKR.SESSION_CLOSED:
      return new SessionFailed({ ...call, reason: "closed", session })
    case CKR.SESSION_COUNT:
      return new SessionFailed({ ...call, reason: "limit", session })
    case CKR.SESSION_READ_ONLY:
    case CKR.SESSION_READ_ONLY_EXISTS:
      return new SessionFailed({ ...call, reason: "read-only", session })
    case CKR.USER_NOT_LOGGED_IN:
      return new SessionFailed({ ...call, reason: "not-logged-in", session })
    case CKR.SESSION_EXISTS:
    case CKR.SESSION_READ_WRITE_SO_EXISTS:
    case CKR.SESSION_PARALLEL_NOT_SUPPORTED:
    case CKR.USER_ANOTHER_ALREADY_LOGGED_IN:
      return new SessionFailed({ ...call, reason: "conflict", session })
    case CKR.TOKEN_NOT_PRESENT:
    case CKR.TOKEN_NOT_RECOGNIZED:
    case CKR.DEVICE_REMOVED:
    case CKR.SLOT_ID_INVALID:
      return new TokenNotPresent(call)
    case CKR.MECHANISM_INVALID:
    case CKR.MECHANISM_PARAM_INVALID:
      return new MechanismInvalid({ ...call, mechanism: context.mechanism })
    case CKR.OBJECT_HANDLE_INVALID:
    case CKR.KEY_HANDLE_INVALID:
      return new ObjectHandleInvalid(call)
    default:
      return new Pkcs11Error(call)
  }
}

const failureTags: ReadonlySet<string> = new Set([
  "Pkcs11Error",
  "PinIncorrect",
  "PinLocked",
  "PinExpired",
  "PinInvalid",
  "PinNotInitialized",
  "SessionFailed",
  "TokenNotPresent",
  "MechanismInvalid",
  "ObjectHandleInvalid"
])

/**
 * Whether a value is one of the typed Cryptoki failures.
 *
 * @example
 * ```ts
 * import { Pkcs11Error } from "@hsmkey/pkcs11"
 *
 * const locked = new Pkcs11Error.PinLocked({ method: "C_Login", reason: "locked" })
 * assert.strictEqual(Pkcs11Error.isPkcs11Failure(locked), true)
 * assert.strictEqual(Pkcs11Error.isPkcs11Failure(new Error("boom")), false)
 * ```
 *
 * @since 0.1.0
 * @category refinements
 */
export const isPkcs11Failure = (u: unknown): u is Pkcs11Failure =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && failureTags.has(u._tag) && u instanceof Error

const tokenText = (token: string | undefined): string => token === undefined ? "the token" : `token "${token}"`
