import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK, CKO, mechanismName } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import {
  InvalidSignature,
  type KeyAmbiguous,
  KeyNotFound,
  MechanismUnsupported,
  type PinMismatch
} from "../HsmError.js"
import * as Algorithms from "./algorithms.js"
import * as Bytes from "./bytes.js"
import * as KeyReference from "./keyReference.js"
import * as MechanismSupport from "./mechanismSupport.js"
import type { SigningKey } from "./policy.js"
import type { Session } from "./session.js"
import * as TokenObjects from "./tokenObjects.js"
import * as TokenState from "./tokenState.js"

const ckkOf = (key: SigningKey): number | undefined =>
  key.keyType === "oct"
    ? undefined
    : key.keyType === "RSA"
    ? CKK.RSA
    : Curve.specs[key.keyType].family === "edwards"
    ? CKK.EC_EDWARDS
    : CKK.EC

/**
 * The template that finds the private key of an `HsmJwk` again: CKA_ID when it has one, else its label,
 * and the key type either way.
 */
const findTemplate = (key: SigningKey): Attributes => ({
  // A secret may be CKK_GENERIC_SECRET or CKK_SHA*_HMAC, depending on who made it: any secret will do.
  ...(key.keyType === "oct" ? { class: CKO.SECRET_KEY } : { class: CKO.PRIVATE_KEY, keyType: ckkOf(key) }),
  ...(key.id.length > 0 ? { id: key.id } : { label: key.label })
})

const queryOf = (key: SigningKey): string =>
  KeyReference.describe({ label: key.id.length > 0 ? undefined : key.label, id: key.id })

/** Where a key's proven handle is remembered (`TokenState`). */
export const cacheKey = (key: SigningKey): string => {
  let known = cacheKeys.get(key)
  if (known === undefined) {
    known = `${key.kid}\u0000${key.keyType}\u0000${KeyReference.hex(key.id)}\u0000${
      key.id.length > 0 ? "" : key.label ?? ""
    }`
    cacheKeys.set(key, known)
  }
  return known
}

// Keys are immutable: their cache key is computed once, not at every signature.
const cacheKeys = new WeakMap<SigningKey, string>()

/**
 * How far a handle's attributes prove it is the key's. `"proven"`: class, key type, reference and public
 * value all agree. `"unbound"`: all agree but the token shows no public value on the private object (EC and
 * Edwards keys), so what it signs must verify under the key before it counts. `"other"`: it is not the key.
 */
type Proof = "proven" | "unbound" | "other"

const proofAttributes = (key: SigningKey) =>
  key.keyType === "oct"
    ? ["class", "id", "label", "valueLen"] as const
    : key.keyType === "RSA"
    ? ["class", "keyType", "id", "label", "modulus", "publicExponent"] as const
    : ["class", "keyType", "id", "label", "ecParams"] as const

const prove = (session: Session, key: SigningKey, handle: ObjectHandle): Effect.Effect<Proof, Pkcs11Failure> =>
  Effect.map(session.pkcs11.getAttributes(session.handle, handle, proofAttributes(key)), (read): Proof => {
    const attributes = read as Attributes
    const named = key.id.length > 0 ? Bytes.sameBytes(attributes.id, key.id) : attributes.label === key.label
    if (!named) return "other"
    if (key.keyType === "oct") {
      // CKA_VALUE_LEN 0 (openCryptoki, for a created secret) or absent says nothing.
      const length = attributes.valueLen
      return attributes.class === CKO.SECRET_KEY && (length === undefined || length === 0 || length * 8 === key.bits)
        ? "proven"
        : "other"
    }
    if (attributes.class !== CKO.PRIVATE_KEY || attributes.keyType !== ckkOf(key)) return "other"
    const jwk = key.publicJwk
    if (jwk.kty === "RSA") {
      if (attributes.modulus === undefined) return "unbound"
      // CKA_PUBLIC_EXPONENT is optional on a private key: the modulus alone then binds it.
      const exponent = attributes.publicExponent === undefined ||
        Bytes.sameInteger(attributes.publicExponent, Buffer.from(jwk.e, "base64url"))
      return Bytes.sameInteger(attributes.modulus, Buffer.from(jwk.n, "base64url")) && exponent ? "proven" : "other"
    }
    const curve = attributes.ecParams === undefined ? undefined : Curve.fromEcParams(attributes.ecParams)
    return curve === key.keyType ? "unbound" : "other"
  })

const changed = (session: Session, key: SigningKey): Effect.Effect<never, KeyNotFound> =>
  Effect.fail(
    new KeyNotFound({
      query: queryOf(key),
      token: session.token.label,
      kind: key.keyType === "oct" ? "secret" : "private key",
      reason: "changed"
    })
  )

/** What finding a key's object again can fail with. */
export type LookupError = KeyNotFound | KeyAmbiguous | PinMismatch | Pkcs11Failure

/**
 * Runs `use` with the key's handle in the session, and returns its result only when that handle was the
 * key's when it ran.
 *
 * Tokens reuse handle numbers (openCryptoki gives a destroyed object's number to the next one it hands
 * out), so a handle is trusted only while it is proven: its attributes name the key (class, type, CKA_ID
 * or label, modulus or curve) and, where the private object shows no public value, a signature it made
 * verified under the key. A proof holds for one login epoch and one object generation of the library:
 * once objects were found, created or destroyed (or while `use` ran), the handle is proven again before
 * its result counts, by its attributes rather than a new search, so that keys used in turn do not search
 * for each other. A handle the token no longer knows, or that is no longer the key's, is found again.
 */
export const withKeyHandle = <A, E>(
  session: Session,
  key: SigningKey,
  use: (handle: ObjectHandle) => Effect.Effect<A, E>,
  /**
   * Checks a result against the key's public half, for keys whose handles prove `"unbound"`. Without one
   * (decryption, MAC verification: a wrong key only fails), the attributes are proof enough.
   */
  verifies?: (result: A) => boolean
): Effect.Effect<A, E | LookupError> => {
  const pkcs11 = session.pkcs11
  const slot = cacheKey(key)
  const bound = (proof: Proof, result: A): boolean =>
    proof === "proven" || (proof === "unbound" && (verifies === undefined || verifies(result)))

  /**
   * Uses `handle`, proving it first unless it was proven at the current generation (`provenAt`), and
   * remembers it. When it is not the key's, `otherwise` runs instead.
   */
  const using = (
    handle: ObjectHandle,
    provenAt: number | undefined,
    otherwise: Effect.Effect<A, E | LookupError>
  ): Effect.Effect<A, E | LookupError> =>
    Effect.gen(function*() {
      // Read once: the decision and the generation it rests on are one step, no other fiber between them.
      let generation = pkcs11.objectGeneration()
      const proof = provenAt === generation ? "proven" : yield* prove(session, key, handle)
      if (proof === "other") return yield* otherwise
      const result = yield* use(handle)
      if (!bound(proof, result)) return yield* otherwise
      // Handles may have moved since (while proving, while `use` ran): prove, after the fact, that it was
      // still the key's, until a proof is made with nothing moving during it.
      while (pkcs11.objectGeneration() !== generation) {
        generation = pkcs11.objectGeneration()
        if (!bound(yield* prove(session, key, handle), result)) return yield* otherwise
      }
      TokenState.rememberHandle(session, slot, { handle, generation })
      return result
    })

  const find = Effect.suspend(() =>
    TokenObjects.findOne(session, findTemplate(key), queryOf(key), key.keyType === "oct" ? "secret" : "private key")
  )

  // Private objects are hidden from a session that lost its login, and tokens such as openCryptoki answer a
  // handle of one with CKR_KEY_HANDLE_INVALID rather than CKR_USER_NOT_LOGGED_IN: a key not found is looked
  // for again once the login is restored, if it had to be.
  const findLoggedIn = Effect.suspend(() => {
    const epoch = session.epoch
    return find.pipe(
      Effect.catchTag(
        "KeyNotFound",
        (missing) => Effect.flatMap(session.refresh, () => session.epoch === epoch ? Effect.fail(missing) : find)
      )
    )
  })

  const resolve: Effect.Effect<A, E | LookupError> = Effect.suspend(() => {
    TokenState.forgetHandle(session, slot)
    return Effect.flatMap(findLoggedIn, (handle) => using(handle, undefined, changed(session, key)))
  })

  return Effect.suspend(() => {
    const known = TokenState.knownHandle(session, slot)
    if (known === undefined) return resolve
    return using(known.handle, known.generation, resolve).pipe(
      Effect.catchTag("ObjectHandleInvalid", () => resolve)
    )
  })
}

/**
 * The first way of computing `alg` that the token lists.
 */
const candidateFor = (session: Session, alg: Algorithms.Algorithm, operation: "sign" | "verify") =>
  Effect.flatMap(TokenState.mechanisms(session), (mechanisms) => {
    const candidate = MechanismSupport.signingCandidate(mechanisms, alg)
    return candidate !== undefined ? Effect.succeed(candidate) : Effect.fail(
      new MechanismUnsupported({
        operation,
        alg,
        token: session.token.label,
        mechanisms: MechanismSupport.candidatesOf(alg).map(mechanismName)
      })
    )
  })

/** The size of a JWS signature of `key` under `alg`, in bytes. */
export const expectedSize = (key: SigningKey, alg: Algorithms.Algorithm): number =>
  Algorithms.isHmac(alg)
    ? Algorithms.hmacBits[alg] / 8
    : key.keyType === "RSA" || key.keyType === "oct"
    ? Math.ceil(key.bits / 8)
    : Curve.specs[key.keyType].signatureSize

const hashOf: Partial<Record<Algorithms.Algorithm, string>> = {
  RS256: "sha256",
  RS384: "sha384",
  RS512: "sha512",
  PS256: "sha256",
  PS384: "sha384",
  PS512: "sha512",
  ES256: "sha256",
  ES384: "sha384",
  ES512: "sha512"
}

/**
 * Whether a JWS signature verifies under the key's public half, with node:crypto.
 */
const verifiesUnder =
  (key: SigningKey, alg: Algorithms.Algorithm, signingInput: Uint8Array) => (signature: Uint8Array): boolean => {
    if (key.keyType === "oct" || !("publicKey" in key)) return false
    try {
      if (alg === "EdDSA") return Crypto.verify(null, signingInput, key.publicKey, signature)
      const hash = hashOf[alg]!
      if (alg.startsWith("ES")) {
        return Crypto.verify(hash, signingInput, { key: key.publicKey, dsaEncoding: "ieee-p1363" }, signature)
      }
      if (alg.startsWith("PS")) {
        const options = { key: key.publicKey, padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: -2 }
        return Crypto.verify(hash, signingInput, options, signature)
      }
      return Crypto.verify(hash, signingInput, key.publicKey, signature)
    } catch {
      return false
    }
  }

/**
 * The token's answer as a JWS signature: ECDSA is r ‖ s in JWS (some tokens return DER, which converts);
 * `undefined` when it is not of the size the key and algorithm make.
 */
export const jwsSignature = (spec: Algorithms.Spec, raw: Uint8Array, expected: number): Uint8Array | undefined => {
  const normalized = spec.ecdsa ? Algorithms.rawEcdsa(raw, expected) : raw
  return normalized === undefined || normalized.length !== expected ? undefined : normalized
}

/**
 * Signs `signingInput` with the key inside the token, in a session of its token.
 */
export const sign = (
  session: Session,
  key: SigningKey,
  alg: Algorithms.Algorithm,
  signingInput: Uint8Array
): Effect.Effect<Uint8Array, MechanismUnsupported | InvalidSignature | LookupError> =>
  Effect.gen(function*() {
    const spec = Algorithms.specs[alg]
    const candidate = yield* candidateFor(session, alg, "sign")
    const input = candidate.prepare(signingInput)
    const expected = expectedSize(key, alg)
    const signature = yield* withKeyHandle(
      session,
      key,
      (handle) =>
        Effect.flatMap(session.pkcs11.sign(session.handle, candidate.mechanism, handle, input), (raw) => {
          const normalized = jwsSignature(spec, raw, expected)
          return normalized === undefined
            ? Effect.fail(new InvalidSignature({ alg, length: raw.length, expected }))
            : Effect.succeed(normalized)
        }),
      verifiesUnder(key, alg, signingInput)
    )
    return signature
  }).pipe(
    Effect.withSpan("HsmJwk.sign", { attributes: { "hsm.alg": alg, "hsm.kid": key.kid }, captureStackTrace: false })
  )

/**
 * Verifies a MAC inside the token (`C_Verify`): the comparison is the token's, in constant time.
 */
export const verify = (
  session: Session,
  key: SigningKey,
  alg: Algorithms.Algorithm,
  signingInput: Uint8Array,
  signature: Uint8Array
): Effect.Effect<boolean, MechanismUnsupported | LookupError> =>
  Effect.gen(function*() {
    const candidate = yield* candidateFor(session, alg, "verify")
    const input = candidate.prepare(signingInput)
    return yield* withKeyHandle(
      session,
      key,
      (handle) => session.pkcs11.verify(session.handle, candidate.mechanism, handle, input, signature)
    )
  }).pipe(
    Effect.withSpan("HsmJwk.verify", { attributes: { "hsm.alg": alg, "hsm.kid": key.kid }, captureStackTrace: false })
  )
