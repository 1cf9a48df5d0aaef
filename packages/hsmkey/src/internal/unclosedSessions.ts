import type { Pkcs11, SessionHandle } from "@hsmkey/pkcs11/Pkcs11"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"

/**
 * The sessions of a pool whose `C_CloseSession` failed while the token still had them.
 *
 * A failed close leaves the session's state unknown, so the token is asked at once (`C_GetSessionInfo`):
 * a session it forgot is closed; one it still has is closed again before the pool opens another and when
 * the pool closes. Only in the login epoch it was kept in: once the token was lost, its number may belong
 * to a session someone else opened since.
 */
export interface UnclosedSessions {
  /** Closes a session, keeping it for later when the token answers otherwise and still has it. */
  readonly close: (session: SessionHandle) => Effect.Effect<void>
  /** Closes the kept sessions again; those that still fail stay kept. */
  readonly retry: Effect.Effect<void>
  /** How many are kept now. */
  readonly size: () => number
}

// The session is gone already: the token forgot it, or the token itself is gone.
const isGone = (error: unknown): boolean =>
  (Predicate.isTagged(error, "SessionFailed") && Predicate.hasProperty(error, "reason") && error.reason === "closed") ||
  Predicate.isTagged(error, "TokenNotPresent")

export const make = (pkcs11: Pkcs11.Service, label: string, epoch: () => number): UnclosedSessions => {
  const kept = new Set<SessionHandle>()
  let keptIn = epoch()

  const keep = (session: SessionHandle, message: string, again: boolean) =>
    Effect.suspend(() => {
      if (keptIn !== epoch()) kept.clear()
      keptIn = epoch()
      kept.add(session)
      return again ? Effect.void : Effect.logWarning(
        `Closing a session of token "${label}" failed (${message}) and the token still has it: closing it again later`
      )
    })

  const closeOnce = (session: SessionHandle, again: boolean): Effect.Effect<void> =>
    pkcs11.closeSession(session).pipe(
      Effect.catchAll((error) =>
        isGone(error) ? Effect.void : pkcs11.sessionInfo(session).pipe(
          Effect.matchEffect({
            onSuccess: () => keep(session, error.message, again),
            onFailure: (probe) => isGone(probe) ? Effect.void : keep(session, error.message, again)
          })
        )
      )
    )

  const retry = Effect.suspend(() => {
    if (kept.size === 0) return Effect.void
    const sessions = keptIn === epoch() ? [...kept] : []
    kept.clear()
    return Effect.forEach(sessions, (session) => closeOnce(session, true), { discard: true })
  })

  const close = (session: SessionHandle) => closeOnce(session, false)

  return { close, retry, size: () => kept.size }
}
