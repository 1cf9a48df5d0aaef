/**
 * Keys that live in a token, seen as JWKs.
 *
 * An `HsmJwk` is a value: the public JWK (with `kid`, `alg` and `use`) and what finds the private key
 * again (CKA_ID, label, token). It outlives the session it was loaded in. Signing with it finds the
 * private key's handle in the session at hand, caches it for the login epoch, and finds it again after a
 * re-login; the private key itself never leaves the token.
 *
 * @since 0.1.0
 */
import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK, CKO, mechanismName } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import * as PublicKey from "@hsmkey/pkcs11/PublicKey"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import {
  AlgorithmMismatch,
  InvalidKeyMaterial,
  InvalidKeyReference,
  KeyNotFound,
  MechanismUnsupported,
  UnsupportedAlgorithm,
  UnsupportedKey
} from "./HsmError.js"
import type { HsmSession, TokenRef } from "./HsmSession.js"
import * as Algorithms from "./internal/algorithms.js"
import * as Encoding from "./internal/encoding.js"
import * as KeyReference from "./internal/keyReference.js"
import * as KeyTypes from "./internal/keyTypes.js"
import * as MechanismSupport from "./internal/mechanismSupport.js"
import * as PrivateKeys from "./internal/privateKeys.js"
import * as TokenObjects from "./internal/tokenObjects.js"
import * as TokenState from "./internal/tokenState.js"

/**
 * A JWS algorithm hsmkey signs with.
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm = Algorithms.Algorithm

/**
 * A JWE key management algorithm hsmkey decrypts with (RSA-OAEP; RSA1_5 is refused).
 *
 * @since 0.1.0
 * @category models
 */
export type KeyManagementAlgorithm = Algorithms.KeyManagementAlgorithm

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
export type Use = "sig" | "enc"

/**
 * What `generate` makes: an RSA modulus size, or a curve.
 *
 * @since 0.1.0
 * @category models
 */
export type GenerateType = KeyTypes.GenerateType

/**
 * A public JWK as published: the key's members and `kid`, `alg` and `use`.
 *
 * @since 0.1.0
 * @category models
 */
export type PublishedJwk = PublicKey.PublicJwk & {
  readonly kid: string
  readonly alg: Algorithm | KeyManagementAlgorithm
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
  readonly alg: Algorithm | KeyManagementAlgorithm
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

// RFC 7518 recommends OAEP with SHA-256; tokens limited to SHA-1 OAEP (SoftHSM2) need "RSA-OAEP".
const DEFAULT_KEY_MANAGEMENT: KeyManagementAlgorithm = "RSA-OAEP-256"

const keyTypeOf = (
  attributes: { readonly keyType?: number | undefined; readonly ecParams?: Uint8Array | undefined }
) => {
  if (attributes.keyType === CKK.RSA) return "RSA" as const
  const curve = attributes.ecParams === undefined ? undefined : Curve.fromEcParams(attributes.ecParams)
  if (attributes.keyType === CKK.EC && (curve === "P-256" || curve === "P-384" || curve === "P-521")) return curve
  if (attributes.keyType === CKK.EC_EDWARDS && (curve === "Ed25519" || curve === "Ed448")) return curve
  return undefined
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined) =>
  a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b))

/**
 * The public JWK of a private key, with the private object's own attributes (read once): the JWK
 * comes from the public object with its CKA_ID (not its label: tokens label public and private halves
 * differently), or from the private object's own public attributes.
 */
const publicJwkOf = (session: HsmSession, privateKey: ObjectHandle, query: string) =>
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
        // Where the private object shows its public values, they must agree.
        const agrees = own.keyType !== CKK.RSA || own.modulus === undefined ||
          sameBytes(own.modulus, attributes.modulus)
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

const kidOf = (jwk: PublicKey.PublicJwk, id: Uint8Array, label: string | undefined, from: KidFrom) =>
  Effect.gen(function*() {
    if (from === "id" && id.length > 0) return KeyReference.hex(id)
    if (from === "label" && label !== undefined && label.length > 0) return label
    if (from !== "thumbprint") {
      return yield* new InvalidKeyReference({ detail: `the key has no ${from} to use as its kid` })
    }
    return yield* Effect.promise(() => jose.calculateJwkThumbprint(jwk, "sha256"))
  })

/**
 * An `HsmJwk` from a private key handle of the session.
 */
const fromHandle = (
  session: HsmSession,
  privateKey: ObjectHandle,
  query: string,
  options: { readonly kid?: KidFrom | undefined; readonly alg?: string | undefined; readonly use?: Use | undefined }
) =>
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
 * Loads a key pair by label, CKA_ID, or both. Fails with `KeyNotFound` (saying what was asked, and
 * whether only a public key matched) or `KeyAmbiguous` (how many matched).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromHsm = Effect.fn("HsmJwk.fromHsm")(function*(session: HsmSession, options: LoadOptions) {
  const reference = yield* KeyReference.parse(options)
  const query = KeyReference.describe(reference)
  const template = TokenObjects.templateOf(reference)
  const privateKey = yield* TokenObjects.findOne(
    session,
    { ...template, class: CKO.PRIVATE_KEY },
    query,
    Effect.map(
      session.pkcs11.findObjects(session.handle, { ...template, class: CKO.PUBLIC_KEY }),
      (publicKeys) => publicKeys.length > 0 ? "public-only" : "absent"
    )
  )
  return yield* fromHandle(session, privateKey, query, options)
})

/**
 * Every key pair on the token whose type hsmkey handles; others are skipped.
 *
 * @since 0.1.0
 * @category constructors
 */
export const list = Effect.fn("HsmJwk.list")(function*(session: HsmSession, options?: { readonly kid?: KidFrom }) {
  const handles = yield* session.pkcs11.findObjects(session.handle, { class: CKO.PRIVATE_KEY })
  const keys: Array<HsmJwk> = []
  for (const handle of handles) {
    // Keys hsmkey cannot use (other types, no readable public half, nothing to find them by) are not listed.
    const key = yield* fromHandle(session, handle, `handle ${handle}`, { kid: options?.kid }).pipe(
      Effect.map(Option.some),
      Effect.catchTags({
        UnsupportedKey: () => Effect.succeedNone,
        KeyNotFound: () => Effect.succeedNone
      })
    )
    if (Option.isSome(key)) keys.push(key.value)
  }
  return keys as ReadonlyArray<HsmJwk>
})

/**
 * The CKA_ID hsmkey gives a key when none is asked for: the SHA-1 of its public key material (the RSA
 * modulus, or the EC or Edwards point without its DER wrapper), as OpenSC and NSS do.
 *
 * @since 0.1.0
 * @category utils
 */
export const defaultId = (jwk: PublicKey.PublicJwk): Uint8Array => {
  const material = jwk.kty === "RSA"
    ? Buffer.from(jwk.n, "base64url")
    : jwk.kty === "EC"
    ? Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, "base64url"), Buffer.from(jwk.y, "base64url")])
    : Buffer.from(jwk.x, "base64url")
  return new Uint8Array(Crypto.createHash("sha1").update(material).digest())
}

// The protections of every private key hsmkey makes: sensitive, never extractable, and one use only
// (SoftHSM2's defaults would also let a signing key decrypt and unwrap).
const privateProtections = (use: Use): Attributes => ({
  class: CKO.PRIVATE_KEY,
  token: true,
  private: true,
  sensitive: true,
  extractable: false,
  sign: use === "sig",
  decrypt: use === "enc",
  unwrap: false,
  derive: false
})

const publicUsage = (use: Use): Attributes => ({
  class: CKO.PUBLIC_KEY,
  token: true,
  private: false,
  verify: use === "sig",
  encrypt: use === "enc",
  wrap: false,
  derive: false
})

// Decided from the mechanism list before anything is created: a key the token can never use is refused.
const requireUse = (
  session: HsmSession,
  mechanisms: MechanismSupport.TokenMechanisms,
  operation: "generate" | "import",
  described: string,
  keyType: KeyType,
  size: number,
  use: Use
): Effect.Effect<void, MechanismUnsupported> => {
  const { usable, wanted } = MechanismSupport.usability(mechanisms, keyType, size, use)
  return usable ? Effect.void : Effect.fail(
    new MechanismUnsupported({
      operation,
      keyType: described,
      token: session.token.label,
      mechanisms: wanted.map(mechanismName)
    })
  )
}

const requireRsaForEnc = (use: Use, keyType: string) =>
  use === "enc" && !keyType.startsWith("RSA")
    ? Effect.fail(new UnsupportedKey({ detail: `only RSA keys decrypt JWEs, not ${keyType}` }))
    : Effect.void

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
 * Generates a key pair on the token, in a read/write session: token objects, the private key
 * sensitive, not extractable and sign only. A label or CKA_ID already on the token is `KeyExists`.
 * Key generation runs on the threadpool and never blocks the event loop.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = Effect.fn("HsmJwk.generate")(function*(
  session: HsmSession,
  options: CreateOptions & { readonly type: GenerateType }
) {
  yield* TokenObjects.requireRw(session, "HsmJwk.generate")
  if (!KeyTypes.isGenerateType(options.type)) {
    return yield* new UnsupportedKey({ detail: `cannot generate "${options.type}"` })
  }
  const spec = KeyTypes.specs[options.type]
  const use = options.use ?? "sig"
  yield* requireRsaForEnc(use, options.type)
  const label = yield* KeyReference.parseLabel(options.label)
  const id = options.id === undefined ? undefined : yield* KeyReference.parseId(options.id)
  const mechanisms = yield* TokenState.mechanisms(session)
  if (!MechanismSupport.generates(mechanisms, spec)) {
    return yield* new MechanismUnsupported({
      operation: "generate",
      keyType: options.type,
      token: session.token.label,
      mechanisms: [mechanismName(spec.generation)]
    })
  }
  yield* requireUse(session, mechanisms, "generate", options.type, spec.keyType, spec.size, use)
  yield* TokenObjects.ensureAbsent(session, label, id)
  const pkcs11 = session.pkcs11
  // Without an id, generate under a temporary one and set the one derived from the public key after.
  const initialId = id ?? new Uint8Array(Crypto.randomBytes(16))
  return yield* TokenObjects.creating(
    session,
    pkcs11.generateKeyPair(session.handle, { type: spec.generation }, {
      publicKey: { ...publicUsage(use), ...spec.publicKey, keyType: spec.ckk, label, id: initialId },
      privateKey: { ...privateProtections(use), keyType: spec.ckk, label, id: initialId }
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
})

/**
 * Private key material to import: a private JWK, PKCS#8 as PEM text or DER bytes, or a `KeyObject`.
 *
 * @since 0.1.0
 * @category models
 */
export type PrivateKeyInput = jose.JWK | string | Uint8Array | Crypto.KeyObject

/**
 * Imports a private key into the token, in a read/write session, with the same protections as a
 * generated one: sensitive, not extractable, sign only. Its public half becomes a public object.
 *
 * @since 0.1.0
 * @category constructors
 */
export const importPrivate = Effect.fn("HsmJwk.importPrivate")(function*(
  session: HsmSession,
  options: CreateOptions & { readonly key: PrivateKeyInput }
) {
  yield* TokenObjects.requireRw(session, "HsmJwk.importPrivate")
  const label = yield* KeyReference.parseLabel(options.label)
  const key = yield* PrivateKeys.parse(options.key)
  const use = options.use ?? "sig"
  yield* requireRsaForEnc(use, key.keyType)
  const described = key.keyType === "RSA" ? `RSA-${key.bits}` : key.keyType
  const size = key.keyType === "RSA" ? key.bits : KeyTypes.specs[key.keyType].size
  yield* requireUse(session, yield* TokenState.mechanisms(session), "import", described, key.keyType, size, use)
  const id = options.id === undefined ? defaultId(key.publicJwk) : yield* KeyReference.parseId(options.id)
  yield* TokenObjects.ensureAbsent(session, label, id)
  const pkcs11 = session.pkcs11
  return yield* TokenObjects.creating(
    session,
    pkcs11.createObject(session.handle, { ...privateProtections(use), ...key.privateKey, label, id }),
    (privateKey) => [privateKey],
    (privateKey) =>
      TokenObjects.creating(
        session,
        pkcs11.createObject(session.handle, { ...publicUsage(use), ...key.publicKey, label, id }),
        (publicKey) => [publicKey],
        () => fromHandle(session, privateKey, `label "${label}"`, { ...options, use })
      )
  )
})

/**
 * Checks that an algorithm is one hsmkey signs with and fits the key: a signing key pair for RS*, PS*,
 * ES* and EdDSA, a secret of at least the hash's size for HS*.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkAlgorithm = (
  key: SigningKey,
  alg: string = key.alg
): Effect.Effect<Algorithm, UnsupportedAlgorithm | AlgorithmMismatch> => {
  const described = key.keyType === "RSA"
    ? `RSA-${key.bits}`
    : key.keyType === "oct"
    ? `${key.bits}-bit secret`
    : key.keyType
  if (isHsmJwk(key) && key.use === "enc") {
    return Effect.fail(new AlgorithmMismatch({ alg, keyType: described, use: "enc" }))
  }
  if (!Algorithms.isAlgorithm(alg)) return Effect.fail(new UnsupportedAlgorithm({ alg }))
  if (!Algorithms.fits(alg, key.keyType, key.bits)) {
    return Effect.fail(new AlgorithmMismatch({ alg, keyType: described }))
  }
  return Effect.succeed(alg)
}

const keyManagementAlgorithms: ReadonlyArray<string> = ["RSA-OAEP", "RSA-OAEP-256"]

/**
 * Checks that a JWE key management algorithm is one hsmkey decrypts with and fits the key: an RSA
 * decryption key (`use: "enc"`) of at least 2048 bits, `RSA-OAEP` or `RSA-OAEP-256`. `RSA1_5` is refused
 * (RFC 8725 §3.2).
 *
 * @since 0.1.0
 * @category utils
 */
export const checkKeyManagement = (
  key: HsmJwk,
  alg: string
): Effect.Effect<KeyManagementAlgorithm, UnsupportedAlgorithm | AlgorithmMismatch> => {
  if (!keyManagementAlgorithms.includes(alg)) return Effect.fail(new UnsupportedAlgorithm({ alg }))
  if (key.keyType !== "RSA" || key.use !== "enc" || key.bits < Algorithms.MIN_RSA_BITS) {
    const described = key.keyType === "RSA" ? `RSA-${key.bits}` : key.keyType
    return Effect.fail(
      new AlgorithmMismatch({ alg, keyType: described, use: key.use })
    )
  }
  return Effect.succeed(alg as KeyManagementAlgorithm)
}

// An algorithm for what the key is for: a signature algorithm, or a key management one.
const checkForUse = (key: HsmJwk, alg: string) =>
  key.use === "enc" ? checkKeyManagement(key, alg) : checkAlgorithm(key, alg)

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
    checkForUse(key, alg),
    (checked) =>
      makeKey({
        kid: key.kid,
        alg: checked,
        use: key.use,
        keyType: key.keyType,
        bits: key.bits,
        publicJwk: { ...key.publicJwk, alg: checked },
        label: key.label,
        id: key.id,
        token: key.token,
        publicKey: key.publicKey
      })
  )

const SecretTypeId: unique symbol = Symbol.for("hsmkey/HsmSecretKey")

/**
 * An HMAC JWS algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export type HmacAlgorithm = Algorithms.HmacAlgorithm

/**
 * A secret (HMAC) key on a token. It has no public half: it never appears in a JWKS, and it serializes
 * as its `kty`, `kid`, `alg` and `use` only, never its value.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmSecretKey {
  readonly [SecretTypeId]: typeof SecretTypeId
  readonly kid: string
  readonly alg: HmacAlgorithm
  readonly keyType: "oct"
  /** The length of the secret in bits. */
  readonly bits: number
  readonly label: string | undefined
  readonly id: Uint8Array
  readonly token: TokenRef
}

/**
 * A key that signs JWS: a key pair, or a secret.
 *
 * @since 0.1.0
 * @category models
 */
export type SigningKey = HsmJwk | HsmSecretKey

const HsmSecretKeyProto = {
  [SecretTypeId]: SecretTypeId,
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

const makeSecret = (fields: Omit<HsmSecretKey, typeof SecretTypeId>): HsmSecretKey =>
  Object.assign(Object.create(HsmSecretKeyProto), fields)

/**
 * Whether a value is an `HsmSecretKey`.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isHsmSecretKey = (u: unknown): u is HsmSecretKey => Predicate.hasProperty(u, SecretTypeId)

const checkHmac = (alg: string): Effect.Effect<HmacAlgorithm, UnsupportedAlgorithm> =>
  Algorithms.isHmac(alg) ? Effect.succeed(alg) : Effect.fail(new UnsupportedAlgorithm({ alg }))

// Secret keys are for MACs only: sensitive, never extractable, sign and verify.
const secretProtections: Attributes = {
  class: CKO.SECRET_KEY,
  token: true,
  private: true,
  sensitive: true,
  extractable: false,
  sign: true,
  verify: true,
  encrypt: false,
  decrypt: false,
  wrap: false,
  unwrap: false,
  derive: false
}

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
 * An `HsmSecretKey` from its handle. Its length is `CKA_VALUE_LEN`, except where the token reads it as 0
 * or not at all (openCryptoki 3.8, for a secret made with C_CreateObject): then the length known from
 * creating it, or, for a secret loaded from the token, the algorithm's minimum.
 */
const secretFromHandle = (
  session: HsmSession,
  handle: ObjectHandle,
  alg: HmacAlgorithm,
  query: string,
  kidFrom: "id" | "label",
  knownBytes?: number
) =>
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
    yield* checkAlgorithm(key)
    return key
  })

const requireHmac = (session: HsmSession, alg: HmacAlgorithm, operation: "generate" | "import") =>
  Effect.flatMap(TokenState.mechanisms(session), (mechanisms): Effect.Effect<void, MechanismUnsupported> => {
    const missing = [
      ...(operation === "generate" && !MechanismSupport.generatesSecrets(mechanisms)
        ? [MechanismSupport.SECRET_GENERATION]
        : []),
      ...MechanismSupport.candidatesOf(alg).filter((type) => !mechanisms.list.has(type))
    ]
    return missing.length === 0 ? Effect.void : Effect.fail(
      new MechanismUnsupported({
        operation,
        keyType: `${alg} secret`,
        token: session.token.label,
        mechanisms: missing.map(mechanismName)
      })
    )
  })

/**
 * Generates an HMAC secret in the token, in a read/write session, as long as the hash (32, 48 or 64
 * bytes): sensitive, never extractable, sign and verify only. A failure or an interruption after the
 * secret was made destroys it again.
 *
 * @since 0.1.0
 * @category secrets
 */
export const generateSecret = Effect.fn("HsmJwk.generateSecret")(
  function*(session: HsmSession, options: SecretOptions) {
    yield* TokenObjects.requireRw(session, "HsmJwk.generateSecret")
    const alg = yield* checkHmac(options.alg)
    const label = yield* KeyReference.parseLabel(options.label)
    const id = options.id === undefined
      ? new Uint8Array(Crypto.randomBytes(16))
      : yield* KeyReference.parseId(options.id)
    yield* requireHmac(session, alg, "generate")
    yield* TokenObjects.ensureAbsent(session, label, id)
    const bytes = Algorithms.hmacBits[alg] / 8
    return yield* TokenObjects.creating(
      session,
      session.pkcs11.generateKey(session.handle, { type: MechanismSupport.SECRET_GENERATION }, {
        ...secretProtections,
        keyType: CKK.GENERIC_SECRET,
        valueLen: bytes,
        label,
        id
      }),
      (handle) => [handle],
      (handle) => secretFromHandle(session, handle, alg, `label "${label}"`, options.kid ?? "id", bytes)
    )
  }
)

/**
 * Imports an HMAC secret (bytes, or an `oct` JWK) into the token, in a read/write session, with the same
 * protections as a generated one. It must be at least as long as the hash. A failure or an interruption
 * after the secret was made destroys it again.
 *
 * @since 0.1.0
 * @category secrets
 */
export const importSecret = Effect.fn("HsmJwk.importSecret")(function*(
  session: HsmSession,
  options: SecretOptions & { readonly key: Uint8Array | jose.JWK }
) {
  yield* TokenObjects.requireRw(session, "HsmJwk.importSecret")
  const alg = yield* checkHmac(options.alg)
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
  const id = options.id === undefined ? new Uint8Array(Crypto.randomBytes(16)) : yield* KeyReference.parseId(options.id)
  yield* requireHmac(session, alg, "import")
  yield* TokenObjects.ensureAbsent(session, label, id)
  return yield* TokenObjects.creating(
    session,
    session.pkcs11.createObject(session.handle, {
      ...secretProtections,
      keyType: CKK.GENERIC_SECRET,
      value,
      label,
      id
    }),
    (handle) => [handle],
    (handle) => secretFromHandle(session, handle, alg, `label "${label}"`, options.kid ?? "id", value.length)
  )
})

/**
 * Loads an HMAC secret by label, CKA_ID, or both, for an algorithm.
 *
 * @since 0.1.0
 * @category secrets
 */
export const secretFromHsm = Effect.fn("HsmJwk.secretFromHsm")(function*(
  session: HsmSession,
  options: {
    readonly label?: string | undefined
    readonly id?: string | Uint8Array | undefined
    readonly alg: HmacAlgorithm
    readonly kid?: "id" | "label" | undefined
  }
) {
  const alg = yield* checkHmac(options.alg)
  const reference = yield* KeyReference.parse(options)
  const query = KeyReference.describe(reference)
  const handle = yield* TokenObjects.findOne(
    session,
    { ...TokenObjects.templateOf(reference), class: CKO.SECRET_KEY },
    query
  )
  return yield* secretFromHandle(session, handle, alg, query, options.kid ?? "id")
})

/**
 * The public key as SPKI PEM.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toPem = (key: HsmJwk): string => key.publicKey.export({ type: "spki", format: "pem" }).toString()

/**
 * The public key as a WebCrypto `CryptoKey` for an algorithm, through jose.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toCryptoKey = (
  key: HsmJwk,
  alg: Algorithm | KeyManagementAlgorithm = key.alg
): Effect.Effect<jose.CryptoKey | Uint8Array, AlgorithmMismatch | UnsupportedAlgorithm> =>
  Effect.flatMap(
    checkForUse(key, alg),
    (checked) => Effect.promise(() => jose.importJWK({ ...key.publicJwk, alg: checked }, checked))
  )
