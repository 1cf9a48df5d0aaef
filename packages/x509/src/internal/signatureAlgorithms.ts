/**
 * The X.509 AlgorithmIdentifier of each JOSE signature algorithm, and how the token's JOSE-form signature
 * becomes the X.509 one.
 */
import * as Rsa from "@peculiar/asn1-rsa"
import * as Asn1 from "@peculiar/asn1-schema"
import * as X509 from "@peculiar/asn1-x509"
import type * as Algorithm from "hsmkey/Algorithm"
import type * as HsmJwk from "hsmkey/HsmJwk"
import * as Der from "./der.js"

/** The algorithms a key pair signs a request with: every JWS one but HMAC. */
export type SignatureAlgorithm = Exclude<Algorithm.Algorithm, Algorithm.HmacAlgorithm>

const ecdsaOids = {
  ES256: "1.2.840.10045.4.3.2",
  ES384: "1.2.840.10045.4.3.3",
  ES512: "1.2.840.10045.4.3.4"
} as const

const pkcs1Oids = {
  RS256: Rsa.id_sha256WithRSAEncryption,
  RS384: Rsa.id_sha384WithRSAEncryption,
  RS512: Rsa.id_sha512WithRSAEncryption
} as const

const pss = {
  PS256: { hash: Rsa.id_sha256, saltLength: 32 },
  PS384: { hash: Rsa.id_sha384, saltLength: 48 },
  PS512: { hash: Rsa.id_sha512, saltLength: 64 }
} as const

// RFC 8410 §3.
const eddsaOids = { "Ed25519": "1.3.101.112", "Ed448": "1.3.101.113" } as const

const encode = (identifier: X509.AlgorithmIdentifier): Uint8Array =>
  new Uint8Array(Asn1.AsnConvert.serialize(identifier))

/**
 * The DER AlgorithmIdentifier: RFC 4055 §5 for RS* (parameters NULL), RFC 4055 §3.1 for PS* (the hash,
 * MGF1 with the same hash, a salt as long as the hash, as RFC 7518 §3.5 signs; SHA-2 identifiers without
 * parameters, RFC 5754 §2), RFC 5758 §3.2 for ES* and RFC 8410 §3 for EdDSA (no parameters).
 */
export const identifier = (alg: SignatureAlgorithm, keyType: HsmJwk.KeyType): Uint8Array => {
  switch (alg) {
    case "RS256":
    case "RS384":
    case "RS512":
      return encode(new X509.AlgorithmIdentifier({ algorithm: pkcs1Oids[alg], parameters: null }))
    case "PS256":
    case "PS384":
    case "PS512": {
      const { hash, saltLength } = pss[alg]
      const params = new Rsa.RsaSaPssParams({
        hashAlgorithm: new X509.AlgorithmIdentifier({ algorithm: hash }),
        maskGenAlgorithm: new X509.AlgorithmIdentifier({
          algorithm: Rsa.id_mgf1,
          parameters: Asn1.AsnConvert.serialize(new X509.AlgorithmIdentifier({ algorithm: hash }))
        }),
        saltLength
      })
      return encode(
        new X509.AlgorithmIdentifier({ algorithm: Rsa.id_RSASSA_PSS, parameters: Asn1.AsnConvert.serialize(params) })
      )
    }
    case "ES256":
    case "ES384":
    case "ES512":
      return encode(new X509.AlgorithmIdentifier({ algorithm: ecdsaOids[alg] }))
    case "EdDSA":
      return encode(new X509.AlgorithmIdentifier({ algorithm: eddsaOids[keyType === "Ed448" ? "Ed448" : "Ed25519"] }))
  }
}

/** The signature as X.509 carries it: ECDSA's `r ‖ s` as a DER Ecdsa-Sig-Value, the others as they are. */
export const x509Signature = (alg: SignatureAlgorithm, signature: Uint8Array): Uint8Array =>
  alg === "ES256" || alg === "ES384" || alg === "ES512" ? Der.ecdsaSignature(signature) : signature
