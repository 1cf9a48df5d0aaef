/**
 * What a token can do, as data: the JOSE algorithms it signs and decrypts with, the key types it
 * generates and holds, and the mechanism each would use.
 *
 * It is read from the token's mechanism list and mechanism information (`C_GetMechanismList`,
 * `C_GetMechanismInfo`, no login needed), with what is known of its library beyond them (SoftHSM2 2.6
 * lists RSA-OAEP but takes SHA-1 parameters only). hsmkey decides from the same reading before it creates
 * an object or starts an operation, so a capability missing here is a `MechanismUnsupported` there.
 *
 * @since 0.1.0
 */
import { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import type { InvalidOptions, TokenAmbiguous, TokenNotFound } from "./HsmError.js"
import type { TokenRef } from "./HsmSession.js"
import type * as Algorithms from "./internal/algorithms.js"
import * as CapabilitiesReader from "./internal/capabilities.js"
import type * as KeyTypes from "./internal/keyTypes.js"
import * as TokenLookup from "./internal/tokenLookup.js"

/**
 * A JWS algorithm the token signs with, and the mechanism it uses.
 *
 * @since 0.1.0
 * @category models
 */
export interface Signing {
  readonly alg: Algorithms.Algorithm
  /** Such as `CKM_ECDSA` (the hash is computed by hsmkey) or `CKM_SHA256_RSA_PKCS_PSS`. */
  readonly mechanism: string
}

/**
 * A JWE key management algorithm the token decrypts with, and the mechanism it uses.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decryption {
  readonly alg: Algorithms.KeyManagementAlgorithm
  readonly mechanism: string
}

/**
 * What the token does with one key type.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyType {
  readonly type: KeyTypes.GenerateType
  /** The mechanism that generates keys of this type in the token, when it can. */
  readonly generate: string | undefined
  /** Whether a key of this type, imported, can be used: the token signs or decrypts with it. */
  readonly import: boolean
  /** The JWS algorithms a key of this type signs with here. */
  readonly signing: ReadonlyArray<Algorithms.Algorithm>
  /** The JWE key management algorithms a key of this type decrypts with here (RSA only). */
  readonly decryption: ReadonlyArray<Algorithms.KeyManagementAlgorithm>
}

/**
 * What the token does with HMAC secrets.
 *
 * @since 0.1.0
 * @category models
 */
export interface Secrets {
  /** The mechanism that generates secrets, when the token can and can MAC with them. */
  readonly generate: string | undefined
  /** Whether an imported secret can be used: the token MACs with it. */
  readonly import: boolean
  readonly signing: ReadonlyArray<Algorithms.HmacAlgorithm>
}

/**
 * What a token can do.
 *
 * @since 0.1.0
 * @category models
 */
export interface Capabilities {
  readonly token: TokenRef & { readonly model: string; readonly manufacturerId: string }
  /** Every mechanism the token lists, by name. */
  readonly mechanisms: ReadonlyArray<string>
  readonly signing: ReadonlyArray<Signing>
  readonly decryption: ReadonlyArray<Decryption>
  readonly keyTypes: ReadonlyArray<KeyType>
  readonly secrets: Secrets
}

/**
 * The capabilities of the token named by label or serial number. Needs no PIN: the mechanism list is
 * public.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect } from "effect"
 * import { Capabilities } from "hsmkey"
 *
 * // Needs only the library: no pool, no PIN.
 * const program = Effect.gen(function*() {
 *   const capabilities = yield* Capabilities.ofToken({ tokenLabel: "demo" })
 *   assert.strictEqual(Capabilities.canSign(capabilities, "ES256"), true)
 *   assert.strictEqual(Capabilities.canGenerate(capabilities, "Ed25519"), true)
 *   return capabilities.signing.map((signing) => signing.alg)
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo" }] }))))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const ofToken = (options: {
  readonly tokenLabel?: string | undefined
  readonly tokenSerial?: string | undefined
}): Effect.Effect<Capabilities, InvalidOptions | TokenNotFound | TokenAmbiguous | Pkcs11Failure, Pkcs11> =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11
    const info = yield* TokenLookup.find(pkcs11, yield* TokenLookup.selectorOf(options))
    return yield* CapabilitiesReader.read(pkcs11, info.slotId, info)
  }).pipe(Effect.withSpan("Capabilities.ofToken", { captureStackTrace: false }))

/**
 * Whether the token signs with the algorithm.
 *
 * @since 0.1.0
 * @category predicates
 */
export const canSign = (capabilities: Capabilities, alg: string): boolean =>
  capabilities.signing.some((signing) => signing.alg === alg)

/**
 * Whether the token decrypts JWEs with the key management algorithm.
 *
 * @since 0.1.0
 * @category predicates
 */
export const canDecrypt = (capabilities: Capabilities, alg: string): boolean =>
  capabilities.decryption.some((decryption) => decryption.alg === alg)

/**
 * Whether the token generates keys of the type (and can use them).
 *
 * @since 0.1.0
 * @category predicates
 */
export const canGenerate = (capabilities: Capabilities, type: string): boolean =>
  capabilities.keyTypes.some((keyType) => keyType.type === type && keyType.generate !== undefined)

/**
 * Whether a key of the type imported into the token can be used.
 *
 * @since 0.1.0
 * @category predicates
 */
export const canImport = (capabilities: Capabilities, type: string): boolean =>
  capabilities.keyTypes.some((keyType) => keyType.type === type && keyType.import)
