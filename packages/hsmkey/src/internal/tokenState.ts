import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import type { HsmSession, TokenRef } from "../HsmSession.js"

/**
 * What hsmkey remembers of a token between sessions: its mechanism list, which never changes, and the
 * object handles it found in the current login epoch, which die with it.
 */
interface TokenState {
  mechanisms: ReadonlySet<number> | undefined
  epoch: number
  readonly handles: Map<string, ObjectHandle>
}

const states = new Map<string, TokenState>()

const stateOf = (token: TokenRef): TokenState => {
  const key = `${token.moduleId}\u0000${token.serialNumber}`
  let state = states.get(key)
  if (state === undefined) {
    state = { mechanisms: undefined, epoch: -1, handles: new Map() }
    states.set(key, state)
  }
  return state
}

/**
 * The token's mechanism list, asked once (`C_GetMechanismList`).
 */
export const mechanisms = (session: HsmSession): Effect.Effect<ReadonlySet<number>, Pkcs11Failure> =>
  Effect.suspend(() => {
    const state = stateOf(session.token)
    if (state.mechanisms !== undefined) return Effect.succeed(state.mechanisms)
    return Effect.map(session.pkcs11.mechanisms(session.slotId), (list) => {
      const set = new Set(list)
      state.mechanisms = set
      return set
    })
  })

const handles = (session: HsmSession): Map<string, ObjectHandle> => {
  const state = stateOf(session.token)
  if (state.epoch !== session.epoch) {
    state.epoch = session.epoch
    state.handles.clear()
  }
  return state.handles
}

/** The handle found for `key` in the session's epoch, if any. */
export const cachedHandle = (session: HsmSession, key: string): ObjectHandle | undefined => handles(session).get(key)

export const cacheHandle = (session: HsmSession, key: string, handle: ObjectHandle): void => {
  handles(session).set(key, handle)
}

export const forgetHandle = (session: HsmSession, key: string): void => {
  handles(session).delete(key)
}
