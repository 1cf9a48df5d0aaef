/**
 * A big-endian unsigned integer without its leading zero bytes (one zero byte stays for zero), as JWKs
 * (RFC 7518 §2) and PKCS#11 write integers.
 */
export const unsigned = (bytes: Uint8Array): Uint8Array => {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  return bytes.subarray(i)
}

/** A big-endian unsigned integer as a bigint. */
export const toBigInt = (bytes: Uint8Array): bigint => BigInt(`0x${Buffer.from(bytes).toString("hex") || "0"}`)

/** Whether two byte strings are equal, `undefined` being equal to none. */
export const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

/** Whether two big-endian integers are equal, whatever leading zero bytes a token or a JWK gives them. */
export const sameInteger = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && sameBytes(unsigned(a), unsigned(b))
