import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK, CKO, mechanismName } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type HsmError, InvalidOptions, InvalidSignature, MechanismUnsupported } from "../HsmError.js"
import type { SigningKey } from "../HsmJwk.js"
import type { HsmSession } from "../HsmSession.js"
import { SessionPool } from "../SessionPool.js"
import * as Algorithms from "./algorithms.js"
import * as KeyReference from "./keyReference.js"
import * as TokenObjects from "./tokenObjects.js"
import * as TokenState from "./tokenState.js"

/**
 * The template that finds the private key of an `HsmJwk` again: CKA_ID when it has one, else its label,
 * and the key type either way.
 */
const findTemplate = (key: SigningKey): Attributes => ({
  // A secret may be CKK_GENERIC_SECRET or CKK_SHA*_HMAC, depending on who made it: any secret will do.
  ...(key.keyType === "oct"
    ? { class: CKO.SECRET_KEY }
    : {
      class: CKO.PRIVATE_KEY,
      keyType: key.keyType === "RSA"
        ? CKK.RSA
        : key.keyType === "Ed25519" || key.keyType === "Ed448"
        ? CKK.EC_EDWARDS
        : CKK.EC
    }),
  ...(key.id.length > 0 ? { id: key.id } : { label: key.label })
})

const cacheKey = (key: SigningKey): string =>
  `${key.keyType}\u0000${KeyReference.hex(key.id)}\u0000${key.id.length > 0 ? "" : key.label ?? ""}`

const findKey = (session: HsmSession, key: SigningKey): Effect.Effect<ObjectHandle, HsmError> =>
  TokenObjects.findOne(
    session,
    findTemplate(key),
    KeyReference.describe({ label: key.id.length > 0 ? undefined : key.label, id: key.id })
  ).pipe(Effect.tap((handle) => TokenState.cacheHandle(session, cacheKey(key), handle)))

const sameToken = (session: HsmSession, key: SigningKey) =>
  session.token.serialNumber === key.token.serialNumber && session.token.moduleId === key.token.moduleId

/**
 * Runs `f` on the session given, or on one borrowed from the `SessionPool` in context; either must be on
 * the key's token.
 */
export const withKeySession = <A, E, R>(
  key: SigningKey,
  session: HsmSession | undefined,
  f: (session: HsmSession) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | HsmError, R | SessionPool> => {
  const checked = (s: HsmSession): Effect.Effect<A, E | HsmError, R> =>
    sameToken(s, key) ? f(s) : Effect.fail(
      new InvalidOptions({
        detail: `key ${key.kid} lives on token "${key.token.label}" (serial ${key.token.serialNumber}), ` +
          `not on "${s.token.label}" (serial ${s.token.serialNumber})`
      })
    )
  if (session !== undefined) return checked(session)
  return Effect.flatMap(SessionPool, (pool) => pool.withSession(checked))
}

/**
 * The first way of computing `alg` that the token lists.
 */
const candidateFor = (session: HsmSession, spec: Algorithms.Spec) =>
  Effect.flatMap(TokenState.mechanisms(session), (mechanisms) =>
    Option.match(
      Option.fromNullable(spec.candidates.find((candidate) => mechanisms.has(candidate.mechanism.type))),
      {
        onNone: () =>
          Effect.fail(
            new MechanismUnsupported({
              alg: spec.alg,
              token: session.token.label,
              mechanisms: spec.candidates.map((candidate) => mechanismName(candidate.mechanism.type))
            })
          ),
        onSome: Effect.succeed
      }
    ))

/**
 * Runs `f` with the key's handle in the session, cached for the login epoch; a cached handle the
 * token no longer knows is found again, once.
 */
export const withKeyHandle = <A>(
  session: HsmSession,
  key: SigningKey,
  f: (handle: ObjectHandle) => Effect.Effect<A, HsmError>
): Effect.Effect<A, HsmError> => {
  const cached = TokenState.cachedHandle(session, cacheKey(key))
  return cached === undefined
    ? Effect.flatMap(findKey(session, key), f)
    : f(cached).pipe(
      Effect.catchTag("ObjectHandleInvalid", () => {
        TokenState.forgetHandle(session, cacheKey(key))
        return Effect.flatMap(findKey(session, key), f)
      })
    )
}

const expectedSize = (key: SigningKey, alg: Algorithms.Algorithm): number =>
  Algorithms.isHmac(alg)
    ? Algorithms.hmacBits[alg] / 8
    : key.keyType === "RSA" || key.keyType === "oct"
    ? Math.ceil(key.bits / 8)
    : Curve.specs[key.keyType].signatureSize

/**
 * Signs `signingInput` with the key inside the token, in a session of its token.
 */
export const sign = (
  session: HsmSession,
  key: SigningKey,
  alg: Algorithms.Algorithm,
  signingInput: Uint8Array
): Effect.Effect<Uint8Array, HsmError> =>
  Effect.gen(function*() {
    const spec = Algorithms.specs[alg]
    const candidate = yield* candidateFor(session, spec)
    const input = candidate.prepare(signingInput)
    const signature = yield* withKeyHandle(
      session,
      key,
      (handle) => session.pkcs11.sign(session.handle, candidate.mechanism, handle, input)
    )
    const expected = expectedSize(key, alg)
    // ECDSA is r ‖ s in JWS; some tokens return DER, which converts.
    const normalized = spec.ecdsa ? Algorithms.rawEcdsa(signature, expected) : signature
    if (normalized === undefined || normalized.length !== expected) {
      return yield* new InvalidSignature({ alg, length: signature.length, expected })
    }
    return normalized
  }).pipe(
    Effect.withSpan("HsmJwk.sign", { attributes: { "hsm.alg": alg, "hsm.kid": key.kid }, captureStackTrace: false })
  )

/**
 * Verifies a MAC inside the token (`C_Verify`): the comparison is the token's, in constant time.
 */
export const verify = (
  session: HsmSession,
  key: SigningKey,
  alg: Algorithms.Algorithm,
  signingInput: Uint8Array,
  signature: Uint8Array
): Effect.Effect<boolean, HsmError> =>
  Effect.gen(function*() {
    const candidate = yield* candidateFor(session, Algorithms.specs[alg])
    const input = candidate.prepare(signingInput)
    return yield* withKeyHandle(
      session,
      key,
      (handle) => session.pkcs11.verify(session.handle, candidate.mechanism, handle, input, signature)
    )
  }).pipe(
    Effect.withSpan("HsmJwk.verify", { attributes: { "hsm.alg": alg, "hsm.kid": key.kid }, captureStackTrace: false })
  )
