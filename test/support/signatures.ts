import { Constants, type Pkcs11 } from "@hsmkey/pkcs11"
import * as Crypto from "node:crypto"
import type { KeyType } from "./backends.js"

const { CKG, CKM } = Constants

/**
 * One JOSE algorithm as a token signs it (DESIGN fact 11), and how node:crypto verifies the result.
 */
export interface SignatureCase {
  readonly alg: string
  readonly keyType: KeyType
  readonly mechanism: Pkcs11.Mechanism
  /** ES*: the token signs the hash computed here (SoftHSM2 has no CKM_ECDSA_SHA*). */
  readonly prehash?: Hash
  /** CKM_RSA_PKCS: the token signs the DER DigestInfo of the hash computed here (openCryptoki's RS256). */
  readonly digestInfo?: string
  readonly signatureLength?: number
  readonly verify: (key: Crypto.KeyObject, data: Uint8Array, signature: Uint8Array) => boolean
}

type Hash = "sha256" | "sha384" | "sha512"

const pss = (alg: string, type: number, hash: Hash, hashAlg: number, mgf: number, saltLength: number) =>
  ({
    alg,
    keyType: "RSA-2048",
    mechanism: { type, parameter: { _tag: "RsaPss", hashAlg, mgf, saltLength } },
    verify: (key, data, signature) =>
      Crypto.verify(hash, data, { key, padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature)
  }) satisfies SignatureCase

const ecdsa = (hash: Hash) => (key: Crypto.KeyObject, data: Uint8Array, signature: Uint8Array) =>
  Crypto.verify(hash, data, { key, dsaEncoding: "ieee-p1363" }, signature)

const pkcs1 = (hash: Hash) => (key: Crypto.KeyObject, data: Uint8Array, signature: Uint8Array) =>
  Crypto.verify(hash, data, key, signature)

export const signatureCases: ReadonlyArray<SignatureCase> = [
  { alg: "RS256", keyType: "RSA-2048", mechanism: { type: CKM.SHA256_RSA_PKCS }, verify: pkcs1("sha256") },
  { alg: "RS384", keyType: "RSA-2048", mechanism: { type: CKM.SHA384_RSA_PKCS }, verify: pkcs1("sha384") },
  { alg: "RS512", keyType: "RSA-2048", mechanism: { type: CKM.SHA512_RSA_PKCS }, verify: pkcs1("sha512") },
  {
    alg: "RS256",
    keyType: "RSA-2048",
    mechanism: { type: CKM.RSA_PKCS },
    prehash: "sha256",
    digestInfo: "3031300d060960864801650304020105000420",
    verify: pkcs1("sha256")
  },
  pss("PS256", CKM.SHA256_RSA_PKCS_PSS, "sha256", CKM.SHA256, CKG.MGF1_SHA256, 32),
  pss("PS384", CKM.SHA384_RSA_PKCS_PSS, "sha384", CKM.SHA384, CKG.MGF1_SHA384, 48),
  pss("PS512", CKM.SHA512_RSA_PKCS_PSS, "sha512", CKM.SHA512, CKG.MGF1_SHA512, 64),
  {
    alg: "ES256",
    keyType: "P-256",
    mechanism: { type: CKM.ECDSA },
    prehash: "sha256",
    signatureLength: 64,
    verify: ecdsa("sha256")
  },
  {
    alg: "ES384",
    keyType: "P-384",
    mechanism: { type: CKM.ECDSA },
    prehash: "sha384",
    signatureLength: 96,
    verify: ecdsa("sha384")
  },
  {
    alg: "ES512",
    keyType: "P-521",
    mechanism: { type: CKM.ECDSA },
    prehash: "sha512",
    signatureLength: 132,
    verify: ecdsa("sha512")
  },
  {
    alg: "EdDSA",
    keyType: "Ed25519",
    mechanism: { type: CKM.EDDSA },
    signatureLength: 64,
    verify: (key, data, signature) => Crypto.verify(null, data, key, signature)
  }
]

/**
 * The bytes the token signs for a case: the message, its hash for ES*, or the DigestInfo of its hash.
 */
export const toBeSigned = (c: SignatureCase, message: Uint8Array): Uint8Array => {
  if (c.prehash === undefined) return message
  const hash = Crypto.createHash(c.prehash).update(message).digest()
  return new Uint8Array(c.digestInfo === undefined ? hash : Buffer.concat([Buffer.from(c.digestInfo, "hex"), hash]))
}

const generation: Record<KeyType, number> = {
  "RSA-2048": CKM.RSA_PKCS_KEY_PAIR_GEN,
  "P-256": CKM.EC_KEY_PAIR_GEN,
  "P-384": CKM.EC_KEY_PAIR_GEN,
  "P-521": CKM.EC_KEY_PAIR_GEN,
  "Ed25519": CKM.EC_EDWARDS_KEY_PAIR_GEN
}

/** The mechanisms a case needs the token to list: its key generation and its signature mechanism. */
export const mechanismsOf = (c: SignatureCase): ReadonlyArray<number> => [generation[c.keyType], c.mechanism.type]

/**
 * The cheapest signature case a token can compute (ES256, else EdDSA, else PS256, else RS256), for tests
 * where any signing key will do: openCryptoki has no EC.
 */
export const quickCase = (mechanisms: ReadonlyArray<string>): SignatureCase => {
  const listed = (c: SignatureCase) => mechanismsOf(c).every((m) => mechanisms.includes(Constants.mechanismName(m)))
  const found = ["ES256", "EdDSA", "PS256", "RS256"]
    .map((alg) => signatureCases.find((c) => c.alg === alg)!)
    .find(listed)
  if (found === undefined) throw new Error("the token signs none of ES256, EdDSA, PS256, RS256")
  return found
}
