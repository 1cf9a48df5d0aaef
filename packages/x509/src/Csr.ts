/**
 * PKCS#10 certificate signing requests (RFC 2986) signed inside the token: the private key never leaves
 * it. A request names a subject (RFC 4514 text or a structured form), may ask for a subjectAltName
 * extension (DNS names, IP addresses, email addresses, URIs), and carries the key's public key.
 *
 * The signature algorithm is the key's own `alg` unless told otherwise: RS256/384/512 as
 * sha*WithRSAEncryption, PS256/384/512 as RSASSA-PSS (MGF1 with the same hash, a salt as long as the
 * hash), ES256/384/512 as ecdsa-with-SHA* and EdDSA as Ed25519 or Ed448. The token signs as it signs a
 * JWS (`HsmJwk.sign`), in the session in context when there is one, else in one borrowed from the
 * `SessionPool`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Algorithm from "hsmkey/Algorithm"
import { AlgorithmMismatch, InvalidOptions } from "hsmkey/HsmError"
import * as HsmJwk from "hsmkey/HsmJwk"
import type { SessionPool } from "hsmkey/SessionPool"
import type * as DistinguishedName from "./DistinguishedName.js"
import * as AltNames from "./internal/altNames.js"
import * as Der from "./internal/der.js"
import * as Plain from "./internal/plain.js"
import * as Request from "./internal/request.js"
import * as Rfc4514 from "./internal/rfc4514.js"
import * as SignatureAlgorithms from "./internal/signatureAlgorithms.js"
import { InvalidSubject, type InvalidSubjectAltName } from "./X509Error.js"

/**
 * A subjectAltName entry, as a request carries it.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubjectAltName {
  readonly type: "dns" | "ip" | "email" | "uri"
  readonly value: string
}

/**
 * A subjectAltName entry as a caller gives it: `{ type, value }`, or text with OpenSSL's prefix, in any
 * case: `"DNS:api.example.com"`, `"IP:10.0.0.1"`, `"IP:2001:db8::1"`, `"email:ops@example.com"`,
 * `"URI:https://example.com/"`.
 *
 * @since 0.1.0
 * @category models
 */
export type SubjectAltNameInput = string | SubjectAltName

/**
 * What a request is made of.
 *
 * @since 0.1.0
 * @category models
 */
export interface CreateOptions {
  /** A signing key pair on the token; its public key is the request's. */
  readonly key: HsmJwk.HsmJwk
  /** The subject; it may be empty (`""`) when `subjectAltNames` are given, which makes that extension critical. */
  readonly subject: DistinguishedName.Input
  /** The signature algorithm; by default the key's own. */
  readonly alg?: string | undefined
  /**
   * DNS names, IP addresses, email addresses and URIs, requested as a subjectAltName extension. DNS names
   * are LDH host names (IDNs as A-labels), a leftmost `*` label allowed; emails and URIs are ASCII.
   */
  readonly subjectAltNames?: ReadonlyArray<SubjectAltNameInput> | undefined
}

/**
 * A signed certificate signing request.
 *
 * @since 0.1.0
 * @category models
 */
export interface Csr {
  /** The DER encoding of the CertificationRequest. */
  readonly der: Uint8Array
  /** PEM, `-----BEGIN CERTIFICATE REQUEST-----` (RFC 7468 §7), ending in a newline. */
  readonly pem: string
  /** The subject as RFC 4514 text, most specific RDN first; `""` when empty. */
  readonly subject: string
  /** The subject as parsed, the members of a multi-valued RDN in the order DER sorts them. */
  readonly subjectName: DistinguishedName.DistinguishedName
  readonly subjectAltNames: ReadonlyArray<SubjectAltName>
  /** The algorithm the token signed with. */
  readonly alg: Algorithm.Algorithm
  /** The `kid` of the key that signed. */
  readonly kid: string
}

/**
 * What making a request can fail with: a subject or a subjectAltName that cannot be requested (before the
 * token is asked anything), options that are not what `create` takes (`InvalidOptions`), an algorithm that
 * does not fit the key (`AlgorithmMismatch`, also for a decryption key) or that hsmkey does not sign with,
 * and what signing in the token can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type CsrError = InvalidSubject | InvalidSubjectAltName | HsmJwk.SignError

const optionNames = ["key", "subject", "alg", "subjectAltNames"]

const kindOf = (u: unknown): string =>
  u === null || u === undefined ? String(u) : Array.isArray(u) ? "an array" : `a ${typeof u}`

interface Read {
  readonly key: HsmJwk.HsmJwk
  readonly subject: unknown
  readonly alg: string | undefined
  readonly subjectAltNames: ReadonlyArray<unknown>
}

const invalid = (detail: string) => new InvalidOptions({ detail: `CSR options: ${detail}` })

/**
 * The options, read once: a JavaScript caller can hand over anything, and what is not what `create` takes
 * is refused, never coerced. The subject and subjectAltNames are copied as plain data, so that a getter or
 * a proxy that throws is `InvalidOptions` here rather than a defect in a parser.
 */
const readOptions = (options: unknown): Read | InvalidOptions => {
  try {
    if (!Predicate.isRecord(options)) return invalid(`expected an object, not ${kindOf(options)}`)
    const unknown = Object.keys(options).filter((name) => !optionNames.includes(name))
    if (unknown.length > 0) {
      return invalid(
        `unknown ${unknown.map((name) => JSON.stringify(name.slice(0, 64))).join(", ")}; ` +
          `known: ${optionNames.join(", ")}`
      )
    }
    const { alg, key, subject, subjectAltNames } = options
    if (!HsmJwk.isHsmJwk(key)) return invalid(`key must be an HsmJwk, not ${kindOf(key)}`)
    if (!Predicate.isString(subject) && !Predicate.isObject(subject)) {
      return invalid(`subject must be RFC 4514 text, an array or a record, not ${kindOf(subject)}`)
    }
    if (alg !== undefined && !Predicate.isString(alg)) {
      return invalid(`alg must be an algorithm name, not ${kindOf(alg)}`)
    }
    if (subjectAltNames !== undefined && !Array.isArray(subjectAltNames)) {
      return invalid(`subjectAltNames must be an array, not ${kindOf(subjectAltNames)}`)
    }
    const copiedSubject = Plain.copy(subject, 3)
    const copiedAltNames = subjectAltNames === undefined ? [] : Plain.copy(subjectAltNames, 2)
    if (copiedSubject instanceof Plain.TooLarge || copiedAltNames instanceof Plain.TooLarge) {
      return invalid(`subject and subjectAltNames hold at most ${Plain.MAX_ENTRIES} entries each`)
    }
    return { key, subject: copiedSubject, alg, subjectAltNames: copiedAltNames as ReadonlyArray<unknown> }
  } catch (error) {
    // Its kind only: a caller's error message may hold anything.
    return invalid(`reading them threw ${error instanceof Error ? `a ${error.name}` : kindOf(error)}`)
  }
}

const isSignatureAlgorithm = (alg: Algorithm.Algorithm): alg is SignatureAlgorithms.SignatureAlgorithm =>
  !alg.startsWith("HS")

/**
 * Makes a certificate signing request signed by the key inside the token. The subject and subjectAltNames
 * are checked, and the algorithm against the key, before the token is asked anything; the token then signs
 * the CertificationRequestInfo once. The request verifies with `openssl req -verify`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Csr } from "@hsmkey/x509"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "api-tls" })
 *   const csr = yield* Csr.create({
 *     key,
 *     subject: { CN: "api.example.com", O: "Example, Inc.", C: "DE" },
 *     subjectAltNames: ["DNS:api.example.com", "IP:192.0.2.7"]
 *   })
 *   assert.strictEqual(csr.subject, "CN=api.example.com,O=Example\\, Inc.,C=DE")
 *   assert.strictEqual(csr.alg, "ES256")
 *   assert.match(csr.pem, /^-----BEGIN CERTIFICATE REQUEST-----\n/)
 *   const bad = yield* Effect.flip(Csr.create({ key, subject: "CN=api.example.com,C=Germany" }))
 *   assert.strictEqual(bad._tag, "InvalidSubject")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const create = (options: CreateOptions): Effect.Effect<Csr, CsrError, SessionPool> =>
  Effect.gen(function*() {
    const read = readOptions(options)
    if (read instanceof InvalidOptions) return yield* read
    const { key } = read
    const checked = yield* Algorithm.check(key, read.alg ?? key.alg)
    if (!isSignatureAlgorithm(checked)) {
      // HMAC fits no key pair, so Algorithm.check has refused it already; this keeps the types honest.
      const keyType = key.keyType === "RSA" ? `RSA-${key.bits}` : key.keyType
      return yield* new AlgorithmMismatch({ alg: checked, keyType, use: key.use })
    }
    const alg = checked
    yield* Effect.annotateCurrentSpan({ "x509.alg": alg, "hsm.kid": key.kid })
    const subjectName = Request.canonical(yield* Rfc4514.parse(read.subject))
    const subjectAltNames = yield* AltNames.parse(read.subjectAltNames)
    if (subjectName.length === 0 && subjectAltNames.length === 0) {
      return yield* new InvalidSubject({ detail: "the subject is empty and no subjectAltNames are given" })
    }
    const info = Request.info(subjectName, key.publicKey, subjectAltNames)
    const signature = yield* HsmJwk.sign(key, info, { alg })
    const der = Request.request(
      info,
      SignatureAlgorithms.identifier(alg, key.keyType),
      SignatureAlgorithms.x509Signature(alg, signature)
    )
    return {
      der,
      pem: Der.pem("CERTIFICATE REQUEST", der),
      subject: Rfc4514.format(subjectName),
      subjectName,
      subjectAltNames,
      alg,
      kid: key.kid
    }
  }).pipe(Effect.withSpan("Csr.create", { captureStackTrace: false }))
