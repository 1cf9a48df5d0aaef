/**
 * Every typed failure of hsmkey, in one place: the Cryptoki failures of `@hsmkey/pkcs11` and those of
 * the pool. Match them with `Effect.catchTag`; the tags are stable API. No message holds a PIN.
 *
 * @since 0.1.0
 */
import type { ModuleLoadFailed, Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Schema from "effect/Schema"

/**
 * The Cryptoki failures, re-exported so that one module names every error.
 *
 * @since 0.1.0
 */
export {
  MechanismInvalid,
  ModuleLoadFailed,
  ObjectHandleInvalid,
  PinExpired,
  PinIncorrect,
  PinInvalid,
  PinLocked,
  Pkcs11Error,
  SessionFailed,
  TokenNotPresent
} from "@hsmkey/pkcs11/Pkcs11Error"

/**
 * No token matches the label or serial number asked for. `available` lists the labels present.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenNotFound extends Schema.TaggedError<TokenNotFound>("hsmkey/TokenNotFound")("TokenNotFound", {
  /** What was asked: `label "x"` or `serial "y"`. */
  selector: Schema.String,
  available: Schema.Array(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    const present = this.available.length === 0
      ? "no initialized token"
      : this.available.map((l) => `"${l}"`).join(", ")
    return `No token with ${this.selector}; present: ${present}`
  }
}

/**
 * Several tokens carry the label asked for: choose one by serial number.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenAmbiguous extends Schema.TaggedError<TokenAmbiguous>("hsmkey/TokenAmbiguous")("TokenAmbiguous", {
  label: Schema.String,
  serialNumbers: Schema.Array(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.serialNumbers.length} tokens are labelled "${this.label}" (serials ${
      this.serialNumbers.join(", ")
    }); select one with tokenSerial`
  }
}

/**
 * No session became free within the pool's acquire timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolTimeout extends Schema.TaggedError<PoolTimeout>("hsmkey/PoolTimeout")("PoolTimeout", {
  token: Schema.String,
  timeoutMillis: Schema.Number
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `No session of token "${this.token}" became free within ${this.timeoutMillis} ms; ` +
      "raise maxSessions or acquireTimeout, or hold sessions for less time"
  }
}

/**
 * This process is already logged in to the token with another PIN. PKCS#11 answers a second login with
 * `CKR_USER_ALREADY_LOGGED_IN` without checking its PIN, so hsmkey refuses a PIN it cannot verify.
 *
 * @since 0.1.0
 * @category errors
 */
export class PinMismatch extends Schema.TaggedError<PinMismatch>("hsmkey/PinMismatch")("PinMismatch", {
  token: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Token "${this.token}" is already logged in by this process with a different PIN; ` +
      "every pool on one token must use the same PIN"
  }
}

/**
 * Options that cannot work, such as both or neither of `tokenLabel` and `tokenSerial`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>("hsmkey/InvalidOptions")("InvalidOptions", {
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid options: ${this.detail}`
  }
}

/**
 * Every typed failure of hsmkey.
 *
 * @since 0.1.0
 * @category models
 */
export type HsmError =
  | Pkcs11Failure
  | ModuleLoadFailed
  | TokenNotFound
  | TokenAmbiguous
  | PoolTimeout
  | PinMismatch
  | InvalidOptions
