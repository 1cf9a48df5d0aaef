/**
 * The few DER encodings built here rather than through @peculiar/asn1-schema: the outer
 * CertificationRequest, so that the bytes the token signed are the bytes the request carries (a second
 * serialization of the same value could differ), and the ECDSA signature value.
 */

const lengthOf = (length: number): Uint8Array => {
  if (length < 0x80) return Uint8Array.of(length)
  const bytes: Array<number> = []
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256)
  return Uint8Array.of(0x80 | bytes.length, ...bytes)
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** A tag, its definite length and its content. */
export const tlv = (tag: number, content: Uint8Array): Uint8Array =>
  concat([Uint8Array.of(tag), lengthOf(content.length), content])

/** A SEQUENCE of DER values already encoded. */
export const sequence = (...elements: ReadonlyArray<Uint8Array>): Uint8Array => tlv(0x30, concat(elements))

/** A BIT STRING of whole bytes (no unused bits). */
export const bitString = (bytes: Uint8Array): Uint8Array => tlv(0x03, concat([Uint8Array.of(0), bytes]))

/**
 * A non-negative INTEGER from its big-endian magnitude: the shortest form (X.690 §8.3.2: no leading zero
 * byte unless the next byte's top bit is set, which would read as negative), zero as a single `00`.
 */
export const unsignedInteger = (magnitude: Uint8Array): Uint8Array => {
  let start = 0
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++
  const trimmed = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start)
  return tlv(0x02, trimmed[0]! >= 0x80 ? concat([Uint8Array.of(0), trimmed]) : trimmed)
}

/**
 * The X.509 form of an ECDSA signature, `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`
 * (RFC 5480 §2.2.3 via RFC 3279), from the JOSE form `r ‖ s`, each half as long as the curve's order.
 */
export const ecdsaSignature = (raw: Uint8Array): Uint8Array => {
  const half = raw.length / 2
  return sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)))
}

/** PEM text (RFC 7468): base64 in lines of 64 characters between the label's lines. */
export const pem = (label: string, der: Uint8Array): string => {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64")
  const lines: Array<string> = []
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64))
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`
}
