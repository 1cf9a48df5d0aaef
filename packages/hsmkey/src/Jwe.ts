/**
 * JSON Web Encryption (RFC 7516) decrypted with RSA keys held in the token.
 *
 * The content encryption key is decrypted inside the token (`C_Decrypt` with `CKM_RSA_PKCS_OAEP` and
 * explicit parameters: SHA-1 and MGF1-SHA1 for `RSA-OAEP`, SHA-256 and MGF1-SHA256 for `RSA-OAEP-256`);
 * the content is decrypted with node:crypto, and its authentication tag is checked, in constant time,
 * before any plaintext is returned. `RSA1_5` is refused. Every failure of a JWE itself is the same
 * `DecryptionFailed`, whatever part was wrong: a wrong key decrypts to a random key and fails at the tag,
 * as a tampered ciphertext does.
 *
 * Encryption needs only the public key; jose does it.
 *
 * @since 0.1.0
 */
import { CKR } from "@hsmkey/pkcs11/Constants"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import type { KeyManagementAlgorithm } from "./Algorithm.js"
import {
  type AlgorithmMismatch,
  DecryptionFailed,
  InvalidHeader,
  InvalidOptions,
  MechanismUnsupported,
  UnsupportedAlgorithm
} from "./HsmError.js"
import * as HsmJwk from "./HsmJwk.js"
import * as Algorithms from "./internal/algorithms.js"
import * as Borrow from "./internal/borrow.js"
import * as Encoding from "./internal/encoding.js"
import * as Options from "./internal/options.js"
import * as Policy from "./internal/policy.js"
import type { Session } from "./internal/session.js"
import * as TokenSigner from "./internal/signer.js"
import * as TokenState from "./internal/tokenState.js"
import * as Tracing from "./internal/tracing.js"
import type { AcquireError, SessionPool } from "./SessionPool.js"

/**
 * The content encryption algorithms hsmkey decrypts.
 *
 * @since 0.1.0
 * @category models
 */
export type ContentEncryption = "A128GCM" | "A192GCM" | "A256GCM" | "A128CBC-HS256" | "A192CBC-HS384" | "A256CBC-HS512"

/**
 * A JWE header: a JSON object.
 *
 * @since 0.1.0
 * @category models
 */
export type Header = { readonly [name: string]: unknown }

/**
 * The flattened JWE JSON serialization.
 *
 * @since 0.1.0
 * @category models
 */
export interface FlattenedJwe {
  readonly protected?: string
  readonly unprotected?: Header
  readonly header?: Header
  readonly encrypted_key?: string
  readonly iv: string
  readonly ciphertext: string
  readonly tag: string
  readonly aad?: string
}

/**
 * The general JWE JSON serialization.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneralJwe {
  readonly protected?: string
  readonly unprotected?: Header
  readonly recipients: ReadonlyArray<{ readonly header?: Header; readonly encrypted_key?: string }>
  readonly iv: string
  readonly ciphertext: string
  readonly tag: string
  readonly aad?: string
}

/**
 * What a decrypted JWE holds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decrypted {
  readonly plaintext: Uint8Array
  /** The protected, shared unprotected and recipient headers together. */
  readonly header: Header
  readonly additionalAuthenticatedData?: Uint8Array | undefined
}

/**
 * Options of decrypting.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecryptOptions {
  /** Key management algorithms to accept (default both RSA-OAEP variants). */
  readonly algorithms?: ReadonlyArray<KeyManagementAlgorithm> | undefined
  /** Content encryption algorithms to accept (default all six). */
  readonly contentEncryptionAlgorithms?: ReadonlyArray<ContentEncryption> | undefined
}

/**
 * What decrypting can fail with. `DecryptionFailed` is every failure that depends on the JWE's bytes,
 * alike; the others say what the caller or the token must change: an algorithm not accepted or not
 * fitting the key (`UnsupportedAlgorithm`, `AlgorithmMismatch`), a header hsmkey does not process
 * (`InvalidHeader`), a token without the OAEP variant (`MechanismUnsupported`), the key gone from the token
 * (`KeyNotFound`, `KeyAmbiguous`), no session (`AcquireError`), options that are not lists of names, a key
 * that is no `HsmJwk` or a pool on another token (`InvalidOptions`), and the token's own failures that no
 * ciphertext causes (a lost session, login or token).
 *
 * @since 0.1.0
 * @category models
 */
export type DecryptError =
  | DecryptionFailed
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | InvalidHeader
  | MechanismUnsupported
  | TokenSigner.LookupError
  | AcquireError
  | InvalidOptions

interface Content {
  readonly keyBytes: number
  readonly ivBytes: number
  readonly tagBytes: number
  readonly cipher: string
  readonly mac?: "sha256" | "sha384" | "sha512"
}

const contents: Record<ContentEncryption, Content> = {
  "A128GCM": { keyBytes: 16, ivBytes: 12, tagBytes: 16, cipher: "aes-128-gcm" },
  "A192GCM": { keyBytes: 24, ivBytes: 12, tagBytes: 16, cipher: "aes-192-gcm" },
  "A256GCM": { keyBytes: 32, ivBytes: 12, tagBytes: 16, cipher: "aes-256-gcm" },
  "A128CBC-HS256": { keyBytes: 32, ivBytes: 16, tagBytes: 16, cipher: "aes-128-cbc", mac: "sha256" },
  "A192CBC-HS384": { keyBytes: 48, ivBytes: 16, tagBytes: 24, cipher: "aes-192-cbc", mac: "sha384" },
  "A256CBC-HS512": { keyBytes: 64, ivBytes: 16, tagBytes: 32, cipher: "aes-256-cbc", mac: "sha512" }
}

const failed = new DecryptionFailed()

const isContentEncryption = (enc: string): enc is ContentEncryption => Object.hasOwn(contents, enc)

// Options a JavaScript caller can hand over beyond their type: refused, never read as a default.
const keyProblem = (key: unknown): InvalidOptions | undefined => Options.keyProblem(key, HsmJwk.isHsmJwk, "an HsmJwk")

const decryptOptions = {
  algorithms: Options.optional(Encoding.isStringArray, "an array of key management algorithm names"),
  contentEncryptionAlgorithms: Options.optional(Encoding.isStringArray, "an array of content encryption names")
}

const bytes = (text: unknown): Uint8Array => {
  const decoded = Encoding.decodeBase64url(text)
  if (decoded === undefined) throw failed
  return decoded
}

const header = (text: unknown): Header => {
  if (text === undefined) return {}
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes(text)).toString("utf8"))
    if (Predicate.isRecord(value)) return value
  } catch {
    // Not JSON: the same failure as every other.
  }
  throw failed
}

const objectOrEmpty = (value: unknown): Header => {
  if (value === undefined) return {}
  if (Predicate.isRecord(value)) return value
  throw failed
}

interface Parsed {
  readonly protectedText: string
  readonly shared: Header
  readonly recipients: ReadonlyArray<{ readonly header: Header; readonly encryptedKey: Uint8Array }>
  readonly iv: Uint8Array
  readonly ciphertext: Uint8Array
  readonly tag: Uint8Array
  readonly aadText: string | undefined
}

const parse = (jwe: string | FlattenedJwe | GeneralJwe): Effect.Effect<Parsed, DecryptionFailed> =>
  Effect.try({
    try: (): Parsed => {
      if (typeof jwe === "string") {
        const parts = jwe.split(".")
        if (parts.length !== 5) throw failed
        const [protectedText, encryptedKey, iv, ciphertext, tag] = parts
        return {
          protectedText,
          shared: header(protectedText),
          recipients: [{ header: {}, encryptedKey: bytes(encryptedKey) }],
          iv: bytes(iv),
          ciphertext: bytes(ciphertext),
          tag: bytes(tag),
          aadText: undefined
        }
      }
      if (!Predicate.isRecord(jwe)) throw failed
      const protectedText = jwe.protected ?? ""
      const protectedHeader = header(jwe.protected)
      const unprotectedHeader = objectOrEmpty(jwe.unprotected)
      if (Object.keys(protectedHeader).some((name) => Object.hasOwn(unprotectedHeader, name))) throw failed
      const shared = { ...protectedHeader, ...unprotectedHeader }
      const entries: ReadonlyArray<unknown> = Array.isArray(jwe.recipients)
        ? jwe.recipients
        : [{ header: (jwe as FlattenedJwe).header, encrypted_key: (jwe as FlattenedJwe).encrypted_key }]
      const recipients = entries.map((entry) => {
        if (!Predicate.isRecord(entry)) throw failed
        const own = objectOrEmpty(entry.header)
        if (Object.keys(own).some((name) => Object.hasOwn(shared, name))) throw failed
        return { header: own, encryptedKey: bytes(entry.encrypted_key ?? "") }
      })
      if (jwe.aad !== undefined) bytes(jwe.aad)
      return {
        protectedText,
        shared,
        recipients,
        iv: bytes(jwe.iv),
        ciphertext: bytes(jwe.ciphertext),
        tag: bytes(jwe.tag),
        aadText: jwe.aad
      }
    },
    catch: () => failed
  })

/**
 * Decrypts the content with a CEK, checking the tag before any plaintext leaves: GCM's own, or for
 * AES-CBC-HMAC-SHA2 the HMAC over AAD ‖ IV ‖ ciphertext ‖ AL compared in constant time before the
 * ciphertext is even decrypted (RFC 7518 §5.2.2.2).
 */
const decryptContent = (
  content: Content,
  cek: Uint8Array,
  parsed: Parsed,
  aad: Uint8Array
): Uint8Array => {
  if (parsed.iv.length !== content.ivBytes || parsed.tag.length !== content.tagBytes) throw failed
  try {
    if (content.mac === undefined) {
      const decipher = Crypto.createDecipheriv(content.cipher as Crypto.CipherGCMTypes, cek, parsed.iv, {
        authTagLength: content.tagBytes
      })
      decipher.setAAD(aad)
      decipher.setAuthTag(parsed.tag)
      const head = decipher.update(parsed.ciphertext)
      return new Uint8Array(Buffer.concat([head, decipher.final()]))
    }
    const half = content.keyBytes / 2
    const macKey = cek.subarray(0, half)
    const encKey = cek.subarray(half)
    const al = Buffer.alloc(8)
    al.writeBigUInt64BE(BigInt(aad.length) * 8n)
    const expected = Crypto.createHmac(content.mac, macKey)
      .update(aad).update(parsed.iv).update(parsed.ciphertext).update(al)
      .digest()
      .subarray(0, content.tagBytes)
    if (!Crypto.timingSafeEqual(expected, parsed.tag)) throw failed
    const decipher = Crypto.createDecipheriv(content.cipher, encKey, parsed.iv)
    return new Uint8Array(Buffer.concat([decipher.update(parsed.ciphertext), decipher.final()]))
  } catch {
    throw failed
  }
}

/**
 * Decrypts a compact, flattened or general JWE with an RSA decryption key of the token (`use: "enc"`).
 * A general JWE decrypts when one of its recipients' keys does.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwe, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "RSA-2048", label: "inbox", use: "enc" })
 *   // Anyone encrypts to the public half; only the token decrypts.
 *   const jwe = yield* Jwe.encrypt("secret message", key, { enc: "A256GCM" })
 *   const { plaintext } = yield* Jwe.decrypt(jwe, key)
 *   assert.strictEqual(new TextDecoder().decode(plaintext), "secret message")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category decryption
 */
export const decrypt = (
  jwe: string | FlattenedJwe | GeneralJwe,
  key: HsmJwk.HsmJwk,
  options: DecryptOptions = {}
): Effect.Effect<Decrypted, DecryptError, SessionPool> =>
  Effect.gen(function*() {
    yield* Options.refuse(keyProblem(key) ?? Options.problem("decryption options", options, decryptOptions))
    const parsed = yield* parse(jwe)
    const accepted = options.algorithms ?? ["RSA-OAEP", "RSA-OAEP-256"]
    const acceptedContent = options.contentEncryptionAlgorithms ?? Object.keys(contents) as Array<ContentEncryption>
    const aad = new TextEncoder().encode(
      parsed.aadText === undefined ? parsed.protectedText : `${parsed.protectedText}.${parsed.aadText}`
    )
    return yield* Borrow.inKeySession(key, { rw: false }, (session) =>
      Effect.gen(function*() {
        // A general JWE may be for several parties: try each recipient whose algorithm this key can
        // decrypt, those naming its kid first, and fail alike when none of them decrypts.
        const candidates = parsed.recipients
          .map((recipient) => ({ recipient, joint: { ...parsed.shared, ...recipient.header } }))
          .flatMap(({ joint, recipient }) =>
            typeof joint.alg === "string" && (accepted as ReadonlyArray<string>).includes(joint.alg)
              ? [{ recipient, joint, alg: joint.alg }]
              : []
          )
          .sort((a, b) => Number(b.joint.kid === key.kid) - Number(a.joint.kid === key.kid))
        if (candidates.length === 0) {
          const alg = Options.nameOf({ ...parsed.shared, ...parsed.recipients[0]?.header }.alg)
          return yield* new UnsupportedAlgorithm({
            alg: alg === "RSA1_5" ? "RSA1_5 (refused: RSAES-PKCS1-v1_5 invites padding oracles)" : alg
          })
        }
        // A recipient the token cannot decrypt for (SoftHSM2 and RSA-OAEP-256) gives way to the next one.
        let unsupported: MechanismUnsupported | undefined
        let attempted = false
        for (const { alg, joint, recipient } of candidates) {
          if (Object.hasOwn(joint, "crit")) {
            return yield* new InvalidHeader({ detail: "\"crit\" extensions are not supported" })
          }
          if (Object.hasOwn(joint, "zip")) {
            return yield* new InvalidHeader({ detail: "compressed JWEs (\"zip\") are not supported" })
          }
          const keyManagement = yield* Policy.checkKeyManagement(key, alg)
          const enc = joint.enc
          if (
            typeof enc !== "string" || !(acceptedContent as ReadonlyArray<string>).includes(enc) ||
            !isContentEncryption(enc)
          ) {
            return yield* new UnsupportedAlgorithm({ alg: Options.nameOf(enc) })
          }
          const content = contents[enc]
          const unwrapped = yield* unwrap(session, key, keyManagement, recipient.encryptedKey, content.keyBytes).pipe(
            Effect.map(Option.some),
            Effect.catchTag("MechanismUnsupported", (error) => {
              unsupported ??= error
              return Effect.succeedNone
            })
          )
          if (Option.isNone(unwrapped)) continue
          attempted = true
          const cek = unwrapped.value
          const plaintext = yield* Effect.option(Effect.try(() => decryptContent(content, cek, parsed, aad)))
          if (Option.isNone(plaintext)) continue
          return {
            plaintext: plaintext.value,
            header: joint,
            ...(parsed.aadText === undefined ? {} : { additionalAuthenticatedData: bytes(parsed.aadText) })
          } satisfies Decrypted
        }
        return yield* (attempted || unsupported === undefined ? Effect.fail(failed) : Effect.fail(unsupported))
      }))
  }).pipe(Effect.withSpan("Jwe.decrypt", Tracing.onKey(key)))

// Failures of C_Decrypt that do not depend on the ciphertext: the session, the token, its login or the
// library itself is gone.
const keepsItsCause = (error: TokenSigner.LookupError): boolean =>
  error._tag === "TokenNotPresent" ||
  (error._tag === "SessionFailed" && (error.reason === "closed" || error.reason === "not-logged-in")) ||
  (error._tag === "Pkcs11Error" && error.code === CKR.CRYPTOKI_NOT_INITIALIZED)

// C_DecryptInit refusing the OAEP parameters: the token cannot do this variant (SoftHSM2 2.6 answers
// SHA-256 parameters with CKR_ARGUMENTS_BAD). It depends on the header's alg, never on the ciphertext.
const refusesParameters = (error: TokenSigner.LookupError): boolean =>
  (error._tag === "Pkcs11Error" && error.code === CKR.ARGUMENTS_BAD) ||
  (error._tag === "MechanismInvalid")

const methodOf = (error: TokenSigner.LookupError): string | undefined => "method" in error ? error.method : undefined

const oaepUnsupported = (session: Session, alg: KeyManagementAlgorithm): MechanismUnsupported =>
  new MechanismUnsupported({
    operation: "decrypt",
    alg,
    token: session.token.label,
    mechanisms: [`CKM_RSA_PKCS_OAEP with ${alg === "RSA-OAEP" ? "SHA-1" : "SHA-256"} parameters`]
  })

/**
 * The CEK, decrypted inside the token. Whatever the token answers about the ciphertext itself (another
 * key's block, a tampered one, a CEK of the wrong size) yields a random CEK instead: the JWE then fails at
 * its tag, as every other tampering does, so that no answer tells an attacker which part was wrong (an OAEP
 * decryption oracle). Tokens differ in that answer: CKR_ENCRYPTED_DATA_INVALID by the spec,
 * CKR_GENERAL_ERROR from SoftHSM2, CKR_FUNCTION_FAILED from openCryptoki. Only a lost session, a removed
 * token or a lost login, which no ciphertext causes, keep their own error.
 */
const unwrap = (
  session: Session,
  key: HsmJwk.HsmJwk,
  alg: KeyManagementAlgorithm,
  encryptedKey: Uint8Array,
  size: number
): Effect.Effect<Uint8Array, MechanismUnsupported | TokenSigner.LookupError> =>
  Effect.gen(function*() {
    const mechanisms = yield* TokenState.mechanisms(session)
    if (!mechanisms.oaep.has(alg)) return yield* oaepUnsupported(session, alg)
    const random = () => new Uint8Array(Crypto.randomBytes(size))
    // An RSA ciphertext is exactly as long as the modulus; anything else never reaches the token.
    if (encryptedKey.length !== Math.ceil(key.bits / 8)) return random()
    const cek = yield* TokenSigner.withKeyHandle(
      session,
      key,
      (handle) => session.pkcs11.decrypt(session.handle, Algorithms.oaep[alg], handle, encryptedKey)
    ).pipe(
      Effect.catchIf(
        (error) => methodOf(error) === "C_Decrypt" && !keepsItsCause(error),
        () => Effect.succeed(random())
      ),
      Effect.catchIf(
        (error) => methodOf(error) === "C_DecryptInit" && refusesParameters(error),
        () => Effect.fail(oaepUnsupported(session, alg))
      )
    )
    return cek.length === size ? cek : random()
  })

/**
 * Options of encrypting.
 *
 * @since 0.1.0
 * @category models
 */
export interface EncryptOptions {
  /** Default: the key's algorithm. */
  readonly alg?: KeyManagementAlgorithm | undefined
  readonly enc: ContentEncryption
  readonly protectedHeader?: Header | undefined
}

const encryptOptions = {
  alg: Options.optional(Predicate.isString, "an algorithm name"),
  enc: Options.required(Predicate.isString, "a content encryption name")
}

// What a JavaScript caller can hand over beyond the types: refused before jose reads it, or spreads a
// string into a header.
const encryptProblem = (plaintext: unknown, options: unknown): InvalidOptions | InvalidHeader | undefined =>
  typeof plaintext !== "string" && !(plaintext instanceof Uint8Array)
    ? new InvalidOptions({ detail: `the plaintext must be a string or a Uint8Array, not ${Options.kindOf(plaintext)}` })
    : Options.problem("encryption options", options, encryptOptions) ??
      Encoding.headerProblem("protectedHeader", (options as EncryptOptions).protectedHeader, "jwe")

/**
 * Encrypts a plaintext to the public half of a decryption key, into a compact JWE (jose does it; no
 * token involved). The protected header carries `alg`, `enc` and the key's `kid`. A plaintext that is
 * not text or bytes and options whose `alg` or `enc` is not a name are `InvalidOptions`; a protected header
 * that is not a JSON object with registered parameters of their types is `InvalidHeader`.
 *
 * @since 0.1.0
 * @category encryption
 */
export const encrypt = (
  plaintext: string | Uint8Array,
  key: HsmJwk.HsmJwk,
  options: EncryptOptions
): Effect.Effect<string, UnsupportedAlgorithm | AlgorithmMismatch | InvalidOptions | InvalidHeader> =>
  Effect.gen(function*() {
    yield* Options.refuse(keyProblem(key) ?? encryptProblem(plaintext, options))
    const alg = yield* Policy.checkKeyManagement(key, options.alg ?? key.alg)
    if (!isContentEncryption(options.enc)) return yield* new UnsupportedAlgorithm({ alg: Options.nameOf(options.enc) })
    const data = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext
    return yield* Effect.tryPromise({
      try: () =>
        new jose.CompactEncrypt(data)
          .setProtectedHeader({ kid: key.kid, ...options.protectedHeader, alg, enc: options.enc })
          .encrypt(key.publicKey),
      catch: (error) => new InvalidOptions({ detail: error instanceof Error ? error.message : String(error) })
    })
  }).pipe(Effect.withSpan("Jwe.encrypt", Tracing.onKey(key)))
