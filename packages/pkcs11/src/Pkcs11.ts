/**
 * The Cryptoki boundary: every PKCS#11 call hsmkey makes, as an Effect.
 *
 * Two implementations provide it: `NodePkcs11` of `@hsmkey/node` over a real library (through pkcs11js),
 * and `MemoryPkcs11`, an in-memory token emulator with the same semantics; `Pkcs11Driver` is what
 * another driver implements. Handles are plain numbers,
 * attributes are named values, PINs stay `Redacted` until the native call, and failures are the typed
 * errors of `Pkcs11Error`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
 * import { Effect } from "effect"
 *
 * // The labels of the tokens present, whichever library provides `Pkcs11`.
 * const labels = Effect.gen(function*() {
 *   const pkcs11 = yield* Pkcs11.Pkcs11
 *   const slots = yield* pkcs11.slots({ tokenPresent: true })
 *   return yield* Effect.forEach(slots, (slot) => Effect.map(pkcs11.tokenInfo(slot), (info) => info.label))
 * })
 *
 * Effect.runPromise(
 *   labels.pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "a" }, { label: "b" }] })))
 * ).then((found) => assert.deepStrictEqual(found, ["a", "b"]))
 * ```
 *
 * @since 0.1.0
 */
import type * as Brand from "effect/Brand"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Attribute from "./Attribute.js"
import type { Pkcs11Failure } from "./Pkcs11Error.js"

/**
 * A slot id. Tokens move between slot ids (SoftHSM2 reassigns them at every `C_Initialize`, a
 * re-inserted token gets a new one): find tokens by label or serial, never keep a slot id.
 *
 * @since 0.1.0
 * @category models
 */
export type SlotId = number & Brand.Brand<"@hsmkey/pkcs11/SlotId">

/**
 * A session handle.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionHandle = number & Brand.Brand<"@hsmkey/pkcs11/SessionHandle">

/**
 * An object handle. Handles of private objects die at logout, and every handle dies when the last
 * session on the token closes: keep CKA_ID or CKA_LABEL and find the object again.
 *
 * @since 0.1.0
 * @category models
 */
export type ObjectHandle = number & Brand.Brand<"@hsmkey/pkcs11/ObjectHandle">

/**
 * General information about the library (`C_GetInfo`).
 *
 * @since 0.1.0
 * @category models
 */
export interface LibraryInfo {
  /** The Cryptoki version the library implements, such as `"2.40"`. */
  readonly cryptokiVersion: string
  readonly manufacturerId: string
  readonly description: string
  readonly libraryVersion: string
}

/**
 * Information about a slot (`C_GetSlotInfo`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SlotInfo {
  readonly slotId: SlotId
  readonly description: string
  readonly manufacturerId: string
  readonly tokenPresent: boolean
  readonly removable: boolean
  readonly hardware: boolean
}

/**
 * A token's maximum session count: a number, `"unlimited"` (`CK_EFFECTIVELY_INFINITE`) or
 * `"unavailable"` (the token does not say).
 *
 * @since 0.1.0
 * @category models
 */
export type SessionLimit = number | "unlimited" | "unavailable"

/**
 * A count the token may decline to report.
 *
 * @since 0.1.0
 * @category models
 */
export type Count = number | "unavailable"

/**
 * The state of one PIN, from the token flags.
 *
 * @since 0.1.0
 * @category models
 */
export interface PinStatus {
  /** A wrong PIN was entered since the last successful login. */
  readonly countLow: boolean
  /** One more wrong PIN locks it. */
  readonly finalTry: boolean
  readonly locked: boolean
  /** It must be changed before use (initialized by the SO, or expired). */
  readonly toBeChanged: boolean
}

/**
 * Information about a token (`C_GetTokenInfo`), with padding trimmed and flags decoded.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenInfo {
  readonly slotId: SlotId
  readonly label: string
  readonly manufacturerId: string
  readonly model: string
  readonly serialNumber: string
  /** The raw `CK_TOKEN_INFO.flags`. */
  readonly flags: number
  readonly initialized: boolean
  readonly loginRequired: boolean
  readonly userPinInitialized: boolean
  readonly writeProtected: boolean
  readonly userPin: PinStatus
  readonly soPin: PinStatus
  readonly maxSessions: SessionLimit
  readonly openSessions: Count
  readonly maxRwSessions: SessionLimit
  readonly openRwSessions: Count
  readonly minPinLength: number
  readonly maxPinLength: number
}

/**
 * What a mechanism can do on a token (`C_GetMechanismInfo`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MechanismInfo {
  readonly type: number
  readonly minKeySize: number
  readonly maxKeySize: number
  /** The raw `CK_MECHANISM_INFO.flags`. */
  readonly flags: number
  readonly sign: boolean
  readonly verify: boolean
  readonly encrypt: boolean
  readonly decrypt: boolean
  readonly generate: boolean
  readonly generateKeyPair: boolean
}

/**
 * The state of a session: read-only or read/write, and who is logged in on its token.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionState = "ro-public" | "ro-user" | "rw-public" | "rw-user" | "rw-so"

/**
 * Information about a session (`C_GetSessionInfo`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionInfo {
  readonly slotId: SlotId
  readonly state: SessionState
  readonly rw: boolean
  readonly deviceError: number
}

/**
 * Who logs in: the normal user, the security officer, or a context-specific login for a key with
 * `CKA_ALWAYS_AUTHENTICATE`.
 *
 * @since 0.1.0
 * @category models
 */
export type UserType = "user" | "so" | "context-specific"

/**
 * The outcome of `login`. Login state belongs to the token, not the session, so a second login on
 * any session of the same application returns `CKR_USER_ALREADY_LOGGED_IN`: that is success. Tokens
 * (SoftHSM2 among them) check the login state before the PIN, so `"already-logged-in"` says nothing
 * about whether this PIN is right.
 *
 * @since 0.1.0
 * @category models
 */
export type LoginResult = "logged-in" | "already-logged-in"

/**
 * RSA-PSS parameters (`CK_RSA_PKCS_PSS_PARAMS`). Always given explicitly: tokens' defaults differ.
 *
 * @since 0.1.0
 * @category models
 */
export interface RsaPssParameter {
  readonly _tag: "RsaPss"
  /** The hash mechanism, such as `CKM.SHA256`. */
  readonly hashAlg: number
  /** The mask generation function, such as `CKG.MGF1_SHA256`. */
  readonly mgf: number
  /** The salt length in bytes. */
  readonly saltLength: number
}

/**
 * RSA-OAEP parameters (`CK_RSA_PKCS_OAEP_PARAMS`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RsaOaepParameter {
  readonly _tag: "RsaOaep"
  readonly hashAlg: number
  readonly mgf: number
  /** The OAEP label; none when absent. */
  readonly label?: Uint8Array | undefined
}

/**
 * A mechanism parameter: a typed structure, or raw bytes for mechanisms whose parameter is a byte
 * string.
 *
 * @since 0.1.0
 * @category models
 */
export type MechanismParameter = RsaPssParameter | RsaOaepParameter | Uint8Array

/**
 * A mechanism with its parameter (`CK_MECHANISM`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Mechanism {
  /** The mechanism type, such as `CKM.ECDSA`. */
  readonly type: number
  readonly parameter?: MechanismParameter | undefined
}

/**
 * The handles of a generated key pair.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyPairHandles {
  readonly publicKey: ObjectHandle
  readonly privateKey: ObjectHandle
}

/**
 * The PKCS#11 calls hsmkey needs, each an Effect that fails with a typed `Pkcs11Failure`.
 *
 * Calls on one session run one at a time: PKCS#11 sessions hold one active operation, so a call
 * that would overlap another on the same session waits for it. Signing, verifying, decrypting and key
 * generation run on the libuv threadpool and never block the event loop.
 *
 * @since 0.1.0
 * @category tags
 */
export class Pkcs11 extends Context.Tag("@hsmkey/pkcs11/Pkcs11")<Pkcs11, Pkcs11.Service>() {}

/**
 * The types that go with the `Pkcs11` tag.
 *
 * @since 0.1.0
 */
export declare namespace Pkcs11 {
  /**
   * The Cryptoki calls of one loaded library, each an Effect.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /**
     * Identifies the loaded library: the real path of a native module, or a unique id for an
     * emulator. Two services with the same id share login state and handles.
     */
    readonly moduleId: string
    /**
     * A number that changes whenever an object handle may have been handed out or freed through this
     * library in this process (objects found, created, generated or destroyed; logins, logouts, all sessions
     * of a slot closed, tokens initialized). Tokens such as
     * openCryptoki give a destroyed object's handle number to the next object: a handle proven to be a
     * key's is trusted only while this number stays the same. Calls other code makes into the library
     * directly, bypassing this service, are not seen.
     */
    readonly objectGeneration: () => number
    /**
     * Keeps the library loaded for the scope's lifetime, even after the layer that loaded it is closed: a
     * `SessionPool` retains its library so that its sessions outlive any native call made through them.
     * A library is finalized only once nothing retains it and no native call is in flight; a call made
     * after that fails with `CKR_CRYPTOKI_NOT_INITIALIZED`.
     */
    readonly retain: Effect.Effect<void, Pkcs11Failure, Scope.Scope>
    readonly info: Effect.Effect<LibraryInfo, Pkcs11Failure>
    readonly slots: (
      options?: { readonly tokenPresent?: boolean | undefined }
    ) => Effect.Effect<ReadonlyArray<SlotId>, Pkcs11Failure>
    readonly slotInfo: (slot: SlotId) => Effect.Effect<SlotInfo, Pkcs11Failure>
    readonly tokenInfo: (slot: SlotId) => Effect.Effect<TokenInfo, Pkcs11Failure>
    readonly mechanisms: (slot: SlotId) => Effect.Effect<ReadonlyArray<number>, Pkcs11Failure>
    readonly mechanismInfo: (slot: SlotId, type: number) => Effect.Effect<MechanismInfo, Pkcs11Failure>
    /** Initializes (or re-initializes, destroying its objects) the token in `slot`. */
    readonly initToken: (
      slot: SlotId,
      options: { readonly soPin: Redacted.Redacted<string>; readonly label: string }
    ) => Effect.Effect<void, Pkcs11Failure>
    readonly openSession: (
      slot: SlotId,
      options?: { readonly rw?: boolean | undefined }
    ) => Effect.Effect<SessionHandle, Pkcs11Failure>
    readonly closeSession: (session: SessionHandle) => Effect.Effect<void, Pkcs11Failure>
    readonly closeAllSessions: (slot: SlotId) => Effect.Effect<void, Pkcs11Failure>
    readonly sessionInfo: (session: SessionHandle) => Effect.Effect<SessionInfo, Pkcs11Failure>
    readonly login: (
      session: SessionHandle,
      pin: Redacted.Redacted<string>,
      userType?: UserType
    ) => Effect.Effect<LoginResult, Pkcs11Failure>
    /** Logs out the token: every session of this application on it, not just `session`. */
    readonly logout: (session: SessionHandle) => Effect.Effect<void, Pkcs11Failure>
    /** Sets the user PIN; needs an SO login on a read/write session. */
    readonly initPin: (session: SessionHandle, pin: Redacted.Redacted<string>) => Effect.Effect<void, Pkcs11Failure>
    /** Changes the PIN of whoever is logged in (or the user PIN, when nobody is). */
    readonly setPin: (
      session: SessionHandle,
      oldPin: Redacted.Redacted<string>,
      newPin: Redacted.Redacted<string>
    ) => Effect.Effect<void, Pkcs11Failure>
    readonly findObjects: (
      session: SessionHandle,
      template: Attribute.Attributes
    ) => Effect.Effect<ReadonlyArray<ObjectHandle>, Pkcs11Failure>
    /**
     * Reads attributes of an object. An attribute the object does not have (`CKR_ATTRIBUTE_TYPE_INVALID`)
     * or keeps secret (`CKR_ATTRIBUTE_SENSITIVE`) is absent from the result, as PKCS#11 reports it for
     * that attribute alone.
     */
    readonly getAttributes: <N extends Attribute.Name>(
      session: SessionHandle,
      object: ObjectHandle,
      names: ReadonlyArray<N>
    ) => Effect.Effect<Attribute.Read<N>, Pkcs11Failure>
    readonly setAttributes: (
      session: SessionHandle,
      object: ObjectHandle,
      template: Attribute.Attributes
    ) => Effect.Effect<void, Pkcs11Failure>
    readonly createObject: (
      session: SessionHandle,
      template: Attribute.Attributes
    ) => Effect.Effect<ObjectHandle, Pkcs11Failure>
    readonly destroyObject: (session: SessionHandle, object: ObjectHandle) => Effect.Effect<void, Pkcs11Failure>
    readonly generateKeyPair: (
      session: SessionHandle,
      mechanism: Mechanism,
      templates: { readonly publicKey: Attribute.Attributes; readonly privateKey: Attribute.Attributes }
    ) => Effect.Effect<KeyPairHandles, Pkcs11Failure>
    readonly generateKey: (
      session: SessionHandle,
      mechanism: Mechanism,
      template: Attribute.Attributes
    ) => Effect.Effect<ObjectHandle, Pkcs11Failure>
    /**
     * `C_SignInit` and `C_Sign` as one operation. Empty data is refused (`CKR_ARGUMENTS_BAD`) before any
     * operation starts: pkcs11js would pass it as NULL, which leaves SoftHSM2's operation active.
     */
    readonly sign: (
      session: SessionHandle,
      mechanism: Mechanism,
      key: ObjectHandle,
      data: Uint8Array
    ) => Effect.Effect<Uint8Array, Pkcs11Failure>
    /**
     * The signing hot path: `C_SignInit` and `C_Sign` as one plain call, with no lock and no span, for code
     * that holds `session` alone and signs at the token's speed (hsmkey's signing lanes). It answers the
     * signature or the failure as a value, at once when `inline` is asked for and the library signs on the
     * calling thread (pkcs11js does: the event loop waits for the token), else as a promise of either.
     * `undefined` for a library that must be called one call at a time: use `sign`.
     */
    /** Whether `signDirect` asked for `inline` answers at once, on the calling thread. */
    readonly signsInline: boolean
    readonly signDirect:
      | ((
        session: SessionHandle,
        mechanism: Mechanism,
        key: ObjectHandle,
        data: Uint8Array,
        inline: boolean
      ) => Uint8Array | Pkcs11Failure | Promise<Uint8Array | Pkcs11Failure>)
      | undefined
    /**
     * Signs a batch in `session` on signing thread `thread` of the library (a worker thread with its own
     * handle on the library the process initialized, started on first use and stopped before the library
     * is finalized), item by item: a signature or the failure, each. One message carries the whole batch,
     * so the event loop's thread does none of the token's work. It rejects when the thread itself failed (it
     * exited or threw): nothing of the batch is known then. `undefined` for
     * a library without signing threads (the emulator), or one that must be called one call at a time.
     */
    readonly signBatch:
      | ((
        thread: number,
        session: SessionHandle,
        items: ReadonlyArray<{ readonly mechanism: Mechanism; readonly key: ObjectHandle; readonly data: Uint8Array }>
      ) => Promise<ReadonlyArray<Uint8Array | Pkcs11Failure>>)
      | undefined
    /**
     * `C_VerifyInit` and `C_Verify` as one operation: `false` for a signature the token rejects
     * (`CKR_SIGNATURE_INVALID`, `CKR_SIGNATURE_LEN_RANGE`); empty data is refused, as for `sign`.
     */
    readonly verify: (
      session: SessionHandle,
      mechanism: Mechanism,
      key: ObjectHandle,
      data: Uint8Array,
      signature: Uint8Array
    ) => Effect.Effect<boolean, Pkcs11Failure>
    /** `C_DecryptInit` and `C_Decrypt` as one operation; empty data is refused, as for `sign`. */
    readonly decrypt: (
      session: SessionHandle,
      mechanism: Mechanism,
      key: ObjectHandle,
      data: Uint8Array
    ) => Effect.Effect<Uint8Array, Pkcs11Failure>
  }
}
