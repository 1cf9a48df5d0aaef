/**
 * HMAC secrets that live in a token: HS256, HS384 and HS512 computed inside it.
 *
 * An `HsmSecretKey` has no public half: it never appears in a JWKS, and it serializes as its `kty`, `kid`,
 * `alg` and `use` only, never its value. Like a key pair it is a value that finds its object again by
 * CKA_ID or label, in the session in context or one borrowed from the `SessionPool` in context.
 *
 * @since 0.1.0
 */
import { CKK, CKO } from "@hsmkey/pkcs11/Constants"
import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import type * as jose from "jose"
import * as Crypto from "node:crypto"
import {
  type AlgorithmMismatch,
  InvalidKeyMaterial,
  InvalidKeyReference,
  type InvalidOptions,
  type KeyAmbiguous,
  type KeyExists,
  type KeyNotFound,
  type MechanismUnsupported,
  type UnsupportedAlgorithm
} from "./HsmError.js"
import type { TokenRef } from "./HsmSession.js"
import * as Algorithms from "./internal/algorithms.js"
import * as Borrow from "./internal/borrow.js"
import * as Encoding from "./internal/encoding.js"
import * as KeyReference from "./internal/keyReference.js"
import * as MechanismSupport from "./internal/mechanismSupport.js"
import * as Options from "./internal/options.js"
import * as Policy from "./internal/policy.js"
import * as Requirements from "./internal/requirements.js"
import type { Session } from "./internal/session.js"
import * as Templates from "./internal/templates.js"
import * as TokenObjects from "./internal/tokenObjects.js"
import type { AcquireError, SessionPool } from "./SessionPool.js"

/**
 * An HMAC JWS algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export type HmacAlgorithm = Algorithms.HmacAlgorithm

const TypeId: unique symbol = Symbol.for("hsmkey/HsmSecretKey")

/**
 * A secret (HMAC) key on a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmSecretKey {
  readonly [TypeId]: typeof TypeId
  readonly kid: string
  readonly alg: HmacAlgorithm
  readonly keyType: "oct"
  /** The length of the secret in bits. */
  readonly bits: number
  readonly label: string | undefined
  readonly id: Uint8Array
  readonly token: TokenRef
}

const HsmSecretKeyProto = {
  [TypeId]: TypeId,
  toJSON(this: HsmSecretKey) {
    return { kty: "oct", kid: this.kid, alg: this.alg, use: "sig" }
  },
  toString(this: HsmSecretKey) {
    return `HsmSecretKey(${this.kid}, ${this.alg}, token "${this.token.label}")`
  },
  [Symbol.for("nodejs.util.inspect.custom")](this: HsmSecretKey) {
    return this.toString()
  }
}

const makeSecret = (fields: Omit<HsmSecretKey, typeof TypeId>): HsmSecretKey =>
  Object.assign(Object.create(HsmSecretKeyProto), fields)

/**
 * Whether a value is an `HsmSecretKey`.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isHsmSecretKey = (u: unknown): u is HsmSecretKey => Predicate.hasProperty(u, TypeId)

/**
 * Options of a secret key: its HMAC algorithm, label and CKA_ID (random by default: there is no public
 * material to derive one from). The `kid` is the CKA_ID in hex, or the label on request.
 *
 * @since 0.1.0
 * @category models
 */
export interface SecretOptions {
  readonly alg: HmacAlgorithm
  readonly label: string
  readonly id?: string | Uint8Array | undefined
  readonly kid?: "id" | "label" | undefined
}

/**
 * What generating a secret can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type GenerateError =
  | InvalidOptions
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | InvalidKeyReference
  | KeyExists
  | MechanismUnsupported
  | AcquireError

/**
 * What importing a secret can fail with: as generating, and material that is no secret or too short.
 *
 * @since 0.1.0
 * @category models
 */
export type ImportError = GenerateError | InvalidKeyMaterial

const secretOptions = {
  kid: Options.oneOf(["id", "label"]),
  alg: Options.required(Predicate.isUnknown, "an HMAC algorithm: HS256, HS384 or HS512")
}

/**
 * Why the options of a secret are not what it takes, as a JavaScript caller may give them, before the token
 * is asked: an object, a `kid` source, and the HMAC algorithm it is for.
 */
const optionsProblem = (options: unknown): InvalidOptions | UnsupportedAlgorithm | undefined =>
  Options.problem("secret options", options, secretOptions) ??
    Options.algorithmProblem((options as { readonly alg: unknown }).alg, Algorithms.isHmac)

/**
 * An `HsmSecretKey` from its handle. Its length is `CKA_VALUE_LEN`, except where the token reads it as 0
 * or not at all (openCryptoki 3.8, for a secret made with C_CreateObject): then the length known from
 * creating it, or, for a secret loaded from the token, the algorithm's minimum.
 */
const fromHandle = (
  session: Session,
  handle: ObjectHandle,
  alg: HmacAlgorithm,
  query: string,
  kidFrom: "id" | "label",
  knownBytes?: number
): Effect.Effect<HsmSecretKey, InvalidKeyReference | UnsupportedAlgorithm | AlgorithmMismatch | Pkcs11Failure> =>
  Effect.gen(function*() {
    const attributes = yield* session.pkcs11.getAttributes(session.handle, handle, ["label", "id", "valueLen"])
    const id = attributes.id ?? new Uint8Array(0)
    const label = attributes.label === undefined || attributes.label === "" ? undefined : attributes.label
    const kid = kidFrom === "label" ? label : id.length > 0 ? KeyReference.hex(id) : label
    if (kid === undefined) {
      return yield* new InvalidKeyReference({ detail: `the secret with ${query} has no ${kidFrom} for a kid` })
    }
    const reported = attributes.valueLen === undefined || attributes.valueLen === 0 ? undefined : attributes.valueLen
    const bits = (reported ?? knownBytes ?? Algorithms.hmacBits[alg] / 8) * 8
    const key = makeSecret({ kid, alg, keyType: "oct", bits, label, id, token: session.token })
    yield* Policy.checkAlgorithm(key)
    return key
  })

/**
 * Generates an HMAC secret in the token, in a read/write session, as long as the hash (32, 48 or 64
 * bytes): sensitive, never extractable, sign and verify only. A failure or an interruption after the
 * secret was made destroys it again.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmSecret, Jws, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * // An HMAC key that never leaves the token: it MACs and checks MACs inside.
 * const program = Effect.gen(function*() {
 *   const secret = yield* HsmSecret.generate({ alg: "HS256", label: "sessions" })
 *   const jws = yield* Jws.sign("session-id", secret)
 *   const { payload } = yield* Jws.verify(jws, secret)
 *   assert.strictEqual(new TextDecoder().decode(payload), "session-id")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (options: SecretOptions): Effect.Effect<HsmSecretKey, GenerateError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(optionsProblem(options))
    const alg = options.alg
    const label = yield* KeyReference.parseLabel(options.label)
    const id = options.id === undefined
      ? new Uint8Array(Crypto.randomBytes(16))
      : yield* KeyReference.parseId(options.id)
    const bytes = Algorithms.hmacBits[alg] / 8
    return yield* Borrow.inSession({ rw: true }, (session) =>
      Effect.gen(function*() {
        yield* Requirements.hmac(session, alg, "generate")
        yield* TokenObjects.ensureAbsent(session, label, id)
        return yield* TokenObjects.creating(
          session,
          session.pkcs11.generateKey(session.handle, { type: MechanismSupport.SECRET_GENERATION }, {
            ...Templates.secretKey,
            keyType: CKK.GENERIC_SECRET,
            valueLen: bytes,
            label,
            id
          }),
          (handle) => [handle],
          (handle) => fromHandle(session, handle, alg, `label "${label}"`, options.kid ?? "id", bytes)
        )
      }))
  }).pipe(Effect.withSpan("HsmSecret.generate", { captureStackTrace: false }))

/**
 * Imports an HMAC secret (bytes, or an `oct` JWK) into the token, in a read/write session, with the same
 * protections as a generated one. It must be at least as long as the hash. A failure or an interruption
 * after the secret was made destroys it again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const importSecret = (
  options: SecretOptions & { readonly key: Uint8Array | jose.JWK }
): Effect.Effect<HsmSecretKey, ImportError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(optionsProblem(options))
    const alg = options.alg
    const label = yield* KeyReference.parseLabel(options.label)
    const input = options.key
    const value = input instanceof Uint8Array
      ? input
      : Predicate.isRecord(input) && input.kty === "oct" && Encoding.isBase64url(input.k)
      ? new Uint8Array(Buffer.from(input.k, "base64url"))
      : yield* new InvalidKeyMaterial({ detail: "a secret is bytes or an oct JWK with a base64url \"k\"" })
    if (value.length * 8 < Algorithms.hmacBits[alg]) {
      return yield* new InvalidKeyMaterial({
        detail: `${alg} needs a secret of at least ${Algorithms.hmacBits[alg] / 8} bytes, not ${value.length}`
      })
    }
    const id = options.id === undefined
      ? new Uint8Array(Crypto.randomBytes(16))
      : yield* KeyReference.parseId(options.id)
    return yield* Borrow.inSession({ rw: true }, (session) =>
      Effect.gen(function*() {
        yield* Requirements.hmac(session, alg, "import")
        yield* TokenObjects.ensureAbsent(session, label, id)
        return yield* TokenObjects.creating(
          session,
          session.pkcs11.createObject(session.handle, {
            ...Templates.secretKey,
            keyType: CKK.GENERIC_SECRET,
            value,
            label,
            id
          }),
          (handle) => [handle],
          (handle) => fromHandle(session, handle, alg, `label "${label}"`, options.kid ?? "id", value.length)
        )
      }))
  }).pipe(Effect.withSpan("HsmSecret.importSecret", { captureStackTrace: false }))

/**
 * Options of loading a secret: its label, CKA_ID or both, and the HMAC algorithm it is for.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadOptions {
  readonly label?: string | undefined
  /** CKA_ID as hex or bytes. With `label`, both must match. */
  readonly id?: string | Uint8Array | undefined
  readonly alg: HmacAlgorithm
  /** The `kid`: the CKA_ID in hex (default), or the label. */
  readonly kid?: "id" | "label" | undefined
}

/**
 * What loading a secret can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type LoadError =
  | InvalidOptions
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | InvalidKeyReference
  | KeyNotFound
  | KeyAmbiguous
  | AcquireError

/**
 * Loads an HMAC secret by label, CKA_ID, or both, for an algorithm.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromHsm = (options: LoadOptions): Effect.Effect<HsmSecretKey, LoadError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(optionsProblem(options))
    const alg = options.alg
    const reference = yield* KeyReference.parse(options)
    const query = KeyReference.describe(reference)
    return yield* Borrow.inSession({ rw: false }, (session) =>
      Effect.flatMap(
        TokenObjects.findOne(
          session,
          { ...TokenObjects.templateOf(reference), class: CKO.SECRET_KEY },
          query,
          "secret"
        ),
        (handle) => fromHandle(session, handle, alg, query, options.kid ?? "id")
      ))
  }).pipe(Effect.withSpan("HsmSecret.fromHsm", { captureStackTrace: false }))
