import * as Predicate from "effect/Predicate"

/** Whether a value is a plain JSON object: not an array, a Date, a Map or a class instance. */
export const isPlainObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  Predicate.isRecord(u) && (Object.getPrototypeOf(u) === Object.prototype || Object.getPrototypeOf(u) === null)

const BASE64URL = /^[A-Za-z0-9_-]*$/u

/** Whether a value is base64url text (no padding, no other alphabet): Buffer would skip what is not. */
export const isBase64url = (u: unknown): u is string => typeof u === "string" && BASE64URL.test(u)

/** The bytes of base64url text, or `undefined` when it is not base64url. */
export const decodeBase64url = (u: unknown): Uint8Array | undefined =>
  isBase64url(u) ? new Uint8Array(Buffer.from(u, "base64url")) : undefined

/** base64url text of bytes, or of a string's UTF-8 (as `jose.base64url.encode`, in one native step). */
export const encodeBase64url = (input: Uint8Array | string): string =>
  typeof input === "string"
    ? Buffer.from(input, "utf8").toString("base64url")
    : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("base64url")
