import * as Effect from "effect/Effect"
import { InvalidOptions } from "../HsmError.js"
import { CurrentSession, type TokenRef } from "../HsmSession.js"
import { type AcquireError, SessionPool } from "../SessionPool.js"
import { internal, sameToken, type Session } from "./session.js"

const otherToken = (what: string, token: TokenRef, other: TokenRef) =>
  new InvalidOptions({
    detail: `${what} lives on token "${token.label}" (serial ${token.serialNumber}); the SessionPool in context ` +
      `is on "${other.label}" (serial ${other.serialNumber}): provide a pool on its token`
  })

/**
 * Runs `f` in the session in context (`SessionPool.withSession`) when it serves, else in one borrowed from
 * the `SessionPool` in context for its duration. The session in context serves when it is read/write where
 * `rw` is asked for.
 */
export const inSession = <A, E>(
  options: { readonly rw: boolean },
  f: (session: Session) => Effect.Effect<A, E>
): Effect.Effect<A, E | AcquireError, SessionPool> =>
  Effect.flatMap(Effect.serviceOption(CurrentSession), (current) => {
    if (current._tag === "Some") {
      const session = internal(current.value)
      if (session.rw || !options.rw) return f(session)
    }
    return Effect.flatMap(
      SessionPool,
      (pool) => Effect.scoped(Effect.flatMap(pool.session({ rw: options.rw }), (lent) => f(internal(lent))))
    )
  })

/**
 * As `inSession`, for work on a key of `token`: the session in context serves only when it is on the
 * key's token, and the pool in context must be on it (`InvalidOptions` otherwise: a program with keys on
 * several tokens provides a pool per token).
 */
export const inKeySession = <A, E>(
  key: { readonly token: TokenRef; readonly kid: string },
  options: { readonly rw: boolean },
  f: (session: Session) => Effect.Effect<A, E>
): Effect.Effect<A, E | AcquireError | InvalidOptions, SessionPool> =>
  Effect.flatMap(Effect.serviceOption(CurrentSession), (current) => {
    if (current._tag === "Some") {
      const session = internal(current.value)
      if (sameToken(session.token, key.token) && (session.rw || !options.rw)) return f(session)
    }
    return Effect.flatMap(
      SessionPool,
      (pool): Effect.Effect<A, E | AcquireError | InvalidOptions> =>
        sameToken(pool.token, key.token)
          ? Effect.scoped(Effect.flatMap(pool.session({ rw: options.rw }), (lent) => f(internal(lent))))
          : Effect.fail(otherToken(`key ${key.kid}`, key.token, pool.token))
    )
  })
