/**
 * JSON Web Key Sets (RFC 7517 §5) of token keys: public halves only, ready to publish or to verify
 * with (`Jws.verify`, `Jwt.verify`, jose's `createLocalJWKSet`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as HsmJwk from "./HsmJwk.js"
import type { SessionPool } from "./SessionPool.js"

/**
 * A JWK set.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonWebKeySet {
  // A mutable array, as jose's createLocalJWKSet and JSON tools take it.
  readonly keys: Array<HsmJwk.PublishedJwk>
}

/**
 * The set of the keys' public JWKs, one per `kid`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromKeys = (keys: Iterable<HsmJwk.HsmJwk>): JsonWebKeySet => {
  const byKid = new Map<string, HsmJwk.PublishedJwk>()
  for (const key of keys) byKid.set(key.kid, key.publicJwk)
  return { keys: [...byKid.values()] }
}

/**
 * The set of every key pair on the token of the `SessionPool` in context (in the session in context when
 * there is one), in `HsmJwk.list` order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromToken = (options?: HsmJwk.ListOptions): Effect.Effect<JsonWebKeySet, HsmJwk.ListError, SessionPool> =>
  Effect.map(HsmJwk.list(options), fromKeys).pipe(
    Effect.withSpan("Jwks.fromToken", { captureStackTrace: false })
  )
