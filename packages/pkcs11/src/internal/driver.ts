import type * as Attribute from "../Attribute.js"
import type { LibraryInfo, Mechanism } from "../Pkcs11.js"
import type * as FifoSemaphore from "./fifoSemaphore.js"

/**
 * A Cryptoki return value other than `CKR_OK`, thrown by a driver. `method` is recorded by the
 * driver: pkcs11js leaves it empty for `C_Sign`, `C_GenerateKeyPair` and every async call.
 */
export class CryptokiError {
  constructor(readonly method: string, readonly code: number) {}
}

export const isCryptokiError = (u: unknown): u is CryptokiError => u instanceof CryptokiError

export interface RawSlotInfo {
  readonly description: string
  readonly manufacturerId: string
  readonly flags: number
}

export interface RawTokenInfo {
  readonly label: string
  readonly manufacturerId: string
  readonly model: string
  readonly serialNumber: string
  readonly flags: number
  readonly maxSessionCount: number
  readonly sessionCount: number
  readonly maxRwSessionCount: number
  readonly rwSessionCount: number
  readonly minPinLen: number
  readonly maxPinLen: number
}

export interface RawMechanismInfo {
  readonly minKeySize: number
  readonly maxKeySize: number
  readonly flags: number
}

export interface RawSessionInfo {
  readonly slotId: number
  readonly state: number
  readonly flags: number
  readonly deviceError: number
}

/**
 * One Cryptoki implementation, call for call. Synchronous methods and rejected promises throw
 * `CryptokiError` for a return value; anything else thrown is a bug. The service built on a driver
 * (`./service.ts`) adds what both backends share: error mapping, per-session serialization, spans and
 * PIN handling.
 */
export interface Driver {
  readonly moduleId: string
  /**
   * Set for a library that is not safe to call from two threads at once: the service then makes every
   * call under this lock, one at a time, whatever the session.
   */
  readonly exclusive: FifoSemaphore.FifoSemaphore | undefined
  /** See `Pkcs11.Service.objectGeneration`. */
  readonly objectGeneration: () => number
  /** Holds the library loaded until `release`; `false` when it is unloaded already. */
  readonly retain: () => boolean
  /**
   * Drops a hold. When it was the last, the library stops serving calls and the promise returned
   * resolves once it is finalized and unloaded (after the native calls still in flight settle).
   */
  readonly release: () => Promise<void> | undefined
  readonly getInfo: () => LibraryInfo
  readonly getSlotList: (tokenPresent: boolean) => ReadonlyArray<number>
  readonly getSlotInfo: (slot: number) => RawSlotInfo
  readonly getTokenInfo: (slot: number) => RawTokenInfo
  readonly getMechanismList: (slot: number) => ReadonlyArray<number>
  readonly getMechanismInfo: (slot: number, type: number) => RawMechanismInfo
  readonly initToken: (slot: number, soPin: string, label: string) => void
  readonly openSession: (slot: number, flags: number) => number
  readonly closeSession: (session: number) => void
  readonly closeAllSessions: (slot: number) => void
  readonly getSessionInfo: (session: number) => RawSessionInfo
  readonly login: (session: number, userType: number, pin: string) => void
  readonly logout: (session: number) => void
  readonly initPin: (session: number, pin: string) => void
  readonly setPin: (session: number, oldPin: string, newPin: string) => void
  readonly findObjects: (session: number, template: Attribute.Attributes) => ReadonlyArray<number>
  /** Attributes the object lacks or keeps secret are left out. */
  readonly getAttributes: (
    session: number,
    object: number,
    names: ReadonlyArray<Attribute.Name>
  ) => Attribute.Attributes
  readonly setAttributes: (session: number, object: number, template: Attribute.Attributes) => void
  readonly createObject: (session: number, template: Attribute.Attributes) => number
  readonly destroyObject: (session: number, object: number) => void
  readonly generateKeyPair: (
    session: number,
    mechanism: Mechanism,
    publicTemplate: Attribute.Attributes,
    privateTemplate: Attribute.Attributes
  ) => Promise<{ readonly publicKey: number; readonly privateKey: number }>
  readonly generateKey: (session: number, mechanism: Mechanism, template: Attribute.Attributes) => Promise<number>
  readonly sign: (session: number, mechanism: Mechanism, key: number, data: Uint8Array) => Promise<Uint8Array>
  /**
   * As `sign`, on the calling thread: for a library whose signing takes microseconds, where a threadpool
   * hop costs more than the token's work. Absent where the library has no synchronous form.
   */
  readonly signNow?: ((session: number, mechanism: Mechanism, key: number, data: Uint8Array) => Uint8Array) | undefined
  /**
   * Signs a batch in `session` on signing thread `thread` of the library (started on first use), item by
   * item: a signature, or the library's refusal, each. It rejects when the thread itself failed (it exited
   * or threw): nothing of the batch is known then. Absent where the library has no such threads.
   */
  readonly signBatch?:
    | ((
      thread: number,
      session: number,
      items: ReadonlyArray<{ readonly mechanism: Mechanism; readonly key: number; readonly data: Uint8Array }>
    ) => Promise<ReadonlyArray<Uint8Array | CryptokiError>>)
    | undefined
  /** Resolves `false` for `CKR_SIGNATURE_INVALID` and `CKR_SIGNATURE_LEN_RANGE`. */
  readonly verify: (
    session: number,
    mechanism: Mechanism,
    key: number,
    data: Uint8Array,
    signature: Uint8Array
  ) => Promise<boolean>
  readonly decrypt: (session: number, mechanism: Mechanism, key: number, data: Uint8Array) => Promise<Uint8Array>
}
