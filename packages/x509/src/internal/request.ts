/**
 * The PKCS#10 CertificationRequestInfo (RFC 2986 §4.1) a token signs, and the request around it.
 */
import * as Asn1Csr from "@peculiar/asn1-csr"
import * as Asn1 from "@peculiar/asn1-schema"
import * as X509 from "@peculiar/asn1-x509"
import type * as Crypto from "node:crypto"
import * as AltNames from "./altNames.js"
import * as AttributeSpecs from "./attributes.js"
import * as Der from "./der.js"
import type * as Rfc4514 from "./rfc4514.js"

// PKCS#9 extensionRequest (RFC 2985 §5.4.2).
const EXTENSION_REQUEST = "1.2.840.113549.1.9.14"

const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

const attributeValue = (attribute: Rfc4514.Attribute): X509.AttributeValue => {
  const encoding = AttributeSpecs.lookup(attribute.oid)?.encoding ?? "utf8"
  return new X509.AttributeValue(
    encoding === "printable"
      ? { printableString: attribute.value }
      : encoding === "ia5"
      ? { ia5String: attribute.value }
      : { utf8String: attribute.value }
  )
}

const encodedAttribute = (attribute: Rfc4514.Attribute): Uint8Array =>
  new Uint8Array(
    Asn1.AsnConvert.serialize(new X509.AttributeTypeAndValue({ type: attribute.oid, value: attributeValue(attribute) }))
  )

/**
 * The name with the members of each multi-valued RDN in DER's SET OF order (X.690 §11.6: by their
 * encodings), the order the request carries them in.
 */
export const canonical = (name: Rfc4514.Name): Rfc4514.Name =>
  name.map((rdn) =>
    rdn.length < 2 ? rdn : rdn
      .map((attribute) => ({ attribute, der: encodedAttribute(attribute) }))
      .sort((a, b) => compareBytes(a.der, b.der))
      .map((member) => member.attribute)
  )

/** The X.501 Name of a canonical name: its RDNs in the reverse of RFC 4514's order, the most specific last. */
const nameOf = (name: Rfc4514.Name): X509.Name =>
  new X509.Name(
    [...name].reverse().map((rdn) =>
      new X509.RelativeDistinguishedName(
        rdn.map((attribute) =>
          new X509.AttributeTypeAndValue({ type: attribute.oid, value: attributeValue(attribute) })
        )
      )
    )
  )

const ipText = (value: string): string => {
  const bytes = AltNames.ipBytes(value)!
  if (bytes.length === 4) return bytes.join(".")
  const words: Array<string> = []
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return words.join(":")
}

const generalName = (altName: AltNames.AltName): X509.GeneralName => {
  switch (altName.type) {
    case "dns":
      return new X509.GeneralName({ dNSName: altName.value })
    case "ip":
      // Eight full groups: the form every parser of the library's converter reads the same.
      return new X509.GeneralName({ iPAddress: ipText(altName.value) })
    case "email":
      return new X509.GeneralName({ rfc822Name: altName.value })
    case "uri":
      return new X509.GeneralName({ uniformResourceIdentifier: altName.value })
  }
}

/**
 * The DER CertificationRequestInfo: version 1, the subject (canonical), the public key as the key's SPKI, and a
 * subjectAltName extension request when there are names. An empty subject makes the extension critical
 * (RFC 5280 §4.2.1.6). With no extension, `attributes` is the empty `[0]` RFC 2986 requires.
 */
export const info = (
  subject: Rfc4514.Name,
  publicKey: Crypto.KeyObject,
  altNames: ReadonlyArray<AltNames.AltName>
): Uint8Array => {
  const spki = Asn1.AsnConvert.parse(publicKey.export({ type: "spki", format: "der" }), X509.SubjectPublicKeyInfo)
  const attributes: Array<X509.Attribute> = []
  if (altNames.length > 0) {
    const san = new X509.SubjectAlternativeName(altNames.map(generalName))
    const extensions = new X509.Extensions([
      new X509.Extension({
        extnID: X509.id_ce_subjectAltName,
        critical: subject.length === 0,
        extnValue: new Asn1.OctetString(Asn1.AsnConvert.serialize(san))
      })
    ])
    attributes.push(new X509.Attribute({ type: EXTENSION_REQUEST, values: [Asn1.AsnConvert.serialize(extensions)] }))
  }
  const requestInfo = new Asn1Csr.CertificationRequestInfo({
    version: 0,
    subject: nameOf(subject),
    subjectPKInfo: spki,
    attributes: new Asn1Csr.Attributes(attributes)
  })
  return new Uint8Array(Asn1.AsnConvert.serialize(requestInfo))
}

/** `CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature BIT STRING }` (RFC 2986 §4.2). */
export const request = (requestInfo: Uint8Array, algorithm: Uint8Array, signature: Uint8Array): Uint8Array =>
  Der.sequence(requestInfo, algorithm, Der.bitString(signature))
