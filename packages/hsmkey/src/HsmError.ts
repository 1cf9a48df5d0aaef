/**
 * Every typed failure of hsmkey, in one place: the Cryptoki failures of `@hsmkey/pkcs11` and those of
 * the pool. Match them with `Effect.catchTag`; the tags are stable API. No message holds a PIN.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, SessionPool } from "hsmkey"
 *
 * const Hsm = SessionPool.layer({ tokenLabel: "missing", userPin: Redacted.make("1234") }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo" }] }))
 * )
 *
 * const program = HsmJwk.list().pipe(
 *   Effect.provide(Hsm),
 *   Effect.catchTag("TokenNotFound", (error) => Effect.succeed(`present: ${error.available.join(", ")}`))
 * )
 *
 * Effect.runPromise(program).then((result) => assert.strictEqual(result, "present: demo"))
 * ```
 *
 * @since 0.1.0
 */
import type { ModuleLoadFailed, Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Schema from "effect/Schema"

/**
 * The Cryptoki failures, re-exported so that one module names every error.
 *
 * @since 0.1.0
 */
export {
  /**
   * The token does not support the mechanism, or not with these parameters. Re-exported from
   * `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  MechanismInvalid,
  /**
   * The PKCS#11 library could not be loaded or initialized. Re-exported from `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  ModuleLoadFailed,
  /**
   * An object or key handle is no longer valid: find the object again. Re-exported from `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  ObjectHandleInvalid,
  /**
   * The PIN has expired or must be changed before the token allows user functions. Re-exported from
   * `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  PinExpired,
  /**
   * The token rejected the PIN: do not try the same PIN again. Re-exported from `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  PinIncorrect,
  /**
   * The token refused a new PIN. Re-exported from `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  PinInvalid,
  /**
   * The PIN is locked, or one more wrong attempt would lock it. Re-exported from `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  PinLocked,
  /**
   * The token's user PIN was never set. Re-exported from `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  PinNotInitialized,
  /**
   * A Cryptoki call failed with a return value that has no more specific class. Re-exported from
   * `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  Pkcs11Error,
  /**
   * The session cannot serve the call: closed, over the token's limit, read-only, or not logged in. Re-exported from
   * `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  SessionFailed,
  /**
   * The token is gone: removed, not recognized, or its slot id is no longer valid. Re-exported from
   * `@hsmkey/pkcs11/Pkcs11Error`.
   *
   * @since 0.1.0
   * @category errors
   */
  TokenNotPresent
} from "@hsmkey/pkcs11/Pkcs11Error"

/**
 * No token matches the label or serial number asked for. `available` lists the labels present.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenNotFound extends Schema.TaggedError<TokenNotFound>("hsmkey/TokenNotFound")("TokenNotFound", {
  /** What was asked: `label "x"` or `serial "y"`. */
  selector: Schema.String,
  available: Schema.Array(Schema.String),
  /** What to check, when the library is known to hide tokens behind its configuration (SoftHSM2). */
  hint: Schema.optional(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    const present = this.available.length === 0
      ? "no initialized token"
      : this.available.map((l) => `"${l}"`).join(", ")
    return `No token with ${this.selector}; present: ${present}${this.hint === undefined ? "" : `; ${this.hint}`}`
  }
}

/**
 * Several tokens carry the label asked for: choose one by serial number.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenAmbiguous extends Schema.TaggedError<TokenAmbiguous>("hsmkey/TokenAmbiguous")("TokenAmbiguous", {
  label: Schema.String,
  serialNumbers: Schema.Array(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.serialNumbers.length} tokens are labelled "${this.label}" (serials ${
      this.serialNumbers.join(", ")
    }); select one with tokenSerial`
  }
}

/**
 * No session became free within the pool's acquire timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolTimeout extends Schema.TaggedError<PoolTimeout>("hsmkey/PoolTimeout")("PoolTimeout", {
  token: Schema.String,
  timeoutMillis: Schema.Number
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `No session of token "${this.token}" became free within ${this.timeoutMillis} ms; ` +
      "raise maxSessions or acquireTimeout, or hold sessions for less time"
  }
}

/**
 * The pool's scope has ended: a caller that was waiting for it, or that came after, gets this rather than
 * an interruption. Build the pool in a scope that outlives the work that uses it (the application's layer).
 *
 * @since 0.2.0
 * @category errors
 */
export class PoolClosed extends Schema.TaggedError<PoolClosed>("hsmkey/PoolClosed")("PoolClosed", {
  token: Schema.String
}) {
  /** @since 0.2.0 */
  override get message(): string {
    return `The session pool of token "${this.token}" is closed: its scope ended; provide the pool in a scope ` +
      "that outlives the work that uses it (the application's layer)"
  }
}

/**
 * This process is already logged in to the token with another PIN. PKCS#11 answers a second login with
 * `CKR_USER_ALREADY_LOGGED_IN` without checking its PIN, so hsmkey refuses a PIN it cannot verify.
 *
 * @since 0.1.0
 * @category errors
 */
export class PinMismatch extends Schema.TaggedError<PinMismatch>("hsmkey/PinMismatch")("PinMismatch", {
  token: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Token "${this.token}" is already logged in by this process with a different PIN; ` +
      "every pool on one token must use the same PIN"
  }
}

/**
 * The token is in use by session pools of this process, and the operation would pull the ground from under
 * them: a security officer login logs every session of the process out, and a changed PIN would no longer
 * be the one the pools log in again with. Close the pools first.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenInUse extends Schema.TaggedError<TokenInUse>("hsmkey/TokenInUse")("TokenInUse", {
  token: Schema.String,
  /** What was refused, such as `"initialize the user PIN"`. */
  operation: Schema.String,
  /** Who uses it, such as `"2 session pools of this process"`. */
  holder: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Cannot ${this.operation} of token "${this.token}": ${this.holder} use it; close them first`
  }
}

/**
 * Options that cannot work, such as both or neither of `tokenLabel` and `tokenSerial`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>("hsmkey/InvalidOptions")("InvalidOptions", {
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid options: ${this.detail}`
  }
}

/**
 * A key reference that cannot name a key: neither label nor id, an empty label, or an id that is not
 * hex.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidKeyReference
  extends Schema.TaggedError<InvalidKeyReference>("hsmkey/InvalidKeyReference")("InvalidKeyReference", {
    detail: Schema.String
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid key reference: ${this.detail}`
  }
}

/**
 * No key matches. `reason` says why: none there (`"absent"`, with the labels of the keys of that kind
 * `present`), only its public half (`"public-only"`), keys hidden because the session is not logged in
 * (`"not-logged-in"`: give the pool a PIN), no readable public key for the private key
 * (`"no-public-key"`), or a key replaced since it was loaded (`"changed"`: nothing was signed with it).
 * `kind` is what was looked for: a key pair's private key, or a secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyNotFound extends Schema.TaggedError<KeyNotFound>("hsmkey/KeyNotFound")("KeyNotFound", {
  /** What was asked: `label "x"`, `id 0a0b`, or both. */
  query: Schema.String,
  token: Schema.String,
  kind: Schema.optionalWith(Schema.Literal("private key", "secret"), { default: () => "private key" }),
  reason: Schema.Literal("absent", "public-only", "not-logged-in", "no-public-key", "changed"),
  /** For `"absent"`: the labels of the keys of that kind the session sees. */
  present: Schema.optional(Schema.Array(Schema.String))
}) {
  /** @since 0.1.0 */
  override get message(): string {
    switch (this.reason) {
      case "absent": {
        const there = this.present === undefined
          ? ""
          : `; ${this.kind}s present: ${
            this.present.length === 0 ? "none" : this.present.map((label) => `"${label}"`).join(", ")
          }`
        return `No ${this.kind} with ${this.query} on token "${this.token}"${there}`
      }
      case "public-only":
        return `Token "${this.token}" holds only the public key with ${this.query}; it cannot sign`
      case "not-logged-in":
        return `No ${this.kind} with ${this.query} is visible on token "${this.token}": private keys and ` +
          "secrets are hidden until the pool logs in; give the SessionPool a userPin (HSM_PIN)"
      case "no-public-key":
        return `The private key with ${this.query} on token "${this.token}" has no readable public key ` +
          "(no public object with its CKA_ID, and no public attributes on it)"
      case "changed":
        return `The key with ${this.query} on token "${this.token}" is not the key this value was loaded as ` +
          "(it was replaced); nothing was signed with it: load the key again"
    }
  }
}

/**
 * Several private keys match: name one by CKA_ID, or by label and CKA_ID.
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyAmbiguous extends Schema.TaggedError<KeyAmbiguous>("hsmkey/KeyAmbiguous")("KeyAmbiguous", {
  query: Schema.String,
  token: Schema.String,
  count: Schema.Number
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.count} private keys match ${this.query} on token "${this.token}"; add the CKA_ID`
  }
}

/**
 * A key with this label or CKA_ID is already on the token.
 *
 * @since 0.1.0
 * @category errors
 */
export class KeyExists extends Schema.TaggedError<KeyExists>("hsmkey/KeyExists")("KeyExists", {
  query: Schema.String,
  token: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Token "${this.token}" already holds a key with ${this.query}`
  }
}

/**
 * The key's type or curve is not one hsmkey signs with, or its material cannot be read.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedKey extends Schema.TaggedError<UnsupportedKey>("hsmkey/UnsupportedKey")("UnsupportedKey", {
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Unsupported key: ${this.detail}`
  }
}

/**
 * Key material to import that cannot be parsed as a private JWK, PKCS#8 (PEM or DER) or `KeyObject`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidKeyMaterial
  extends Schema.TaggedError<InvalidKeyMaterial>("hsmkey/InvalidKeyMaterial")("InvalidKeyMaterial", {
    detail: Schema.String
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid key material: ${this.detail}`
  }
}

/**
 * An algorithm hsmkey does not sign or decrypt with: unknown names, `none`, `RSA1_5`.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedAlgorithm
  extends Schema.TaggedError<UnsupportedAlgorithm>("hsmkey/UnsupportedAlgorithm")("UnsupportedAlgorithm", {
    alg: Schema.String
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `Unsupported algorithm "${this.alg}": hsmkey signs with RS256/384/512, PS256/384/512, ES256/384/512, ` +
      "EdDSA and HS256/384/512, and decrypts RSA-OAEP and RSA-OAEP-256 JWEs"
  }
}

/**
 * The algorithm does not fit the key: RS* and PS* need RSA of at least 2048 bits, ES256/384/512 need
 * P-256/384/521, EdDSA needs an Edwards key.
 *
 * @since 0.1.0
 * @category errors
 */
export class AlgorithmMismatch
  extends Schema.TaggedError<AlgorithmMismatch>("hsmkey/AlgorithmMismatch")("AlgorithmMismatch", {
    alg: Schema.String,
    /** Such as `RSA-2048`, `P-256` or `256-bit secret`. */
    keyType: Schema.String,
    /** What the key is for, when that is why the algorithm does not fit it. */
    use: Schema.optional(Schema.Literal("sig", "enc"))
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    const purpose = this.use === "enc" ? " decryption" : this.use === "sig" ? " signing" : ""
    return `Algorithm ${this.alg} does not fit the ${this.keyType}${purpose} key`
  }
}

/**
 * The token cannot do what was asked, as its mechanism list says (`C_GetMechanismList`, checked before any
 * object is created or any operation starts): sign or decrypt with an algorithm, or generate or hold a
 * key of a type. `mechanisms` names what would have served, none of which the token offers.
 *
 * @since 0.1.0
 * @category errors
 */
export class MechanismUnsupported
  extends Schema.TaggedError<MechanismUnsupported>("hsmkey/MechanismUnsupported")("MechanismUnsupported", {
    token: Schema.String,
    operation: Schema.Literal("sign", "verify", "decrypt", "generate", "import"),
    /** The algorithm, for `sign`, `verify` and `decrypt`. */
    alg: Schema.optional(Schema.String),
    /** The key type, such as `P-256` or `RSA-4096`, for `generate` and `import`. */
    keyType: Schema.optional(Schema.String),
    /** The mechanisms that would have served, none of which the token offers. */
    mechanisms: Schema.Array(Schema.String)
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    const what = this.operation === "generate"
      ? `generate ${this.keyType} keys`
      : this.operation === "import"
      ? `use an imported ${this.keyType} key`
      : `${this.operation} ${this.alg}`
    return `Token "${this.token}" cannot ${what}: it offers none of ${this.mechanisms.join(", ")}; ` +
      "see Capabilities.ofToken for what it can do"
  }
}

/**
 * A JOSE header that cannot be used: not a JSON object, a protected and an unprotected header naming
 * the same parameter, or an `alg` other than the one signing.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidHeader extends Schema.TaggedError<InvalidHeader>("hsmkey/InvalidHeader")("InvalidHeader", {
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid JOSE header: ${this.detail}`
  }
}

/**
 * JWT claims that are not a JSON object of JSON values.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidClaims extends Schema.TaggedError<InvalidClaims>("hsmkey/InvalidClaims")("InvalidClaims", {
  detail: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid JWT claims: ${this.detail}`
  }
}

/**
 * The token returned a signature of the wrong size for the algorithm.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSignature
  extends Schema.TaggedError<InvalidSignature>("hsmkey/InvalidSignature")("InvalidSignature", {
    alg: Schema.String,
    length: Schema.Number,
    expected: Schema.Number
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `The token returned a ${this.length}-byte ${this.alg} signature; ${this.expected} bytes were expected`
  }
}

/**
 * A JWS or JWT did not verify; `code` is jose's error code, such as `ERR_JWS_SIGNATURE_VERIFICATION_FAILED`
 * or `ERR_JWT_EXPIRED`.
 *
 * @since 0.1.0
 * @category errors
 */
export class VerificationFailed
  extends Schema.TaggedError<VerificationFailed>("hsmkey/VerificationFailed")("VerificationFailed", {
    code: Schema.String,
    detail: Schema.String
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `Verification failed (${this.code}): ${this.detail}`
  }
}

/**
 * A JWE did not decrypt: wrong key, or a header, IV, ciphertext or tag that was tampered with. It never
 * says which, so that it cannot serve as a padding or decryption oracle.
 *
 * @since 0.1.0
 * @category errors
 */
export class DecryptionFailed extends Schema.TaggedError<DecryptionFailed>("hsmkey/DecryptionFailed")(
  "DecryptionFailed",
  {}
) {
  /** @since 0.1.0 */
  override get message(): string {
    return "JWE decryption failed"
  }
}

/**
 * Every typed failure of hsmkey.
 *
 * @since 0.1.0
 * @category models
 */
export type HsmError =
  | Pkcs11Failure
  | ModuleLoadFailed
  | TokenNotFound
  | TokenAmbiguous
  | PoolTimeout
  | PoolClosed
  | PinMismatch
  | TokenInUse
  | InvalidOptions
  | InvalidKeyReference
  | KeyNotFound
  | KeyAmbiguous
  | KeyExists
  | UnsupportedKey
  | InvalidKeyMaterial
  | UnsupportedAlgorithm
  | AlgorithmMismatch
  | MechanismUnsupported
  | InvalidHeader
  | InvalidClaims
  | InvalidSignature
  | VerificationFailed
  | DecryptionFailed
