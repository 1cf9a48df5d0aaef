import * as ConfigError from "effect/ConfigError"
import * as Predicate from "effect/Predicate"
import { CliError } from "../CliError.js"
import * as ExitCode from "../ExitCode.js"

/** How a failure is shown: one line for stderr and its exit class. */
export interface Rendered {
  readonly line: string
  readonly exitClass: ExitCode.ExitClass
}

const INSTALL_HINT = "install the library (SoftHSM2: apt-get install softhsm2, which puts it at " +
  "/usr/lib/softhsm/libsofthsm2.so) and name it with --module or HSM_MODULE"

// @hsmkey/node says why in its reason's first words: only a missing file calls for installing something.
const moduleHint = (reason: string): string | undefined =>
  reason.startsWith("no such file")
    ? INSTALL_HINT
    : reason.startsWith("not a loadable PKCS#11 library")
    ? "that file is no PKCS#11 library (one exports C_GetFunctionList): name the token vendor's library with " +
      "--module or HSM_MODULE, such as /usr/lib/softhsm/libsofthsm2.so"
    // pkcs11js missing, or C_Initialize failed: the reason says what to do.
    : undefined

const verificationHint = (code: string): string | undefined => {
  switch (code) {
    case "ERR_JWKS_NO_MATCHING_KEY":
      return "the JWK set has no key with the token's kid and alg: check that it is the signer's current set " +
        "(`hsmkey jwks` prints a token's)"
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "the token was altered after it was signed, or the JWK set holds another key under its kid"
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return "pass a compact JWS or JWT: three base64url parts joined by dots"
    default:
      return undefined
  }
}

const TOKEN_HINT = "name the token with --token LABEL or --serial SERIAL (HSM_TOKEN, HSM_TOKEN_SERIAL); " +
  "`hsmkey tokens` lists them"

const field = (error: object, name: string): unknown => (error as Record<string, unknown>)[name]

// What each key type signs (or decrypts) with, as hsmkey's Jws and Jwe take them.
const algorithmsOf = (keyType: string, use: unknown): string | undefined => {
  if (use === "enc") return keyType.startsWith("RSA") ? "RSA-OAEP or RSA-OAEP-256" : undefined
  if (keyType.startsWith("RSA")) return "PS256, PS384, PS512, RS256, RS384 or RS512"
  if (keyType.endsWith("secret")) return "HS256, HS384 or HS512"
  return ({ "P-256": "ES256", "P-384": "ES384", "P-521": "ES512", Ed25519: "EdDSA", Ed448: "EdDSA" } as const)[
    keyType as "P-256"
  ]
}

const mismatchHint = (error: object): string => {
  const keyType = String(field(error, "keyType"))
  const algorithms = algorithmsOf(keyType, field(error, "use"))
  const fits = algorithms === undefined
    ? ""
    : `${keyType} keys ${field(error, "use") === "enc" ? "decrypt" : "sign"} with ${algorithms}; `
  // Not `keys list` alone: under `keys generate` the key is not there yet.
  return `${fits}without --alg, the key's own algorithm is used`
}

const hintOf = (tag: string, error: object): string | undefined => {
  switch (tag) {
    case "PinIncorrect":
      return "check the PIN (--pin, HSM_PIN or the prompt) before trying again: the token counts failed " +
        "logins and may lock the PIN"
    case "PinLocked":
      return field(error, "reason") === "final-try"
        ? "one more wrong PIN locks the token; log in once with the right PIN through the vendor's tool"
        : "the security officer must reset it: hsmkey pin init (HSM_SO_PIN)"
    case "PinExpired":
      return "set a new one: hsmkey pin change"
    case "PinNotInitialized":
      return "the security officer sets it: hsmkey pin init"
    case "PinMismatch":
      return "use one PIN per token"
    case "ModuleLoadFailed":
      return moduleHint(String(field(error, "reason")))
    case "TokenNotFound":
      return TOKEN_HINT
    case "TokenAmbiguous":
      return "name it with --serial SERIAL (HSM_TOKEN_SERIAL); `hsmkey tokens` lists the serial numbers"
    case "KeyNotFound":
      return "`hsmkey keys list` shows the keys on the token"
    case "KeyAmbiguous":
      return "name the key by --id HEX; `hsmkey keys list` shows the ids"
    case "KeyExists":
      return "choose another --label or --id, or destroy the old key first (hsmkey keys destroy)"
    case "VerificationFailed":
      return verificationHint(String(field(error, "code")))
    case "MechanismUnsupported":
      return "`hsmkey tokens` shows what the token can do"
    case "UnsupportedAlgorithm":
      return "`hsmkey tokens` lists the algorithms the token signs and decrypts with"
    case "AlgorithmMismatch":
      return mismatchHint(error)
    case "SoftHsmError":
      return field(error, "reason") === "NotInstalled" ? "apt-get install softhsm2, or set SOFTHSM2_MODULE" : undefined
    default:
      return undefined
  }
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/** `hsmkey: <message> (hint: <hint>)`, on one line. */
export const line = (message: string, hint: string | undefined): string =>
  `hsmkey: ${oneLine(message)}${hint === undefined ? "" : ` (hint: ${oneLine(hint)})`}`

/**
 * One line for a typed failure, with its hint, and its exit class. Messages come from the errors
 * themselves, which never hold a PIN.
 */
export const render = (error: unknown): Rendered => {
  if (error instanceof CliError) return { line: line(error.detail, error.hint), exitClass: error.exitClass }
  if (ConfigError.isConfigError(error)) {
    return { line: line(`configuration: ${String(error)}`, undefined), exitClass: "configuration" }
  }
  if (Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" && error instanceof Error) {
    const exitClass = ExitCode.classOfTag(error._tag)
    return { line: line(error.message, hintOf(error._tag, error)), exitClass }
  }
  return { line: line(String(error), undefined), exitClass: "unexpected" }
}
