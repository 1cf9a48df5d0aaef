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
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwks, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "signing" })
 *   const jwks = Jwks.fromKeys([key, key])
 *   // One entry per kid.
 *   assert.deepStrictEqual(jwks.keys, [key.publicJwk])
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
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
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwks, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   yield* HsmJwk.generate({ type: "P-256", label: "current" })
 *   yield* HsmJwk.generate({ type: "Ed25519", label: "next" })
 *   // What to serve at /.well-known/jwks.json: public halves only.
 *   const jwks = yield* Jwks.fromToken()
 *   assert.deepStrictEqual(jwks.keys.map((jwk) => jwk.kty).sort(), ["EC", "OKP"])
 *   assert.ok(jwks.keys.every((jwk) => !("d" in jwk)))
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromToken = (options?: HsmJwk.ListOptions): Effect.Effect<JsonWebKeySet, HsmJwk.ListError, SessionPool> =>
  Effect.map(HsmJwk.list(options), fromKeys).pipe(
    Effect.withSpan("Jwks.fromToken", { captureStackTrace: false })
  )
