/**
 * Cryptoki constants, grouped by the prefix they carry in the PKCS#11 headers (2.40, plus the 3.0
 * values that pkcs11js 2.1.7 lacks, such as EdDSA): `CKM.ECDSA` is `CKM_ECDSA`.
 *
 * Read them from here, never from `pkcs11js`: its named ESM exports type-check but are `undefined`
 * at run time.
 *
 * @since 0.1.0
 */

/**
 * Object classes (`CKA_CLASS`).
 *
 * @since 0.1.0
 * @category constants
 */
export const CKO = {
  DATA: 0x0,
  CERTIFICATE: 0x1,
  PUBLIC_KEY: 0x2,
  PRIVATE_KEY: 0x3,
  SECRET_KEY: 0x4
} as const

/**
 * Key types (`CKA_KEY_TYPE`); `EC_EDWARDS` (Ed25519, Ed448) is PKCS#11 3.0.
 *
 * @since 0.1.0
 * @category constants
 */
export const CKK = {
  RSA: 0x0,
  EC: 0x3,
  GENERIC_SECRET: 0x10,
  AES: 0x1f,
  SHA256_HMAC: 0x2b,
  SHA384_HMAC: 0x2c,
  SHA512_HMAC: 0x2d,
  EC_EDWARDS: 0x40
} as const

/**
 * Mechanism types; `EC_EDWARDS_KEY_PAIR_GEN` and `EDDSA` are PKCS#11 3.0.
 *
 * @since 0.1.0
 * @category constants
 */
export const CKM = {
  RSA_PKCS_KEY_PAIR_GEN: 0x0,
  RSA_PKCS: 0x1,
  RSA_X_509: 0x3,
  SHA1_RSA_PKCS: 0x6,
  RSA_PKCS_OAEP: 0x9,
  RSA_PKCS_PSS: 0xd,
  SHA1_RSA_PKCS_PSS: 0xe,
  SHA256_RSA_PKCS: 0x40,
  SHA384_RSA_PKCS: 0x41,
  SHA512_RSA_PKCS: 0x42,
  SHA256_RSA_PKCS_PSS: 0x43,
  SHA384_RSA_PKCS_PSS: 0x44,
  SHA512_RSA_PKCS_PSS: 0x45,
  SHA_1: 0x220,
  SHA_1_HMAC: 0x221,
  SHA256: 0x250,
  SHA256_HMAC: 0x251,
  SHA384: 0x260,
  SHA384_HMAC: 0x261,
  SHA512: 0x270,
  SHA512_HMAC: 0x271,
  GENERIC_SECRET_KEY_GEN: 0x350,
  EC_KEY_PAIR_GEN: 0x1040,
  ECDSA: 0x1041,
  ECDSA_SHA1: 0x1042,
  ECDSA_SHA256: 0x1044,
  ECDSA_SHA384: 0x1045,
  ECDSA_SHA512: 0x1046,
  ECDH1_DERIVE: 0x1050,
  EC_EDWARDS_KEY_PAIR_GEN: 0x1055,
  EDDSA: 0x1057,
  AES_KEY_GEN: 0x1080,
  AES_GCM: 0x1087
} as const

/**
 * Mask generation functions for RSA-PSS and RSA-OAEP parameters.
 *
 * @since 0.1.0
 * @category constants
 */
export const CKG = {
  MGF1_SHA1: 0x1,
  MGF1_SHA256: 0x2,
  MGF1_SHA384: 0x3,
  MGF1_SHA512: 0x4,
  MGF1_SHA224: 0x5
} as const

/**
 * The source of the RSA-OAEP encoding parameter (the label).
 *
 * @since 0.1.0
 * @category constants
 */
export const CKZ = {
  DATA_SPECIFIED: 0x1
} as const

/**
 * User types for `C_Login`.
 *
 * @since 0.1.0
 * @category constants
 */
export const CKU = {
  SO: 0,
  USER: 1,
  CONTEXT_SPECIFIC: 2
} as const

/**
 * Session states (`CK_SESSION_INFO.state`); pkcs11js 2.1.7 defines none of them.
 *
 * @since 0.1.0
 * @category constants
 */
export const CKS = {
  RO_PUBLIC_SESSION: 0,
  RO_USER_FUNCTIONS: 1,
  RW_PUBLIC_SESSION: 2,
  RW_USER_FUNCTIONS: 3,
  RW_SO_FUNCTIONS: 4
} as const

/**
 * Flags of `C_Initialize`, slots, tokens, sessions and mechanisms. Their values overlap across those
 * structures, as in the headers.
 *
 * @since 0.1.0
 * @category constants
 */
export const CKF = {
  // C_Initialize: without OS_LOCKING_OK SoftHSM2 runs without mutexes and concurrent threadpool
  // calls corrupt its heap.
  OS_LOCKING_OK: 0x2,
  // CK_SLOT_INFO
  TOKEN_PRESENT: 0x1,
  REMOVABLE_DEVICE: 0x2,
  HW_SLOT: 0x4,
  // CK_TOKEN_INFO
  RNG: 0x1,
  WRITE_PROTECTED: 0x2,
  LOGIN_REQUIRED: 0x4,
  USER_PIN_INITIALIZED: 0x8,
  PROTECTED_AUTHENTICATION_PATH: 0x100,
  TOKEN_INITIALIZED: 0x400,
  USER_PIN_COUNT_LOW: 0x10000,
  USER_PIN_FINAL_TRY: 0x20000,
  USER_PIN_LOCKED: 0x40000,
  USER_PIN_TO_BE_CHANGED: 0x80000,
  SO_PIN_COUNT_LOW: 0x100000,
  SO_PIN_FINAL_TRY: 0x200000,
  SO_PIN_LOCKED: 0x400000,
  SO_PIN_TO_BE_CHANGED: 0x800000,
  // CK_SESSION_INFO and C_OpenSession
  RW_SESSION: 0x2,
  SERIAL_SESSION: 0x4,
  // CK_MECHANISM_INFO
  HW: 0x1,
  ENCRYPT: 0x100,
  DECRYPT: 0x200,
  DIGEST: 0x400,
  SIGN: 0x800,
  VERIFY: 0x2000,
  GENERATE: 0x8000,
  GENERATE_KEY_PAIR: 0x10000,
  WRAP: 0x20000,
  UNWRAP: 0x40000,
  DERIVE: 0x80000
} as const

/**
 * Return values (`CK_RV`) of PKCS#11 2.40 and the 3.0 additions (`AEAD_DECRYPT_FAILED`,
 * `TOKEN_RESOURCE_EXCEEDED`, `OPERATION_CANCEL_FAILED`).
 *
 * @since 0.1.0
 * @category constants
 */
export const CKR = {
  OK: 0x0,
  CANCEL: 0x1,
  HOST_MEMORY: 0x2,
  SLOT_ID_INVALID: 0x3,
  GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6,
  ARGUMENTS_BAD: 0x7,
  NO_EVENT: 0x8,
  NEED_TO_CREATE_THREADS: 0x9,
  CANT_LOCK: 0xa,
  ATTRIBUTE_READ_ONLY: 0x10,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  ACTION_PROHIBITED: 0x1b,
  DATA_INVALID: 0x20,
  DATA_LEN_RANGE: 0x21,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  ENCRYPTED_DATA_INVALID: 0x40,
  ENCRYPTED_DATA_LEN_RANGE: 0x41,
  AEAD_DECRYPT_FAILED: 0x42,
  FUNCTION_CANCELED: 0x50,
  FUNCTION_NOT_PARALLEL: 0x51,
  FUNCTION_NOT_SUPPORTED: 0x54,
  KEY_HANDLE_INVALID: 0x60,
  KEY_SIZE_RANGE: 0x62,
  KEY_TYPE_INCONSISTENT: 0x63,
  KEY_NOT_NEEDED: 0x64,
  KEY_CHANGED: 0x65,
  KEY_NEEDED: 0x66,
  KEY_INDIGESTIBLE: 0x67,
  KEY_FUNCTION_NOT_PERMITTED: 0x68,
  KEY_NOT_WRAPPABLE: 0x69,
  KEY_UNEXTRACTABLE: 0x6a,
  MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71,
  OBJECT_HANDLE_INVALID: 0x82,
  OPERATION_ACTIVE: 0x90,
  OPERATION_NOT_INITIALIZED: 0x91,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  SESSION_PARALLEL_NOT_SUPPORTED: 0xb4,
  SESSION_READ_ONLY: 0xb5,
  SESSION_EXISTS: 0xb6,
  SESSION_READ_ONLY_EXISTS: 0xb7,
  SESSION_READ_WRITE_SO_EXISTS: 0xb8,
  SIGNATURE_INVALID: 0xc0,
  SIGNATURE_LEN_RANGE: 0xc1,
  TEMPLATE_INCOMPLETE: 0xd0,
  TEMPLATE_INCONSISTENT: 0xd1,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  TOKEN_WRITE_PROTECTED: 0xe2,
  UNWRAPPING_KEY_HANDLE_INVALID: 0xf0,
  UNWRAPPING_KEY_SIZE_RANGE: 0xf1,
  UNWRAPPING_KEY_TYPE_INCONSISTENT: 0xf2,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  USER_PIN_NOT_INITIALIZED: 0x102,
  USER_TYPE_INVALID: 0x103,
  USER_ANOTHER_ALREADY_LOGGED_IN: 0x104,
  USER_TOO_MANY_TYPES: 0x105,
  WRAPPED_KEY_INVALID: 0x110,
  WRAPPED_KEY_LEN_RANGE: 0x112,
  WRAPPING_KEY_HANDLE_INVALID: 0x113,
  WRAPPING_KEY_SIZE_RANGE: 0x114,
  WRAPPING_KEY_TYPE_INCONSISTENT: 0x115,
  RANDOM_SEED_NOT_SUPPORTED: 0x120,
  RANDOM_NO_RNG: 0x121,
  DOMAIN_PARAMS_INVALID: 0x130,
  CURVE_NOT_SUPPORTED: 0x140,
  BUFFER_TOO_SMALL: 0x150,
  SAVED_STATE_INVALID: 0x160,
  INFORMATION_SENSITIVE: 0x170,
  STATE_UNSAVEABLE: 0x180,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
  MUTEX_BAD: 0x1a0,
  MUTEX_NOT_LOCKED: 0x1a1,
  NEW_PIN_MODE: 0x1b0,
  NEXT_OTP: 0x1b1,
  EXCEEDED_MAX_ITERATIONS: 0x1b5,
  FIPS_SELF_TEST_FAILED: 0x1b6,
  LIBRARY_LOAD_FAILED: 0x1b7,
  PIN_TOO_WEAK: 0x1b8,
  PUBLIC_KEY_INVALID: 0x1b9,
  FUNCTION_REJECTED: 0x200,
  TOKEN_RESOURCE_EXCEEDED: 0x201,
  OPERATION_CANCEL_FAILED: 0x202,
  VENDOR_DEFINED: 0x80000000
} as const

/**
 * A token's maximum session count when there is no limit (`CK_EFFECTIVELY_INFINITE`).
 *
 * @since 0.1.0
 * @category constants
 */
export const CK_EFFECTIVELY_INFINITE = 0

/**
 * `CK_UNAVAILABLE_INFORMATION` as pkcs11js reports counts: `~0UL` truncated to 32 bits.
 *
 * @since 0.1.0
 * @category constants
 */
export const CK_UNAVAILABLE_INFORMATION = 0xffffffff

/**
 * The name of a mechanism type (`"CKM_ECDSA"`), or its hex value when it is not listed here.
 *
 * @example
 * ```ts
 * import { Constants } from "@hsmkey/pkcs11"
 *
 * assert.strictEqual(Constants.mechanismName(Constants.CKM.ECDSA), "CKM_ECDSA")
 * ```
 *
 * @since 0.1.0
 * @category names
 */
export const mechanismName = (type: number): string => {
  const name = mechanismNames.get(type)
  return name === undefined ? `0x${type.toString(16).padStart(8, "0")}` : `CKM_${name}`
}

/**
 * The name of a return value (`"CKR_PIN_INCORRECT"`); vendor codes read `CKR_VENDOR_DEFINED+0x…`.
 *
 * @example
 * ```ts
 * import { Constants } from "@hsmkey/pkcs11"
 *
 * assert.strictEqual(Constants.returnValueName(Constants.CKR.PIN_INCORRECT), "CKR_PIN_INCORRECT")
 * ```
 *
 * @since 0.1.0
 * @category names
 */
export const returnValueName = (code: number): string => {
  const name = returnValueNames.get(code)
  if (name !== undefined) return `CKR_${name}`
  return code >= CKR.VENDOR_DEFINED
    ? `CKR_VENDOR_DEFINED+0x${(code - CKR.VENDOR_DEFINED).toString(16)}`
    : `CKR_0x${code.toString(16).padStart(8, "0")}`
}

const invert = (table: Record<string, number>): ReadonlyMap<number, string> =>
  new Map(Object.entries(table).map(([name, value]) => [value, name]))

const mechanismNames = invert(CKM)
const returnValueNames = invert(CKR)
