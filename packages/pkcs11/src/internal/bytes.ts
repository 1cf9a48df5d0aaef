/**
 * A big-endian unsigned integer without its leading zero bytes (one zero byte stays for zero), as JWKs
 * (RFC 7518 §2) and PKCS#11 write integers.
 */
export const unsigned = (bytes: Uint8Array): Uint8Array => {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  return bytes.subarray(i)
}
