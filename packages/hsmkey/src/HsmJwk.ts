/**
 * Key pairs that live in a token, seen as JWKs.
 *
 * An `HsmJwk` is a value: the public JWK (with `kid`, `alg` and `use`) and what finds the private key
 * again (CKA_ID, label, token). It outlives the session it was loaded in. Signing with it finds the
 * private key's handle in the session at hand, proves it is the key's, and finds it again after a
 * re-login; the private key itself never leaves the token.
 *
 * Every operation here runs in the session in context (`SessionPool.withSession`) when there is one, and
 * otherwise in one it borrows from the `SessionPool` in context (read/write to generate or import).
 *
 * @since 0.1.0
 */
import { CKK, CKO } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import {
  type AlgorithmMismatch,
  type InvalidKeyMaterial,
  InvalidKeyReference,
  InvalidOptions,
  type InvalidSignature,
  type KeyAmbiguous,
  type KeyExists,
  KeyNotFound,
  type MechanismUnsupported,
  type UnsupportedAlgorithm,
  UnsupportedKey
} from "./HsmError.js"
import type { TokenRef } from "./HsmSession.js"
import * as Algorithms from "./internal/algorithms.js"
import * as Borrow from "./internal/borrow.js"
import * as Bytes from "./internal/bytes.js"
import * as KeyReference from "./internal/keyReference.js"
import * as KeyTypes from "./internal/keyTypes.js"
import * as Options from "./internal/options.js"
import * as Policy from "./internal/policy.js"
import * as PrivateKeys from "./internal/privateKeys.js"
import * as Requirements from "./internal/requirements.js"
import type { Session } from "./internal/session.js"
import * as Signer from "./internal/signer.js"
import * as Templates from "./internal/templates.js"
import * as TokenObjects from "./internal/tokenObjects.js"
import * as TokenState from "./internal/tokenState.js"
import * as Tracing from "./internal/tracing.js"
import type { AcquireError, SessionPool } from "./SessionPool.js"

/**
 * The key types of key pairs hsmkey handles.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyType = Exclude<Algorithms.KeyType, "oct">

/**
 * What a key pair is for: signatures, or decryption (JWE).
 *
 * @since 0.1.0
 * @category models
 */
export type Use = Templates.Use

/**
 * What `generate` makes: an RSA modulus size, or a curve.
 *
 * @since 0.1.0
 * @category models
 */
export type GenerateType = KeyTypes.GenerateType

/**
 * Every key type `generate` makes, RSA sizes first, then the curves: what a command line or a form offers.
 *
 * @since 0.1.0
 * @category models
 */
export const generateTypes: ReadonlyArray<GenerateType> = KeyTypes.generateTypes

/**
 * A public JWK (RFC 7517, RFC 8037), members as RFC 7638 orders them for a thumbprint.
 *
 * @since 0.1.0
 * @category models
 */
export type PublicJwk =
  | { readonly kty: "RSA"; readonly e: string; readonly n: string }
  | { readonly kty: "EC"; readonly crv: "P-256" | "P-384" | "P-521"; readonly x: string; readonly y: string }
  | { readonly kty: "OKP"; readonly crv: "Ed25519" | "Ed448"; readonly x: string }

/**
 * A public JWK as published: the key's members and `kid`, `alg` and `use`.
 *
 * @since 0.1.0
 * @category models
 */
export type PublishedJwk = PublicJwk & {
  readonly kid: string
  readonly alg: Algorithms.Algorithm | Algorithms.KeyManagementAlgorithm
  readonly use: Use
}

const TypeId: unique symbol = Symbol.for("hsmkey/HsmJwk")

/**
 * A key pair on a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmJwk {
  readonly [TypeId]: typeof TypeId
  readonly kid: string
  /** The algorithm a signature uses unless told otherwise, or the key management algorithm of an `enc` key. */
  readonly alg: Algorithms.Algorithm | Algorithms.KeyManagementAlgorithm
  readonly use: Use
  readonly keyType: KeyType
  /** The RSA modulus size, or the curve's size in bits. */
  readonly bits: number
  readonly publicJwk: PublishedJwk
  readonly label: string | undefined
  /** CKA_ID; empty when the key has none. */
  readonly id: Uint8Array
  readonly token: TokenRef
  /** The public key, for verification with node:crypto (jose takes it as it is). */
  readonly publicKey: Crypto.KeyObject
}

const HsmJwkProto = {
  [TypeId]: TypeId,
  // A key prints and serializes as its public JWK: there is nothing else to show.
  toJSON(this: HsmJwk) {
    return this.publicJwk
  },
  toString(this: HsmJwk) {
    return `HsmJwk(${this.kid}, ${this.alg}, token "${this.token.label}")`
  },
  [Symbol.for("nodejs.util.inspect.custom")](this: HsmJwk) {
    return this.toString()
  }
}

const makeKey = (fields: Omit<HsmJwk, typeof TypeId>): HsmJwk => Object.assign(Object.create(HsmJwkProto), fields)

/**
 * Whether a value is an `HsmJwk`.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isHsmJwk = (u: unknown): u is HsmJwk => Predicate.hasProperty(u, TypeId)

/**
 * How the `kid` is chosen: the RFC 7638 thumbprint (default), the CKA_ID in hex, or the label.
 *
 * @since 0.1.0
 * @category models
 */
export type KidFrom = "thumbprint" | "id" | "label"

/**
 * Options of loading a key.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadOptions {
  readonly label?: string | undefined
  /** CKA_ID as hex or bytes. With `label`, both must match. */
  readonly id?: string | Uint8Array | undefined
  readonly kid?: KidFrom | undefined
  /** The key's algorithm, published in its JWK; by default RS256, ES256/384/512 or EdDSA by key type. */
  readonly alg?: string | undefined
  /**
   * What the key is for; by default `"sig"` when the token lets it sign, else `"enc"` when it lets it
   * decrypt.
   */
  readonly use?: Use | undefined
}

/**
 * What loading a key can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type LoadError =
  | InvalidOptions
  | InvalidKeyReference
  | KeyNotFound
  | KeyAmbiguous
  | UnsupportedKey
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | AcquireError

/**
 * Options of generating or importing a key.
 *
 * @since 0.1.0
 * @category models
 */
export interface CreateOptions {
  readonly label: string
  /** CKA_ID as hex or bytes; by default derived from the public key (see `defaultId`). */
  readonly id?: string | Uint8Array | undefined
  readonly kid?: KidFrom | undefined
  /** The key's algorithm, published in its JWK; by default by key type. */
  readonly alg?: string | undefined
  /** `"enc"` makes a decryption key (RSA only): it decrypts and never signs. Default `"sig"`. */
  readonly use?: Use | undefined
}

/**
 * What generating or importing a key can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type CreateError =
  | InvalidOptions
  | InvalidKeyReference
  | KeyExists
  | KeyNotFound
  | UnsupportedKey
  | MechanismUnsupported
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | AcquireError

/**
 * Private key material to import: a private JWK, PKCS#8 as PEM text or DER bytes, or a `KeyObject`.
 *
 * @since 0.1.0
 * @category models
 */
export type PrivateKeyInput = jose.JWK | string | Uint8Array | Crypto.KeyObject

// RFC 7518 recommends OAEP with SHA-256; tokens limited to SHA-1 OAEP (SoftHSM2) need "RSA-OAEP".
const DEFAULT_KEY_MANAGEMENT: Algorithms.KeyManagementAlgorithm = "RSA-OAEP-256"

const kid = Options.oneOf(["thumbprint", "id", "label"])
const isKnown = (alg: string) => Algorithms.isAlgorithm(alg) || Algorithms.isKeyManagement(alg)
const keyOptions = { kid, use: Options.oneOf(["sig", "enc"]) }

/**
 * Why options every operation here takes are not what it takes, as a JavaScript caller may give them: an
 * object, a `kid` source, a `use` and an algorithm hsmkey knows, each a typed error before the token is
 * asked anything.
 */
const optionsProblem = (options: unknown): InvalidOptions | UnsupportedAlgorithm | undefined => {
  const refused = Options.problem("key options", options, keyOptions)
  if (refused !== undefined) return refused
  const alg = (options as { readonly alg?: unknown }).alg
  return alg === undefined ? undefined : Options.algorithmProblem(alg, isKnown)
}

const keyTypeOf = (
  attributes: { readonly keyType?: number | undefined; readonly ecParams?: Uint8Array | undefined }
): KeyType | undefined => {
  if (attributes.keyType === CKK.RSA) return "RSA"
  const curve = attributes.ecParams === undefined ? undefined : Curve.fromEcParams(attributes.ecParams)
  if (attributes.keyType === CKK.EC && (curve === "P-256" || curve === "P-384" || curve === "P-521")) return curve
  if (attributes.keyType === CKK.EC_EDWARDS && (curve === "Ed25519" || curve === "Ed448")) return curve
  return undefined
}

/**
 * The public JWK of a private key, with the private object's own attributes (read once): the JWK
 * comes from the public object with its CKA_ID (not its label: tokens label public and private halves
 * differently), or from the private object's own public attributes.
 */
const publicJwkOf = (session: Session, privateKey: ObjectHandle, query: string) =>
  Effect.gen(function*() {
    const pkcs11 = session.pkcs11
    const own = yield* pkcs11.getAttributes(session.handle, privateKey, [
      ...PublicKey.attributeNames,
      "label",
      "id",
      "sign",
      "decrypt"
    ])
    const id = own.id ?? new Uint8Array(0)
    if (id.length > 0) {
      const candidates = yield* pkcs11.findObjects(session.handle, { class: CKO.PUBLIC_KEY, id, keyType: own.keyType })
      for (const candidate of candidates) {
        const attributes = yield* pkcs11.getAttributes(session.handle, candidate, PublicKey.attributeNames)
        // Where the private object shows its public values, they must agree: a public object with the key's
        // CKA_ID and modulus but another exponent is another key's.
        const agrees = own.keyType !== CKK.RSA ||
          ((own.modulus === undefined || Bytes.sameBytes(own.modulus, attributes.modulus)) &&
            (own.publicExponent === undefined || Bytes.sameInteger(own.publicExponent, attributes.publicExponent)))
        const jwk = agrees ? PublicKey.toJwk(attributes) : undefined
        if (jwk !== undefined) return { jwk, own, id }
      }
    }
    const jwk = PublicKey.toJwk(own)
    if (jwk === undefined) {
      return yield* new KeyNotFound({ query, token: session.token.label, reason: "no-public-key" })
    }
    return { jwk, own, id }
  })

const kidOf = (
  jwk: PublicJwk,
  id: Uint8Array,
  label: string | undefined,
  from: KidFrom
): Effect.Effect<string, InvalidKeyReference> =>
  from === "id" && id.length > 0
    ? Effect.succeed(KeyReference.hex(id))
    : from === "label" && label !== undefined && label.length > 0
    ? Effect.succeed(label)
    : from !== "thumbprint"
    ? Effect.fail(new InvalidKeyReference({ detail: `the key has no ${from} to use as its kid` }))
    : Effect.promise(() => jose.calculateJwkThumbprint(jwk, "sha256"))

/**
 * An `HsmJwk` from a private key handle of the session.
 */
const fromHandle = (
  session: Session,
  privateKey: ObjectHandle,
  query: string,
  options: { readonly kid?: KidFrom | undefined; readonly alg?: string | undefined; readonly use?: Use | undefined }
): Effect.Effect<
  HsmJwk,
  KeyNotFound | UnsupportedKey | InvalidKeyReference | UnsupportedAlgorithm | AlgorithmMismatch | Pkcs11Failure
> =>
  Effect.gen(function*() {
    const { id, jwk, own } = yield* publicJwkOf(session, privateKey, query)
    const keyType = keyTypeOf(own)
    if (keyType === undefined) {
      return yield* new UnsupportedKey({
        detail: `the key with ${query} is of a type or curve hsmkey does not sign with`
      })
    }
    const label = own.label === undefined || own.label === "" ? undefined : own.label
    if (id.length === 0 && label === undefined) {
      return yield* new UnsupportedKey({
        detail: `the key with ${query} has neither CKA_ID nor CKA_LABEL, so hsmkey could not find it again; ` +
          "give it one (pkcs11-tool --id or --label)"
      })
    }
    const kid = yield* kidOf(jwk, id, label, options.kid ?? "thumbprint")
    const bits = keyType === "RSA"
      ? Buffer.from(jwk.kty === "RSA" ? jwk.n : "", "base64url").length * 8
      : Algorithms.curveBits[keyType]
    const use: Use = options.use ?? (own.sign !== true && own.decrypt === true ? "enc" : "sig")
    if (use === "enc" && keyType !== "RSA") {
      return yield* new UnsupportedKey({ detail: `only RSA keys decrypt JWEs; the key with ${query} is ${keyType}` })
    }
    const alg = use === "enc" ? DEFAULT_KEY_MANAGEMENT : Algorithms.defaultAlgorithm[keyType]
    const key = makeKey({
      kid,
      alg,
      use,
      keyType,
      bits,
      publicJwk: { ...jwk, kid, alg, use },
      label,
      id,
      token: session.token,
      publicKey: Crypto.createPublicKey({ key: jwk, format: "jwk" })
    })
    return options.alg === undefined ? key : yield* withAlgorithm(key, options.alg)
  })

/**
 * Loads a key pair by label, CKA_ID, or both. Fails with `KeyNotFound` (saying what was asked, the labels
 * of the private keys present, and whether only a public key matched or the session is not logged in) or
 * `KeyAmbiguous` (how many matched).
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwt, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   yield* HsmJwk.generate({ type: "P-256", label: "access-tokens" })
 *   // Later, or in another process: the key by its label.
 *   const key = yield* HsmJwk.fromHsm({ label: "access-tokens" })
 *   assert.strictEqual(key.alg, "ES256")
 *   return yield* Jwt.sign({ sub: "alice" }, key)
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromHsm = (options: LoadOptions): Effect.Effect<HsmJwk, LoadError, SessionPool> =>
  Effect.flatMap(
    Effect.zipRight(Effect.suspend(() => Options.refuse(optionsProblem(options))), KeyReference.parse(options)),
    (reference) =>
      Borrow.inSession({ rw: false }, (session) =>
        Effect.gen(function*() {
          const query = KeyReference.describe(reference)
          const template = TokenObjects.templateOf(reference)
          const privateKey = yield* TokenObjects.findOne(
            session,
            { ...template, class: CKO.PRIVATE_KEY },
            query,
            "private key"
          )
          return yield* fromHandle(session, privateKey, query, options)
        }))
  ).pipe(Effect.withSpan("HsmJwk.fromHsm", { captureStackTrace: false }))

/**
 * Options of listing keys.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListOptions {
  readonly kid?: KidFrom | undefined
}

/**
 * What listing keys can fail with: a `kid` source that is none, or that a key lacks, no session, the token's own
 * failures.
 *
 * @since 0.1.0
 * @category models
 */
export type ListError = InvalidOptions | InvalidKeyReference | AcquireError

const compareText = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

/**
 * Every key pair on the token whose type hsmkey handles, by label then CKA_ID; others are skipped.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   yield* HsmJwk.generate({ type: "P-256", label: "a" })
 *   yield* HsmJwk.generate({ type: "RSA-2048", label: "b" })
 *   const keys = yield* HsmJwk.list()
 *   assert.deepStrictEqual(keys.map((key) => key.label).sort(), ["a", "b"])
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const list = (options?: ListOptions): Effect.Effect<ReadonlyArray<HsmJwk>, ListError, SessionPool> =>
  Effect.zipRight(
    Effect.suspend(() => Options.refuse(Options.problem("list options", options, { kid }, "allowed"))),
    Borrow.inSession({ rw: false }, (session) =>
      Effect.gen(function*() {
        const handles = yield* session.pkcs11.findObjects(session.handle, { class: CKO.PRIVATE_KEY })
        const keys: Array<HsmJwk> = []
        for (const handle of handles) {
          // Keys hsmkey cannot use (other types, no readable public half, nothing to find them by) are not listed.
          const key = yield* fromHandle(session, handle, `handle ${handle}`, { kid: options?.kid }).pipe(
            Effect.map(Option.some),
            Effect.catchTags({
              UnsupportedKey: () => Effect.succeedNone,
              KeyNotFound: () => Effect.succeedNone,
              // Asked for no algorithm, each key gets its own: a failure here is a bug.
              UnsupportedAlgorithm: Effect.die,
              AlgorithmMismatch: Effect.die
            })
          )
          if (Option.isSome(key)) keys.push(key.value)
        }
        // By code unit, not by locale: the same order on every machine.
        return keys.sort((a, b) =>
          compareText(a.label ?? "", b.label ?? "") || compareText(KeyReference.hex(a.id), KeyReference.hex(b.id))
        )
      }))
  ).pipe(Effect.withSpan("HsmJwk.list", { captureStackTrace: false }))

/**
 * The CKA_ID hsmkey gives a key when none is asked for: the SHA-1 of its public key material (the RSA
 * modulus, or the EC or Edwards point without its DER wrapper), as OpenSC and NSS do.
 *
 * @since 0.1.0
 * @category utils
 */
export const defaultId = (jwk: PublicJwk): Uint8Array => {
  const material = jwk.kty === "RSA"
    ? Buffer.from(jwk.n, "base64url")
    : jwk.kty === "EC"
    ? Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, "base64url"), Buffer.from(jwk.y, "base64url")])
    : Buffer.from(jwk.x, "base64url")
  return new Uint8Array(Crypto.createHash("sha1").update(material).digest())
}

const requireRsaForEnc = (use: Use, keyType: string): Effect.Effect<void, UnsupportedKey> =>
  use === "enc" && !keyType.startsWith("RSA")
    ? Effect.fail(new UnsupportedKey({ detail: `only RSA keys decrypt JWEs, not ${keyType}` }))
    : Effect.void

/**
 * Generates a key pair on the token, in a read/write session: token objects, the private key
 * sensitive, not extractable and sign only. A label or CKA_ID already on the token is `KeyExists`; a key
 * type the token does not generate, or could not use, is `MechanismUnsupported` before anything is made.
 * Key generation runs on the threadpool and never blocks the event loop; a failure or an interruption
 * after the token made the key destroys it again.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "Ed25519", label: "signing" })
 *   assert.strictEqual(key.alg, "EdDSA")
 *   // The public half only; the private key stays in the token.
 *   assert.deepStrictEqual(Object.keys(key.publicJwk).sort(), ["alg", "crv", "kid", "kty", "use", "x"])
 *   const again = yield* Effect.flip(HsmJwk.generate({ type: "Ed25519", label: "signing" }))
 *   assert.strictEqual(again._tag, "KeyExists")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (
  options: CreateOptions & { readonly type: GenerateType }
): Effect.Effect<HsmJwk, CreateError, SessionPool> => {
  const type: unknown = Predicate.isRecord(options) ? options.type : undefined
  return Effect.gen(function*() {
    yield* Options.refuse(optionsProblem(options))
    if (!KeyTypes.isGenerateType(type)) {
      return yield* new UnsupportedKey({
        detail: `cannot generate ${Options.shown(type)}; hsmkey generates ${KeyTypes.generateTypes.join(", ")}`
      })
    }
    const spec = KeyTypes.specs[type]
    const use = options.use ?? "sig"
    yield* requireRsaForEnc(use, type)
    const label = yield* KeyReference.parseLabel(options.label)
    const id = options.id === undefined ? undefined : yield* KeyReference.parseId(options.id)
    return yield* Borrow.inSession({ rw: true }, (session) =>
      Effect.gen(function*() {
        yield* Requirements.keyGeneration(session, spec, use)
        yield* TokenObjects.ensureAbsent(session, label, id)
        const pkcs11 = session.pkcs11
        // Without an id, generate under a temporary one and set the one derived from the public key after.
        const initialId = id ?? new Uint8Array(Crypto.randomBytes(16))
        return yield* TokenObjects.creating(
          session,
          pkcs11.generateKeyPair(session.handle, { type: spec.generation }, {
            publicKey: { ...Templates.publicKey(use), ...spec.publicKey, keyType: spec.ckk, label, id: initialId },
            privateKey: { ...Templates.privateKey(use), keyType: spec.ckk, label, id: initialId }
          }),
          (pair) => [pair.privateKey, pair.publicKey],
          (pair) =>
            Effect.gen(function*() {
              if (id === undefined) {
                const attributes = yield* pkcs11.getAttributes(session.handle, pair.publicKey, PublicKey.attributeNames)
                const jwk = PublicKey.toJwk(attributes)
                if (jwk === undefined) {
                  return yield* new UnsupportedKey({ detail: "the token returned an unreadable public key" })
                }
                const derived = defaultId(jwk)
                yield* pkcs11.setAttributes(session.handle, pair.publicKey, { id: derived })
                yield* pkcs11.setAttributes(session.handle, pair.privateKey, { id: derived })
              }
              return yield* fromHandle(session, pair.privateKey, `label "${label}"`, { ...options, use })
            })
        )
      }))
  }).pipe(
    Effect.withSpan("HsmJwk.generate", {
      attributes: { "hsm.keyType": typeof type === "string" ? type : Options.kindOf(type) },
      captureStackTrace: false
    })
  )
}

/**
 * Imports a private key into the token, in a read/write session, with the same protections as a
 * generated one: sensitive, not extractable, sign only. Its public half becomes a public object. The
 * material is checked before anything reaches the token: its shape and sizes, that its two halves belong
 * together, and that the token can use a key of its type. PEM text and DER bytes of more than 64 KiB are
 * `InvalidKeyMaterial` unread.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 * import * as Crypto from "node:crypto"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * // A key made elsewhere moves into the token; from then on it signs there only.
 * const { privateKey } = Crypto.generateKeyPairSync("ec", { namedCurve: "P-384" })
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.importPrivate({ key: privateKey, label: "imported" })
 *   assert.strictEqual(key.alg, "ES384")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const importPrivate = (
  options: CreateOptions & { readonly key: PrivateKeyInput }
): Effect.Effect<HsmJwk, CreateError | InvalidKeyMaterial, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(optionsProblem(options))
    const label = yield* KeyReference.parseLabel(options.label)
    const key = yield* PrivateKeys.parse(options.key)
    const use = options.use ?? "sig"
    yield* requireRsaForEnc(use, key.keyType)
    const described = key.keyType === "RSA" ? `RSA-${key.bits}` : key.keyType
    const size = key.keyType === "RSA" ? key.bits : KeyTypes.specs[key.keyType].size
    const id = options.id === undefined ? defaultId(key.publicJwk) : yield* KeyReference.parseId(options.id)
    return yield* Borrow.inSession({ rw: true }, (session) =>
      Effect.gen(function*() {
        yield* Requirements.keyUse(session, "import", described, key.keyType, size, use)
        yield* TokenObjects.ensureAbsent(session, label, id)
        const pkcs11 = session.pkcs11
        return yield* TokenObjects.creating(
          session,
          pkcs11.createObject(session.handle, { ...Templates.privateKey(use), ...key.privateKey, label, id }),
          (privateKey) => [privateKey],
          (privateKey) =>
            TokenObjects.creating(
              session,
              pkcs11.createObject(session.handle, { ...Templates.publicKey(use), ...key.publicKey, label, id }),
              (publicKey) => [publicKey],
              () => fromHandle(session, privateKey, `label "${label}"`, { ...options, use })
            )
        )
      }))
  }).pipe(Effect.withSpan("HsmJwk.importPrivate", { captureStackTrace: false }))

/**
 * What signing bytes with a key can fail with: an algorithm that does not fit the key (or an `enc` key), a
 * token that cannot compute it or answers a signature of the wrong size, a key that is no longer on the
 * token, a session that cannot be had, and what a caller passes wrong (`InvalidOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export type SignError =
  | InvalidOptions
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | MechanismUnsupported
  | InvalidSignature
  | KeyNotFound
  | KeyAmbiguous
  | AcquireError

const signOptions = { alg: Options.optional(Predicate.isString, "an algorithm name", Options.shown) }

/**
 * Signs bytes with the key inside the token, for formats other than JOSE (an X.509 request or
 * certificate, a CMS signature): `alg` (by default the key's) names the hash and padding as in JWS, and the
 * signature comes as JWS and WebCrypto give it (ECDSA as r ‖ s, not DER). The handle signing is proven to
 * be the key's, as for `Jws.sign`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 * import * as Crypto from "node:crypto"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "csr" })
 *   const data = new TextEncoder().encode("to be signed")
 *   // ECDSA comes as r ‖ s, as in JWS: node:crypto reads it with dsaEncoding "ieee-p1363".
 *   const signature = yield* HsmJwk.sign(key, data)
 *   const valid = Crypto.verify("sha256", data, { key: key.publicKey, dsaEncoding: "ieee-p1363" }, signature)
 *   assert.strictEqual(valid, true)
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category signing
 */
export const sign = (
  key: HsmJwk,
  data: Uint8Array,
  options?: { readonly alg?: string | undefined }
): Effect.Effect<Uint8Array, SignError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(Options.keyProblem(key, isHsmJwk, "an HsmJwk"))
    yield* Options.refuse(Options.problem("signature options", options, signOptions, "allowed"))
    if (!(data instanceof Uint8Array)) {
      return yield* new InvalidOptions({ detail: `the data to sign must be bytes, not ${Options.kindOf(data)}` })
    }
    const alg = yield* Policy.checkAlgorithm(key, options?.alg ?? key.alg)
    return yield* Borrow.signing(key, alg, data)
  }).pipe(Tracing.withSpan("HsmJwk.sign", Tracing.onKey(key)))

/**
 * What destroying a key can fail with: it is no longer on the token (or another key took its place), a
 * session that cannot be had or cannot write, and what a caller passes wrong.
 *
 * @since 0.1.0
 * @category models
 */
export type DestroyError =
  | InvalidOptions
  | KeyNotFound
  | KeyAmbiguous
  | MechanismUnsupported
  | InvalidSignature
  | AcquireError

const samePublicKey = (a: PublicJwk, b: PublicJwk): boolean =>
  a.kty === "RSA"
    ? b.kty === "RSA" && Bytes.sameInteger(Buffer.from(a.n, "base64url"), Buffer.from(b.n, "base64url")) &&
      Bytes.sameInteger(Buffer.from(a.e, "base64url"), Buffer.from(b.e, "base64url"))
    : a.kty === "EC"
    ? b.kty === "EC" && a.crv === b.crv && a.x === b.x && a.y === b.y
    : b.kty === "OKP" && a.crv === b.crv && a.x === b.x

/**
 * The private key's handle in the session, proven to be the key's at the library's current object
 * generation: RSA by its modulus, EC and Edwards keys (whose private objects show no public value) by a
 * signature over random bytes that verifies under the key.
 */
const provenPrivateHandle = (session: Session, key: HsmJwk) =>
  Effect.gen(function*() {
    if (key.keyType === "RSA") return yield* Signer.withKeyHandle(session, key, Effect.succeed)
    yield* Signer.sign(session, key, Algorithms.defaultAlgorithm[key.keyType], Crypto.randomBytes(32))
    const known = TokenState.knownHandle(session, Signer.cacheKey(key))
    // Signing proved and remembered the handle; anything found, made or destroyed since voids that proof.
    if (known === undefined || known.generation !== session.pkcs11.objectGeneration()) {
      return yield* new KeyNotFound({
        query: `the key ${key.kid}`,
        token: session.token.label,
        kind: "private key",
        reason: "changed"
      })
    }
    return known.handle
  })

/**
 * Destroys a key pair on the token, in a read/write session: its private key, once proven to be this
 * key's (another key under its CKA_ID or label is `KeyNotFound` with `reason: "changed"`, and stays), and
 * every public object with its CKA_ID (or label, for a key without one) and its public value. Signing with
 * the key afterwards is `KeyNotFound`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "retired" })
 *   yield* HsmJwk.destroy(key)
 *   const gone = yield* Effect.flip(HsmJwk.fromHsm({ label: "retired" }))
 *   assert.strictEqual(gone._tag, "KeyNotFound")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category destructors
 */
export const destroy = (key: HsmJwk): Effect.Effect<void, DestroyError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(Options.keyProblem(key, isHsmJwk, "an HsmJwk"))
    return yield* Borrow.inKeySession(key, { rw: true }, (session) =>
      Effect.gen(function*() {
        const pkcs11 = session.pkcs11
        const privateKey = yield* provenPrivateHandle(session, key)
        yield* pkcs11.destroyObject(session.handle, privateKey)
        TokenState.forgetHandle(session, Signer.cacheKey(key))
        const named = key.id.length > 0 ? { id: key.id } : { label: key.label }
        const publicKeys = yield* pkcs11.findObjects(session.handle, { class: CKO.PUBLIC_KEY, ...named })
        for (const handle of publicKeys) {
          const jwk = PublicKey.toJwk(yield* pkcs11.getAttributes(session.handle, handle, PublicKey.attributeNames))
          if (jwk !== undefined && samePublicKey(jwk, key.publicJwk)) {
            yield* pkcs11.destroyObject(session.handle, handle)
          }
        }
      }))
  }).pipe(Effect.withSpan("HsmJwk.destroy", { captureStackTrace: false }))

/**
 * The same key with another algorithm, checked to fit it; its JWK publishes the new one.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withAlgorithm = (
  key: HsmJwk,
  alg: string
): Effect.Effect<HsmJwk, UnsupportedAlgorithm | AlgorithmMismatch> =>
  Effect.map(
    Policy.checkForUse(key, alg),
    (checked) => makeKey({ ...key, alg: checked, publicJwk: { ...key.publicJwk, alg: checked } })
  )

/**
 * The public key as SPKI PEM.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "tls" })
 *   assert.ok(HsmJwk.toPem(key).startsWith("-----BEGIN PUBLIC KEY-----"))
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const toPem = (key: HsmJwk): string => key.publicKey.export({ type: "spki", format: "pem" }).toString()

/**
 * The public key as a WebCrypto `CryptoKey` for an algorithm, through jose. Ed448 has no WebCrypto
 * `CryptoKey` in jose: it is `UnsupportedKey` (its `publicKey`, a `KeyObject`, verifies with node:crypto).
 *
 * @since 0.1.0
 * @category conversions
 */
export const toCryptoKey = (
  key: HsmJwk,
  alg: Algorithms.Algorithm | Algorithms.KeyManagementAlgorithm = key.alg
): Effect.Effect<jose.CryptoKey | Uint8Array, AlgorithmMismatch | UnsupportedAlgorithm | UnsupportedKey> =>
  Effect.flatMap(
    Policy.checkForUse(key, alg),
    (checked): Effect.Effect<jose.CryptoKey | Uint8Array, UnsupportedKey> =>
      key.keyType === "Ed448"
        ? Effect.fail(
          new UnsupportedKey({ detail: `jose makes no CryptoKey of Ed448 key ${key.kid}: use its publicKey` })
        )
        : Effect.promise(() => jose.importJWK({ ...key.publicJwk, alg: checked }, checked))
  )
