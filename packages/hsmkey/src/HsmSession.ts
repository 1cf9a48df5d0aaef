/**
 * A session borrowed from a `SessionPool`: a PKCS#11 session handle with what is needed to use it.
 *
 * A session is valid until the scope that borrowed it closes; never keep one beyond it. Keys loaded
 * through a session stay usable after it is gone: they keep CKA_ID and label, not the handle.
 *
 * @since 0.1.0
 */
import type { Pkcs11, SessionHandle, SlotId } from "@hsmkey/pkcs11/Pkcs11"

/**
 * A borrowed session.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmSession {
  readonly handle: SessionHandle
  readonly slotId: SlotId
  /** Whether the session is read/write; sessions are read-only unless asked for. */
  readonly rw: boolean
  readonly token: TokenRef
  /**
   * The login epoch at checkout. It changes whenever the token was logged in again (after a lost login
   * or a re-inserted token): object handles found in an earlier epoch are no longer valid.
   */
  readonly epoch: number
  /** The Cryptoki service the session belongs to. */
  readonly pkcs11: Pkcs11.Service
}

/**
 * How a token is named: by label for people, by serial number for identity.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenRef {
  readonly label: string
  readonly serialNumber: string
  /** The library the token is reached through (`Pkcs11.Service.moduleId`). */
  readonly moduleId: string
}
