/**
 * What a backend implements to provide `Pkcs11`: one Cryptoki implementation, call for call, turned into
 * the service by `makeService`, which adds what every backend shares (error mapping, one operation at a
 * time per session, spans, PINs kept `Redacted` until the call). `MemoryPkcs11` is one driver; the
 * pkcs11js one is `NodePkcs11` in `@hsmkey/node`. For driver authors: applications use the layers.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as InternalDriver from "./internal/driver.js"
import * as Service from "./internal/service.js"
import type { Pkcs11 } from "./Pkcs11.js"

/**
 * One Cryptoki implementation, call for call. Synchronous methods and rejected promises throw a
 * `CryptokiError` for a return value other than `CKR_OK`; anything else thrown is a bug (a defect).
 *
 * @since 0.1.0
 * @category models
 */
export type Driver = InternalDriver.Driver

/**
 * What a driver returns for `C_GetSlotInfo`, `C_GetTokenInfo`, `C_GetMechanismInfo` and
 * `C_GetSessionInfo`, as the library fills the structures in.
 *
 * @since 0.1.0
 * @category models
 */
export type {
  /**
   * What a driver returns for `C_GetMechanismInfo`: key sizes and flags.
   *
   * @since 0.1.0
   * @category models
   */
  RawMechanismInfo,
  /**
   * What a driver returns for `C_GetSessionInfo`: the slot, the session's state and flags.
   *
   * @since 0.1.0
   * @category models
   */
  RawSessionInfo,
  /**
   * What a driver returns for `C_GetSlotInfo`, as the library fills the structure in.
   *
   * @since 0.1.0
   * @category models
   */
  RawSlotInfo,
  /**
   * What a driver returns for `C_GetTokenInfo`, as the library fills the structure in.
   *
   * @since 0.1.0
   * @category models
   */
  RawTokenInfo
} from "./internal/driver.js"

/**
 * A Cryptoki return value other than `CKR_OK`, thrown by a driver, with the method that returned it.
 *
 * @example
 * ```ts
 * import { Constants, Pkcs11Driver } from "@hsmkey/pkcs11"
 *
 * // What a driver throws when the library answers C_Login with CKR_PIN_INCORRECT: `makeService` turns it
 * // into the typed `PinIncorrect`.
 * const error = new Pkcs11Driver.CryptokiError("C_Login", Constants.CKR.PIN_INCORRECT)
 * assert.strictEqual(error.code, Constants.CKR.PIN_INCORRECT)
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const CryptokiError: new(method: string, code: number) => InternalDriver.CryptokiError =
  InternalDriver.CryptokiError

/**
 * The instance type of `CryptokiError`.
 *
 * @since 0.1.0
 * @category errors
 */
export type CryptokiError = InternalDriver.CryptokiError

/**
 * The `Pkcs11` service over a driver. `closeTimeout` bounds how long `release` waits for native calls in
 * flight.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeService: (
  driver: Driver,
  options?: { readonly closeTimeout?: Duration.DurationInput | undefined }
) => Pkcs11.Service = Service.make

/**
 * Drops a driver's hold on its library, waiting at most `timeout` for it to be finalized when that was
 * the last hold (native calls in flight first settle).
 *
 * @since 0.1.0
 * @category constructors
 */
export const release: (driver: Driver, timeout: Duration.DurationInput) => Effect.Effect<void> = Service.release

/**
 * How long `release` waits by default: 10 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_CLOSE_TIMEOUT: Duration.Duration = Service.DEFAULT_CLOSE_TIMEOUT
