import type { Pkcs11, SessionHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { SessionFailed } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"

/**
 * The sessions of a pool whose `C_CloseSession` failed while the token still had them.
 *
 * A failed close leaves the session's state unknown, so the token is asked at once (`C_GetSessionInfo`):
 * a session it forgot is closed; one it still has, or may have, is closed again before the pool opens
 * another and when the pool closes. Only until the token is next found gone (`lossCount` moves): its
 * number may then belong to a session someone else opened since.
 */
export interface UnclosedSessions {
  /** Closes a session, keeping it for later when the token answers otherwise and still has it. */
  readonly close: (session: SessionHandle) => Effect.Effect<void>
  /** Closes the kept sessions again; those that still fail stay kept. */
  readonly retry: Effect.Effect<void>
  /** Closes the kept sessions a last time, and warns of those the token still holds. */
  readonly closeLast: Effect.Effect<void>
}

/** The token forgot the session: it is closed (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`). */
export const isClosed = (error: unknown): error is SessionFailed =>
  Predicate.isTagged(error, "SessionFailed") && Predicate.hasProperty(error, "reason") && error.reason === "closed"

export const make = (pkcs11: Pkcs11.Service, label: string, lossCount: () => number): UnclosedSessions => {
  const kept = new Set<SessionHandle>()
  let keptIn: number | undefined

  const keep = (session: SessionHandle, message: string, again: boolean) =>
    Effect.suspend(() => {
      if (keptIn !== lossCount()) kept.clear()
      keptIn = lossCount()
      kept.add(session)
      return again ? Effect.void : Effect.logWarning(
        `Closing a session of token "${label}" failed (${message}) and the token still has it: closing it again later`
      )
    })

  // A token that answers it is gone may be back a moment later with the session (a passing
  // CKR_DEVICE_REMOVED): only a second such answer, when closing again, lets the session go.
  const closeOnce = (session: SessionHandle, again: boolean): Effect.Effect<void> =>
    pkcs11.closeSession(session).pipe(
      Effect.catchAll((error) =>
        isClosed(error) ? Effect.void : pkcs11.sessionInfo(session).pipe(
          Effect.matchEffect({
            onSuccess: () => keep(session, error.message, again),
            onFailure: (probe) =>
              isClosed(probe) || (again && Predicate.isTagged(probe, "TokenNotPresent"))
                ? Effect.void
                : keep(session, error.message, again)
          })
        )
      )
    )

  const retry = Effect.suspend(() => {
    if (kept.size === 0) return Effect.void
    const sessions = keptIn === lossCount() ? [...kept] : []
    kept.clear()
    return Effect.forEach(sessions, (session) => closeOnce(session, true), { discard: true })
  })

  const close = (session: SessionHandle) => closeOnce(session, false)

  const closeLast = Effect.zipRight(
    retry,
    Effect.suspend(() =>
      kept.size === 0 ? Effect.void : Effect.logWarning(
        `${kept.size} sessions of token "${label}" could not be closed: the token holds them until the library is finalized`
      )
    )
  )

  return { close, retry, closeLast }
}
