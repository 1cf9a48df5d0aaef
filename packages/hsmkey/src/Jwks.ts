/**
 * JSON Web Key Sets (RFC 7517 §5) of token keys: public halves only, ready to publish or to verify
 * with (`Jws.verify`, `Jwt.verify`, jose's `createLocalJWKSet`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { HsmError } from "./HsmError.js"
import * as HsmJwk from "./HsmJwk.js"
import type { HsmSession } from "./HsmSession.js"

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
 * The set of every key pair on the token.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromToken = (
  session: HsmSession,
  options?: { readonly kid?: HsmJwk.KidFrom }
): Effect.Effect<JsonWebKeySet, HsmError> =>
  Effect.map(HsmJwk.list(session, options), fromKeys).pipe(
    Effect.withSpan("Jwks.fromToken", { captureStackTrace: false })
  )
