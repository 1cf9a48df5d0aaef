import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { InvalidOptions } from "../HsmError.js"
import { CurrentSession, type TokenRef } from "../HsmSession.js"
import { type AcquireError, SessionPool } from "../SessionPool.js"
import type * as Algorithms from "./algorithms.js"
import type { SigningKey } from "./policy.js"
import { internal, sameToken, serving, type Session } from "./session.js"
import * as Signer from "./signer.js"
import * as SigningEngine from "./signingEngine.js"

const otherToken = (what: string, token: TokenRef, other: TokenRef) =>
  new InvalidOptions({
    detail: `${what} lives on token "${token.label}" (serial ${token.serialNumber}); the SessionPool in context ` +
      `is on "${other.label}" (serial ${other.serialNumber}): provide a pool on its token`
  })

const run = <A, E>(
  pool: SessionPool.Service,
  token: TokenRef,
  rw: boolean,
  f: (session: Session) => Effect.Effect<A, E>
): Effect.Effect<A, E | AcquireError> =>
  Effect.flatMap(Effect.serviceOption(CurrentSession), (current) => {
    const session = serving(current, token, rw)
    return session !== undefined
      ? Effect.zipRight(session.refresh, f(session))
      : Effect.scoped(Effect.flatMap(pool.session({ rw }), (lent) => f(internal(lent))))
  })

/**
 * Runs `f` on the token of the `SessionPool` in context: in the session in context when it serves (its
 * lease runs, it is on the pool's token, and it is read/write where `rw` is asked for), else in one
 * borrowed from the pool for its duration.
 */
export const inSession = <A, E>(
  options: { readonly rw: boolean },
  f: (session: Session) => Effect.Effect<A, E>
): Effect.Effect<A, E | AcquireError, SessionPool> =>
  Effect.flatMap(SessionPool, (pool) => run(pool, pool.token, options.rw, f))

/**
 * As `inSession`, for work on a key of `token`: the pool in context must be on the key's token
 * (`InvalidOptions` otherwise: a program with keys on several tokens provides a pool per token).
 */
export const inKeySession = <A, E>(
  key: { readonly token: TokenRef; readonly kid: string },
  options: { readonly rw: boolean },
  f: (session: Session) => Effect.Effect<A, E>
): Effect.Effect<A, E | AcquireError | InvalidOptions, SessionPool> =>
  Effect.flatMap(
    SessionPool,
    (pool): Effect.Effect<A, E | AcquireError | InvalidOptions> =>
      sameToken(pool.token, key.token)
        ? run(pool, key.token, options.rw, f)
        : Effect.fail(otherToken(`key ${key.kid}`, key.token, pool.token))
  )

/**
 * Signs with a key of the pool's token: in the session in context when it serves, else through the pool's
 * signing engine (no lease per signature), or a borrowed session for a pool without one.
 */
export const signing = (
  key: SigningKey,
  alg: Algorithms.Algorithm,
  signingInput: Uint8Array
): Effect.Effect<Uint8Array, SigningEngine.SignError | InvalidOptions, SessionPool> =>
  // One look at the context for both services: this runs once per signature.
  Effect.contextWithEffect((context: Context.Context<SessionPool>): Effect.Effect<
    Uint8Array,
    SigningEngine.SignError | InvalidOptions
  > => {
    const session = serving(Context.getOption(context, CurrentSession), key.token, false)
    if (session !== undefined) {
      return Effect.zipRight(session.refresh, Signer.sign(session, key, alg, signingInput))
    }
    const pool = Context.get(context, SessionPool)
    if (!sameToken(pool.token, key.token)) return Effect.fail(otherToken(`key ${key.kid}`, key.token, pool.token))
    const engine = SigningEngine.of(pool)
    return engine !== undefined
      ? engine.sign(key, alg, signingInput)
      : run(pool, key.token, false, (lent) => Signer.sign(lent, key, alg, signingInput))
  })

/**
 * As `signing`, for the code that has the caller's fiber already, with `f` making the caller's value of
 * the signature: the engine's fast path is taken at once, with no Effect step between the caller and the
 * token (this runs once per signature). The session in context, or anything off that path, goes through
 * `signing`.
 */
export const signed = <A>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  key: SigningKey,
  alg: Algorithms.Algorithm,
  signingInput: Uint8Array,
  f: (signature: Uint8Array) => A
): Effect.Effect<A, SigningEngine.SignError | InvalidOptions, SessionPool> => {
  const services = fiber.currentContext.unsafeMap
  const pool: SessionPool.Service | undefined = services.get(SessionPool.key)
  const engine = pool === undefined || services.has(CurrentSession.key) || !sameToken(pool.token, key.token)
    ? undefined
    : SigningEngine.of(pool)
  if (engine === undefined) return Effect.map(signing(key, alg, signingInput), f)
  const signed = engine.signIn(fiber, key, alg, signingInput)
  return signed instanceof Uint8Array ? Effect.succeed(f(signed)) : Effect.map(signed, f)
}
