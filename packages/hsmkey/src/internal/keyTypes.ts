import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK, CKM } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type * as Algorithms from "./algorithms.js"

/**
 * What `HsmJwk.generate` makes: an RSA modulus size, or a curve.
 */
export const generateTypes = [
  "RSA-2048",
  "RSA-3072",
  "RSA-4096",
  "P-256",
  "P-384",
  "P-521",
  "Ed25519",
  "Ed448"
] as const

export type GenerateType = (typeof generateTypes)[number]

export interface Spec {
  readonly type: GenerateType
  readonly keyType: Exclude<Algorithms.KeyType, "oct">
  readonly ckk: number
  /** The modulus size, or the curve's size as `CK_MECHANISM_INFO` key sizes count it. */
  readonly size: number
  readonly generation: number
  readonly publicKey: Attributes
}

const rsa = (bits: number): Spec => ({
  type: `RSA-${bits}` as GenerateType,
  keyType: "RSA",
  ckk: CKK.RSA,
  size: bits,
  generation: CKM.RSA_PKCS_KEY_PAIR_GEN,
  publicKey: { modulusBits: bits, publicExponent: new Uint8Array([1, 0, 1]) }
})

const curve = (name: Curve.Curve, size: number): Spec => {
  const edwards = Curve.specs[name].family === "edwards"
  return {
    type: name,
    keyType: name,
    ckk: edwards ? CKK.EC_EDWARDS : CKK.EC,
    size,
    generation: edwards ? CKM.EC_EDWARDS_KEY_PAIR_GEN : CKM.EC_KEY_PAIR_GEN,
    publicKey: { ecParams: Curve.ecParams(name) }
  }
}

export const specs: Record<GenerateType, Spec> = {
  "RSA-2048": rsa(2048),
  "RSA-3072": rsa(3072),
  "RSA-4096": rsa(4096),
  "P-256": curve("P-256", 256),
  "P-384": curve("P-384", 384),
  "P-521": curve("P-521", 521),
  // SoftHSM2 reports EdDSA key sizes 256 to 456: Ed25519 counts as 256 there.
  "Ed25519": curve("Ed25519", 256),
  "Ed448": curve("Ed448", 448)
}

export const isGenerateType = (type: unknown): type is GenerateType =>
  typeof type === "string" && Object.hasOwn(specs, type)
