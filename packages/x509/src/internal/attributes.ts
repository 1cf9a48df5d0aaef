/**
 * The attribute types a subject may use: their names, OIDs, the ASN.1 string type each is encoded as,
 * and the upper bounds of RFC 5280 Appendix A that CAs enforce.
 */

/** How a value is encoded: UTF8String (RFC 5280 §4.1.2.6), or the string type its definition requires. */
export type Encoding = "utf8" | "printable" | "ia5"

export interface AttributeSpec {
  /** The name a formatted subject uses: RFC 4514's keyword where it has one, else OpenSSL's. */
  readonly name: string
  readonly oid: string
  readonly encoding: Encoding
  /** In characters. */
  readonly maxLength?: number | undefined
  /** Names a parser also accepts, beside `name`, in any case. */
  readonly aliases: ReadonlyArray<string>
  /** Why a value does not fit beyond its string type and length, if it does not. */
  readonly check?: ((value: string) => string | undefined) | undefined
}

const spec = (
  name: string,
  oid: string,
  encoding: Encoding,
  maxLength: number | undefined,
  aliases: ReadonlyArray<string> = [],
  check?: (value: string) => string | undefined
): AttributeSpec => ({ name, oid, encoding, maxLength, aliases, check })

export const specs: ReadonlyArray<AttributeSpec> = [
  spec("CN", "2.5.4.3", "utf8", 64, ["commonName"]),
  spec("SN", "2.5.4.4", "utf8", undefined, ["surname"]),
  spec("serialNumber", "2.5.4.5", "printable", 64),
  spec(
    "C",
    "2.5.4.6",
    "printable",
    undefined,
    ["countryName"],
    (value) => /^[A-Z]{2}$/.test(value) ? undefined : "C must be a two-letter ISO 3166 code in capitals, such as DE"
  ),
  spec("L", "2.5.4.7", "utf8", 128, ["localityName"]),
  spec("ST", "2.5.4.8", "utf8", 128, ["S", "stateOrProvinceName"]),
  spec("STREET", "2.5.4.9", "utf8", 128, ["streetAddress"]),
  spec("O", "2.5.4.10", "utf8", 64, ["organizationName"]),
  spec("OU", "2.5.4.11", "utf8", 64, ["organizationalUnitName"]),
  spec("title", "2.5.4.12", "utf8", 64),
  spec("businessCategory", "2.5.4.15", "utf8", 128),
  spec("postalCode", "2.5.4.17", "utf8", 40),
  spec("GN", "2.5.4.42", "utf8", undefined, ["givenName"]),
  spec("initials", "2.5.4.43", "utf8", undefined),
  spec("generationQualifier", "2.5.4.44", "utf8", undefined),
  spec("dnQualifier", "2.5.4.46", "printable", undefined),
  spec("pseudonym", "2.5.4.65", "utf8", 128),
  spec("organizationIdentifier", "2.5.4.97", "utf8", undefined),
  spec(
    "DC",
    "0.9.2342.19200300.100.1.25",
    "ia5",
    63,
    ["domainComponent"],
    (value) =>
      /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(value)
        ? undefined
        : "DC must be one DNS label: letters, digits and inner hyphens"
  ),
  spec("UID", "0.9.2342.19200300.100.1.1", "utf8", 256, ["userId"]),
  spec("emailAddress", "1.2.840.113549.1.9.1", "ia5", 255, ["E", "email"])
]

const byName = new Map<string, AttributeSpec>()
const byOid = new Map<string, AttributeSpec>()
for (const s of specs) {
  byOid.set(s.oid, s)
  for (const name of [s.name, ...s.aliases]) byName.set(name.toLowerCase(), s)
}

// X.660: arcs without leading zeros; the first 0, 1 or 2; under 0 and 1, the second below 40.
const isOid = (text: string): boolean => {
  if (!/^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+$/.test(text)) return false
  const [first, second] = text.split(".").map(Number)
  return first! <= 2 && (first === 2 || second! < 40)
}

/**
 * The spec of an attribute type named by keyword (any case) or dotted OID. An OID hsmkey has no name for
 * is taken as given, its value a UTF8String; a keyword it does not know is `undefined`.
 */
export const lookup = (type: string): AttributeSpec | undefined => {
  const known = byName.get(type.toLowerCase()) ?? byOid.get(type)
  if (known !== undefined) return known
  return isOid(type) ? spec(type, type, "utf8", undefined) : undefined
}

export const knownNames: string = specs.map((s) => s.name).join(", ")

// PrintableString (X.680 §41.4).
const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/
// C0 and C1 controls and DEL: legal in a UTF8String, refused by CAs, and a way to forge log lines.
// eslint-disable-next-line no-control-regex
const control = /[\u0000-\u001f\u007f-\u009f]/
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why a value does not fit its attribute, or `undefined`. */
export const valueProblem = (attribute: AttributeSpec, value: string): string | undefined => {
  if (value.length === 0) return `${attribute.name} is empty`
  if (loneSurrogate.test(value)) return `${attribute.name} is not well-formed Unicode (a lone surrogate)`
  if (control.test(value)) return `${attribute.name} holds a control character`
  const length = [...value].length
  if (attribute.maxLength !== undefined && length > attribute.maxLength) {
    return `${attribute.name} is ${length} characters long; at most ${attribute.maxLength} are allowed (RFC 5280)`
  }
  if (attribute.encoding === "printable" && !printable.test(value)) {
    return `${attribute.name} may hold only letters, digits, spaces and ' ( ) + , - . / : = ? (PrintableString)`
  }
  if (attribute.encoding === "ia5" && !/^[\x20-\x7e]*$/.test(value)) {
    return `${attribute.name} may hold only ASCII (IA5String)`
  }
  return attribute.check?.(value)
}
