import type { Pkcs11, SessionHandle, SlotId } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { PinMismatch } from "../HsmError.js"
import type { HsmSession, TokenRef } from "../HsmSession.js"

/**
 * A lent session as hsmkey's own code uses it: the handle, its slot and library, and its lease. Users see
 * an opaque `HsmSession`.
 */
export interface Session {
  readonly handle: SessionHandle
  readonly slotId: SlotId
  readonly rw: boolean
  readonly token: TokenRef
  /**
   * The token's login epoch now. It changes whenever the token was logged in again (after a lost login
   * or a re-inserted token): object handles found in an earlier epoch are no longer valid.
   */
  readonly epoch: number
  /** Runs one operation at a time per session: fibers sharing a session in context take turns. */
  readonly pkcs11: Pkcs11.Service
  /** Whether its lease still runs: a session captured past its lease is never used. */
  readonly active: boolean
  /**
   * Checks the session as the pool does when it lends one, for a session kept in context: a lost login
   * is restored, a session the token forgot fails with `SessionFailed`.
   */
  readonly refresh: Effect.Effect<void, PinMismatch | Pkcs11Failure>
}

// Shared by every copy of hsmkey in the process: a session lent by one is used by the other's operations.
const processWide = globalThis as unknown as Record<symbol, unknown>
const internals = (processWide[Symbol.for("hsmkey/LentSessions")] ??= new WeakMap()) as WeakMap<
  HsmSession,
  Session
>

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

/**
 * The session in context, when it can serve work on `token`: its lease still runs, it is on that token,
 * and it is read/write where `rw` is asked for.
 */
export const serving = (
  current: Option.Option<HsmSession>,
  token: TokenRef,
  rw: boolean
): Session | undefined => {
  if (current._tag === "None") return undefined
  const session = internal(current.value)
  return session.active && sameToken(session.token, token) && (session.rw || !rw) ? session : undefined
}
