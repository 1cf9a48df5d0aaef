/**
 * The exit codes of `hsmkey`, one per class of failure, as data: scripts branch on them, `--help` and the
 * README print this table.
 *
 * Every typed error of hsmkey has its class here, by tag; a defect (a bug) is `unexpected`.
 *
 * @since 0.1.0
 */

/**
 * A class of outcome, each with its own exit code.
 *
 * @since 0.1.0
 * @category models
 */
export type ExitClass =
  | "ok"
  | "unexpected"
  | "usage"
  | "configuration"
  | "pin"
  | "key"
  | "verification"
  | "token"
  | "unsupported"
  | "io"
  | "interrupted"

/**
 * One row of the table: the code, its class and what it means.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly code: number
  readonly class: ExitClass
  readonly meaning: string
}

/**
 * Every exit code, in order.
 *
 * @since 0.1.0
 * @category constants
 */
export const table: ReadonlyArray<Entry> = [
  { code: 0, class: "ok", meaning: "success" },
  { code: 1, class: "unexpected", meaning: "unexpected failure (a bug: please report it)" },
  { code: 2, class: "usage", meaning: "invalid command line, options or input (alg, claims, key material)" },
  {
    code: 3,
    class: "configuration",
    meaning: "configuration: PKCS#11 library missing or not loadable, token not found or ambiguous"
  },
  { code: 4, class: "pin", meaning: "PIN or login: wrong, locked, expired, not set, or none given" },
  { code: 5, class: "key", meaning: "key not found, ambiguous, or already there" },
  { code: 6, class: "verification", meaning: "a JWS or JWT did not verify" },
  { code: 7, class: "token", meaning: "token or device failure (session, timeout, token removed)" },
  { code: 8, class: "unsupported", meaning: "the token or hsmkey cannot do it (mechanism, key type)" },
  { code: 9, class: "io", meaning: "a file or URL could not be read or written" },
  { code: 130, class: "interrupted", meaning: "interrupted (Ctrl-C); sessions were closed and logged out" }
]

/**
 * The exit code of a class.
 *
 * @since 0.1.0
 * @category utils
 */
export const codeOf = (exitClass: ExitClass): number => table.find((entry) => entry.class === exitClass)!.code

const byTag: Readonly<Record<string, ExitClass>> = {
  // @effect/cli and effect's Config
  ValidationError: "usage",
  ConfigError: "configuration",
  QuitException: "interrupted",
  // hsmkey
  InvalidOptions: "usage",
  InvalidKeyReference: "usage",
  InvalidKeyMaterial: "usage",
  InvalidHeader: "usage",
  InvalidClaims: "usage",
  UnsupportedAlgorithm: "usage",
  AlgorithmMismatch: "usage",
  InvalidSubject: "usage",
  InvalidSubjectAltName: "usage",
  ModuleLoadFailed: "configuration",
  TokenNotFound: "configuration",
  TokenAmbiguous: "configuration",
  SoftHsmError: "configuration",
  PinIncorrect: "pin",
  PinLocked: "pin",
  PinExpired: "pin",
  PinInvalid: "pin",
  PinNotInitialized: "pin",
  PinMismatch: "pin",
  KeyNotFound: "key",
  KeyAmbiguous: "key",
  KeyExists: "key",
  VerificationFailed: "verification",
  DecryptionFailed: "verification",
  Pkcs11Error: "token",
  SessionFailed: "token",
  TokenNotPresent: "token",
  ObjectHandleInvalid: "token",
  MechanismInvalid: "token",
  PoolTimeout: "token",
  PoolClosed: "token",
  TokenInUse: "token",
  InvalidSignature: "token",
  MechanismUnsupported: "unsupported",
  UnsupportedKey: "unsupported",
  // @effect/platform
  SystemError: "io",
  BadArgument: "io"
}

/**
 * The class of a typed error, by its tag; `unexpected` for a tag it does not know.
 *
 * @since 0.1.0
 * @category utils
 */
export const classOfTag = (tag: string): ExitClass => byTag[tag] ?? "unexpected"
