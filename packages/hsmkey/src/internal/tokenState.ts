import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import type { TokenRef } from "../HsmSession.js"
import * as MechanismSupport from "./mechanismSupport.js"
import type { Session } from "./session.js"

/**
 * A key's object handle, and when it was proven to be the key's: in which login epoch (handles die at
 * logout) and at which object generation of the library (handle numbers are reused once freed).
 */
export interface KnownHandle {
  readonly handle: ObjectHandle
  readonly generation: number
}

/**
 * What hsmkey remembers of a token between sessions: its mechanisms, which never change, and the object
 * handles proven in the current login epoch, which die with it.
 */
interface TokenState {
  mechanisms: MechanismSupport.TokenMechanisms | undefined
  epoch: number
  readonly handles: Map<string, KnownHandle>
}

const states = new Map<string, TokenState>()

// A token's state by its reference object too, so that signing does not build the map key each time.
const byReference = new WeakMap<TokenRef, TokenState>()

const stateOf = (token: TokenRef): TokenState => {
  const known = byReference.get(token)
  if (known !== undefined) return known
  const key = `${token.moduleId}\u0000${token.serialNumber}`
  let state = states.get(key)
  if (state === undefined) {
    state = { mechanisms: undefined, epoch: -1, handles: new Map() }
    states.set(key, state)
  }
  byReference.set(token, state)
  return state
}

/**
 * The token's mechanisms, read once (`C_GetMechanismList`, `C_GetMechanismInfo`, `C_GetInfo`).
 */
export const mechanisms = (session: Session): Effect.Effect<MechanismSupport.TokenMechanisms, Pkcs11Failure> =>
  Effect.suspend(() => {
    const state = stateOf(session.token)
    if (state.mechanisms !== undefined) return Effect.succeed(state.mechanisms)
    return Effect.tap(MechanismSupport.read(session.pkcs11, session.slotId), (read) => {
      state.mechanisms = read
    })
  })

/** The token's mechanisms when they were read already. */
export const knownMechanisms = (token: TokenRef): MechanismSupport.TokenMechanisms | undefined =>
  stateOf(token).mechanisms

const handles = (session: Session): Map<string, KnownHandle> => {
  const state = stateOf(session.token)
  if (state.epoch !== session.epoch) {
    state.epoch = session.epoch
    state.handles.clear()
  }
  return state.handles
}

/** The handle proven for `key` in the session's epoch, if any. */
export const knownHandle = (session: Session, key: string): KnownHandle | undefined => handles(session).get(key)

export const rememberHandle = (session: Session, key: string, known: KnownHandle): void => {
  handles(session).set(key, known)
}

export const forgetHandle = (session: Session, key: string): void => {
  handles(session).delete(key)
}
