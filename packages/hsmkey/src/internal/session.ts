import type { Pkcs11, SessionHandle, SlotId } from "@hsmkey/pkcs11/Pkcs11"
import type { HsmSession, TokenRef } from "../HsmSession.js"

/**
 * A lent session as hsmkey's own code uses it: the handle, its slot and library, and the login epoch it
 * was lent in. Users see an opaque `HsmSession`.
 */
export interface Session {
  readonly handle: SessionHandle
  readonly slotId: SlotId
  readonly rw: boolean
  readonly token: TokenRef
  /**
   * The login epoch at checkout. It changes whenever the token was logged in again (after a lost login
   * or a re-inserted token): object handles found in an earlier epoch are no longer valid.
   */
  readonly epoch: number
  /** Runs one operation at a time per session: fibers sharing a session in context take turns. */
  readonly pkcs11: Pkcs11.Service
}

const internals = new WeakMap<HsmSession, Session>()

const SessionProto = {
  toJSON(this: HsmSession) {
    return { _id: "HsmSession", token: this.token.label, rw: this.rw }
  },
  toString(this: HsmSession) {
    return `HsmSession(token "${this.token.label}", ${this.rw ? "read/write" : "read-only"})`
  },
  [Symbol.for("nodejs.util.inspect.custom")](this: HsmSession) {
    return this.toString()
  }
}

/** The opaque face of a lent session. */
export const toPublic = (session: Session): HsmSession => {
  const value: HsmSession = Object.assign(Object.create(SessionProto), { token: session.token, rw: session.rw })
  internals.set(value, session)
  return value
}

/** What a lent session is, for hsmkey's own code; a session not lent by hsmkey is a bug of the caller. */
export const internal = (session: HsmSession): Session => {
  const found = internals.get(session)
  if (found === undefined) throw new Error("not a session lent by an hsmkey SessionPool")
  return found
}

export const sameToken = (a: TokenRef, b: TokenRef): boolean =>
  a.serialNumber === b.serialNumber && a.moduleId === b.moduleId
