import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKO } from "@hsmkey/pkcs11/Constants"

/** What a key pair is for: signatures, or decryption (JWE). */
export type Use = "sig" | "enc"

/**
 * The protections of every private key hsmkey makes: a token object, sensitive, never extractable, and
 * one use only (SoftHSM2's defaults would also let a signing key decrypt and unwrap).
 */
export const privateKey = (use: Use): Attributes => ({
  class: CKO.PRIVATE_KEY,
  token: true,
  private: true,
  sensitive: true,
  extractable: false,
  sign: use === "sig",
  decrypt: use === "enc",
  unwrap: false,
  derive: false
})

/** The public half of a key pair hsmkey makes: for verifying, or for encrypting to it. */
export const publicKey = (use: Use): Attributes => ({
  class: CKO.PUBLIC_KEY,
  token: true,
  private: false,
  verify: use === "sig",
  encrypt: use === "enc",
  wrap: false,
  derive: false
})

/** Secret keys are for MACs only: sensitive, never extractable, sign and verify. */
export const secretKey: Attributes = {
  class: CKO.SECRET_KEY,
  token: true,
  private: true,
  sensitive: true,
  extractable: false,
  sign: true,
  verify: true,
  encrypt: false,
  decrypt: false,
  wrap: false,
  unwrap: false,
  derive: false
}
