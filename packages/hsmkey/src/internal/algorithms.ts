import { CKG, CKM } from "@hsmkey/pkcs11/Constants"
import type { Mechanism } from "@hsmkey/pkcs11/Pkcs11"
import * as Crypto from "node:crypto"

/**
 * The JWS algorithms hsmkey signs with inside a token.
 */
export const algorithms = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA"
] as const

export type Algorithm = (typeof algorithms)[number]

/**
 * The key types hsmkey loads, generates and imports; `oct` is a secret (HMAC) key.
 */
export const keyTypes = ["RSA", "P-256", "P-384", "P-521", "Ed25519", "Ed448", "oct"] as const

export type KeyType = (typeof keyTypes)[number]

export const isAlgorithm = (alg: string): alg is Algorithm => (algorithms as ReadonlyArray<string>).includes(alg)

type Hash = "sha256" | "sha384" | "sha512"

const hashSize: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 }

// PKCS#1 v1.5 DigestInfo prefixes (RFC 8017 §9.2): what CKM_RSA_PKCS signs when the token hashes nothing.
const digestInfo: Record<Hash, string> = {
  sha256: "3031300d060960864801650304020105000420",
  sha384: "3041300d060960864801650304020205000430",
  sha512: "3051300d060960864801650304020305000440"
}

const hashMechanism: Record<Hash, number> = { sha256: CKM.SHA256, sha384: CKM.SHA384, sha512: CKM.SHA512 }
const mgf: Record<Hash, number> = { sha256: CKG.MGF1_SHA256, sha384: CKG.MGF1_SHA384, sha512: CKG.MGF1_SHA512 }

// One-shot: a Hash object per signature costs more than the hashing of a JWS.
const digest = (hash: Hash) => (data: Uint8Array): Uint8Array => Crypto.hash(hash, data, "buffer")

const identity = (data: Uint8Array) => data

/**
 * One way a token can compute a JWS signature: the mechanism, and what to hand it.
 */
export interface Candidate {
  readonly mechanism: Mechanism
  readonly prepare: (signingInput: Uint8Array) => Uint8Array
}

export interface Spec {
  readonly alg: Algorithm
  /** The key types the algorithm signs with. */
  readonly keyTypes: ReadonlyArray<KeyType>
  readonly ecdsa: boolean
  /** In order of preference; the first the token lists is used. */
  readonly candidates: ReadonlyArray<Candidate>
}

const rsaPkcs1 = (alg: Algorithm, hash: Hash, mechanism: number): Spec => ({
  alg,
  keyTypes: ["RSA"],
  ecdsa: false,
  candidates: [
    { mechanism: { type: mechanism }, prepare: identity },
    // Tokens without CKM_SHA*_RSA_PKCS (openCryptoki's soft token) sign the DER DigestInfo of the hash.
    {
      mechanism: { type: CKM.RSA_PKCS },
      prepare: (data) => Uint8Array.from([...Buffer.from(digestInfo[hash], "hex"), ...digest(hash)(data)])
    }
  ]
})

const rsaPss = (alg: Algorithm, hash: Hash, mechanism: number): Spec => {
  // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash. Never the token's defaults.
  const parameter = {
    _tag: "RsaPss",
    hashAlg: hashMechanism[hash],
    mgf: mgf[hash],
    saltLength: hashSize[hash]
  } as const
  return {
    alg,
    keyTypes: ["RSA"],
    ecdsa: false,
    candidates: [
      { mechanism: { type: mechanism, parameter }, prepare: identity },
      { mechanism: { type: CKM.RSA_PKCS_PSS, parameter }, prepare: digest(hash) }
    ]
  }
}

const ecdsa = (alg: Algorithm, hash: Hash, keyType: KeyType, mechanism: number): Spec => ({
  alg,
  keyTypes: [keyType],
  ecdsa: true,
  candidates: [
    // SoftHSM2 has no CKM_ECDSA_SHA*: hash here, sign the hash in the token.
    { mechanism: { type: CKM.ECDSA }, prepare: digest(hash) },
    { mechanism: { type: mechanism }, prepare: identity }
  ]
})

const hmac = (alg: Algorithm, mechanism: number): Spec => ({
  alg,
  keyTypes: ["oct"],
  ecdsa: false,
  candidates: [{ mechanism: { type: mechanism }, prepare: identity }]
})

export const specs: Record<Algorithm, Spec> = {
  HS256: hmac("HS256", CKM.SHA256_HMAC),
  HS384: hmac("HS384", CKM.SHA384_HMAC),
  HS512: hmac("HS512", CKM.SHA512_HMAC),
  RS256: rsaPkcs1("RS256", "sha256", CKM.SHA256_RSA_PKCS),
  RS384: rsaPkcs1("RS384", "sha384", CKM.SHA384_RSA_PKCS),
  RS512: rsaPkcs1("RS512", "sha512", CKM.SHA512_RSA_PKCS),
  PS256: rsaPss("PS256", "sha256", CKM.SHA256_RSA_PKCS_PSS),
  PS384: rsaPss("PS384", "sha384", CKM.SHA384_RSA_PKCS_PSS),
  PS512: rsaPss("PS512", "sha512", CKM.SHA512_RSA_PKCS_PSS),
  ES256: ecdsa("ES256", "sha256", "P-256", CKM.ECDSA_SHA256),
  ES384: ecdsa("ES384", "sha384", "P-384", CKM.ECDSA_SHA384),
  ES512: ecdsa("ES512", "sha512", "P-521", CKM.ECDSA_SHA512),
  EdDSA: {
    alg: "EdDSA",
    keyTypes: ["Ed25519", "Ed448"],
    ecdsa: false,
    candidates: [{ mechanism: { type: CKM.EDDSA }, prepare: identity }]
  }
}

/** RS* and PS* need RSA keys of at least 2048 bits (RFC 7518 §3.3, §3.5). */
export const MIN_RSA_BITS = 2048

/** HS* secrets are at least as long as the hash (RFC 7518 §3.2). */
export const hmacBits = { HS256: 256, HS384: 384, HS512: 512 } as const

export type HmacAlgorithm = keyof typeof hmacBits

export const isHmac = (alg: string): alg is HmacAlgorithm => Object.hasOwn(hmacBits, alg)

export const fits = (alg: Algorithm, keyType: KeyType, bits: number): boolean =>
  specs[alg].keyTypes.includes(keyType) &&
  (keyType !== "RSA" || bits >= MIN_RSA_BITS) &&
  (!isHmac(alg) || bits >= hmacBits[alg])

/** The size of a curve in bits, as a key's `bits` counts it. */
export const curveBits: Record<Exclude<KeyType, "RSA" | "oct">, number> = {
  "P-256": 256,
  "P-384": 384,
  "P-521": 521,
  "Ed25519": 255,
  "Ed448": 448
}

export const defaultAlgorithm: Record<Exclude<KeyType, "oct">, Algorithm> = {
  "RSA": "RS256",
  "P-256": "ES256",
  "P-384": "ES384",
  "P-521": "ES512",
  "Ed25519": "EdDSA",
  "Ed448": "EdDSA"
}

/**
 * ECDSA signatures are `r ‖ s` in JWS. Some tokens return the DER `SEQUENCE { r INTEGER, s INTEGER }`
 * instead: convert it, or return `undefined` when the bytes are neither.
 */
export const rawEcdsa = (signature: Uint8Array, size: number): Uint8Array | undefined => {
  if (signature.length === size) return signature
  const half = size / 2
  const der = Buffer.from(signature)
  let offset = 0
  const readLength = (): number | undefined => {
    const first = der[offset++]
    if (first === undefined) return undefined
    if (first < 0x80) return first
    const count = first & 0x7f
    if (count !== 1) return undefined
    return der[offset++]
  }
  if (der[offset++] !== 0x30) return undefined
  const total = readLength()
  if (total === undefined || offset + total !== der.length) return undefined
  const out = new Uint8Array(size)
  for (const position of [0, half]) {
    if (der[offset++] !== 0x02) return undefined
    const length = readLength()
    if (length === undefined || offset + length > der.length) return undefined
    let integer = der.subarray(offset, offset + length)
    offset += length
    while (integer.length > half && integer[0] === 0) integer = integer.subarray(1)
    if (integer.length > half) return undefined
    out.set(integer, position + half - integer.length)
  }
  return offset === der.length ? out : undefined
}

/**
 * The JWE key management algorithms hsmkey decrypts with, and their RSA-OAEP parameters (RFC 7518
 * §4.3): SHA-1 with MGF1-SHA1 for `RSA-OAEP`, SHA-256 with MGF1-SHA256 for `RSA-OAEP-256`.
 */
export const keyManagementAlgorithms = ["RSA-OAEP", "RSA-OAEP-256"] as const

export type KeyManagementAlgorithm = (typeof keyManagementAlgorithms)[number]

export const isKeyManagement = (alg: string): alg is KeyManagementAlgorithm =>
  (keyManagementAlgorithms as ReadonlyArray<string>).includes(alg)

export const oaep: Record<KeyManagementAlgorithm, Mechanism> = {
  "RSA-OAEP": { type: CKM.RSA_PKCS_OAEP, parameter: { _tag: "RsaOaep", hashAlg: CKM.SHA_1, mgf: CKG.MGF1_SHA1 } },
  "RSA-OAEP-256": {
    type: CKM.RSA_PKCS_OAEP,
    parameter: { _tag: "RsaOaep", hashAlg: CKM.SHA256, mgf: CKG.MGF1_SHA256 }
  }
}
