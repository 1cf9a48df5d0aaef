import * as Effect from "effect/Effect"
import { AlgorithmMismatch, UnsupportedAlgorithm } from "../HsmError.js"
import type { HsmJwk } from "../HsmJwk.js"
import type { HsmSecretKey } from "../HsmSecret.js"
import * as Algorithms from "./algorithms.js"
import * as Options from "./options.js"

/** A key that signs JWS: a key pair, or a secret. */
export type SigningKey = HsmJwk | HsmSecretKey

const describe = (key: SigningKey): string =>
  key.keyType === "RSA" ? `RSA-${key.bits}` : key.keyType === "oct" ? `${key.bits}-bit secret` : key.keyType

/**
 * An algorithm hsmkey signs with that fits the key: a signing key pair for RS*, PS*, ES* and EdDSA, a
 * secret of at least the hash's size for HS*.
 */
export const checkAlgorithm = (
  key: SigningKey,
  alg: string = key.alg
): Effect.Effect<Algorithms.Algorithm, UnsupportedAlgorithm | AlgorithmMismatch> => {
  const checked = algorithmFor(key, alg)
  return typeof checked === "string" ? Effect.succeed(checked) : Effect.fail(checked)
}

/** As `checkAlgorithm`, in plain code: the algorithm, or why the key does not sign with it. */
export const algorithmFor = (
  key: SigningKey,
  alg: string
): Algorithms.Algorithm | UnsupportedAlgorithm | AlgorithmMismatch => {
  if (key.keyType !== "oct" && key.use === "enc") {
    return new AlgorithmMismatch({ alg, keyType: describe(key), use: "enc" })
  }
  if (!Algorithms.isAlgorithm(alg)) return new UnsupportedAlgorithm({ alg: Options.nameOf(alg) })
  if (!Algorithms.fits(alg, key.keyType, key.bits)) return new AlgorithmMismatch({ alg, keyType: describe(key) })
  return alg
}

/**
 * A JWE key management algorithm hsmkey decrypts with that fits the key: an RSA decryption key
 * (`use: "enc"`) of at least 2048 bits, `RSA-OAEP` or `RSA-OAEP-256`. `RSA1_5` is refused (RFC 8725 §3.2).
 */
export const checkKeyManagement = (
  key: HsmJwk,
  alg: string
): Effect.Effect<Algorithms.KeyManagementAlgorithm, UnsupportedAlgorithm | AlgorithmMismatch> => {
  if (!Algorithms.isKeyManagement(alg)) return Effect.fail(new UnsupportedAlgorithm({ alg: Options.nameOf(alg) }))
  if (key.keyType !== "RSA" || key.use !== "enc" || key.bits < Algorithms.MIN_RSA_BITS) {
    return Effect.fail(new AlgorithmMismatch({ alg, keyType: describe(key), use: key.use }))
  }
  return Effect.succeed(alg)
}

/** An algorithm for what the key is for: a signature algorithm, or a key management one. */
export const checkForUse = (
  key: HsmJwk,
  alg: string
): Effect.Effect<Algorithms.Algorithm | Algorithms.KeyManagementAlgorithm, UnsupportedAlgorithm | AlgorithmMismatch> =>
  key.use === "enc" ? checkKeyManagement(key, alg) : checkAlgorithm(key, alg)
