/**
 * Which JOSE algorithms hsmkey signs and decrypts with, and which keys they fit: the algorithm policy
 * every signature and decryption applies before the token is asked.
 *
 * RS* and PS* need RSA keys of at least 2048 bits (RFC 7518 §3.3, §3.5), ES256/384/512 P-256/384/521,
 * EdDSA an Ed25519 or Ed448 key, HS* a secret at least as long as the hash. `none` and `RSA1_5` are
 * refused (RFC 8725 §3.2). A decryption key (`use: "enc"`) never signs, a signing key never decrypts.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type { AlgorithmMismatch, UnsupportedAlgorithm } from "./HsmError.js"
import type { HsmJwk } from "./HsmJwk.js"
import type * as Algorithms from "./internal/algorithms.js"
import * as Policy from "./internal/policy.js"

/**
 * A JWS algorithm hsmkey signs with.
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm = Algorithms.Algorithm

/**
 * An HMAC JWS algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export type HmacAlgorithm = Algorithms.HmacAlgorithm

/**
 * A JWE key management algorithm hsmkey decrypts with (RSA-OAEP; RSA1_5 is refused).
 *
 * @since 0.1.0
 * @category models
 */
export type KeyManagementAlgorithm = Algorithms.KeyManagementAlgorithm

/**
 * A key that signs JWS: a key pair (`HsmJwk`), or a secret (`HsmSecretKey`).
 *
 * @since 0.1.0
 * @category models
 */
export type SigningKey = Policy.SigningKey

/**
 * Checks that an algorithm is one hsmkey signs with and fits the key (by default the key's own).
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { Algorithm, HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "RSA-2048", label: "rsa" })
 *   assert.strictEqual(yield* Algorithm.check(key, "PS256"), "PS256")
 *   const mismatch = yield* Effect.flip(Algorithm.check(key, "ES256"))
 *   assert.strictEqual(mismatch._tag, "AlgorithmMismatch")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const check: (
  key: SigningKey,
  alg?: string
) => Effect.Effect<Algorithm, UnsupportedAlgorithm | AlgorithmMismatch> = Policy.checkAlgorithm

/**
 * Checks that a JWE key management algorithm is one hsmkey decrypts with and fits the key: an RSA
 * decryption key of at least 2048 bits, `RSA-OAEP` or `RSA-OAEP-256`.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkKeyManagement: (
  key: HsmJwk,
  alg: string
) => Effect.Effect<KeyManagementAlgorithm, UnsupportedAlgorithm | AlgorithmMismatch> = Policy.checkKeyManagement
