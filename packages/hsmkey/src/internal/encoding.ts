import * as Predicate from "effect/Predicate"
import { InvalidHeader } from "../HsmError.js"
import * as Options from "./options.js"

/** Whether a value is a plain JSON object: not an array, a Date, a Map or a class instance. */
export const isPlainObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  Predicate.isRecord(u) && (Object.getPrototypeOf(u) === Object.prototype || Object.getPrototypeOf(u) === null)

/** Whether a value is an array of strings. */
export const isStringArray = (u: unknown): u is ReadonlyArray<string> =>
  Array.isArray(u) && u.every((item) => typeof item === "string")

/** How deep hsmkey nests the JSON it signs: more than any header or claims set needs, far from the stack's end. */
const MAX_DEPTH = 100

/**
 * How many values the walk visits at the most: a value reached twice (an object shared by two members)
 * counts twice, as `JSON.stringify` would write it twice, so that an object shared at every level of 100
 * costs 10,000 visits rather than 2^100, and a cycle ends there too.
 */
const MAX_VALUES = 10_000

/**
 * What in `u` is not JSON (a string), or the budget of visits left after it (a number): plain code that
 * allocates nothing on the way, for it runs at every claims set and header signed.
 */
const walk = (u: unknown, depth: number, budget: number): string | number => {
  if (budget <= 0) return `more than ${MAX_VALUES} values, or a cycle`
  if (typeof u === "string" || typeof u === "boolean" || u === null) return budget - 1
  if (typeof u === "number") return Number.isFinite(u) ? budget - 1 : String(u)
  if (typeof u !== "object") return Options.kindOf(u)
  if (depth >= MAX_DEPTH) return `nesting deeper than ${MAX_DEPTH} levels`
  let left = budget - 1
  if (Array.isArray(u)) {
    for (let i = 0; i < u.length; i++) {
      const result = walk(u[i], depth + 1, left)
      if (typeof result === "string") return result
      left = result
    }
    return left
  }
  if (!isPlainObject(u)) return "an object that is not plain (a Date, a Map, a class instance)"
  if (Object.hasOwn(u, "__proto__")) return "a member named __proto__"
  for (const name in u) {
    if (!Object.hasOwn(u, name)) continue
    const result = walk(u[name], depth + 1, left)
    if (typeof result === "string") return result
    left = result
  }
  return left
}

/**
 * What in a value is not JSON, or `undefined` when it all is: a value JSON has not (`undefined`, `NaN`, a
 * function, a `Date` or another object that is not plain), nesting deeper than 100 levels (decoding or
 * serializing it would run out of stack), more than 10,000 values (an object shared at every level, a
 * cycle), a member named `__proto__`, which whoever reads the JSON into plain objects takes for their
 * prototype, or a member that cannot be read (a getter or a proxy that throws). `JSON.stringify` would
 * drop, coerce or throw on each of them.
 */
export const jsonProblem = (value: unknown): string | undefined => {
  try {
    const result = walk(value, 0, MAX_VALUES)
    return typeof result === "string" ? result : undefined
  } catch {
    return "a member that cannot be read"
  }
}

// The registered header parameters that are text: RFC 7515 §4.1, and RFC 7516 §4.1 for a JWE.
const textParameters = {
  jws: ["alg", "jku", "kid", "x5u", "x5t", "x5t#S256", "typ", "cty"],
  jwe: ["alg", "enc", "zip", "jku", "kid", "x5u", "x5t", "x5t#S256", "typ", "cty"]
}

/**
 * Why a header's registered parameters do not have their registered types, or `undefined` when they do.
 * `crit` is checked where it is allowed.
 */
const headerTypeProblem = (
  header: { readonly [name: string]: unknown },
  kind: "jws" | "jwe"
): string | undefined => {
  for (const name of textParameters[kind]) {
    if (Object.hasOwn(header, name) && typeof header[name] !== "string") {
      return `${name} must be a string, not ${Options.kindOf(header[name])}`
    }
  }
  if (Object.hasOwn(header, "x5c") && !isStringArray(header.x5c)) return "x5c must be an array of strings"
  if (Object.hasOwn(header, "jwk") && !isPlainObject(header.jwk)) return "jwk must be a JSON object"
  return undefined
}

/**
 * Why a header a caller gave is not one hsmkey signs or encrypts under, or `undefined`: a JSON object of
 * JSON values whose registered parameters have their registered types. An absent header is none.
 */
export const headerProblem = (name: string, header: unknown, kind: "jws" | "jwe"): InvalidHeader | undefined => {
  if (header === undefined) return undefined
  if (!isPlainObject(header)) return new InvalidHeader({ detail: `${name} must be a JSON object` })
  const notJson = jsonProblem(header)
  if (notJson !== undefined) return new InvalidHeader({ detail: `${name} is not JSON: it holds ${notJson}` })
  const mistyped = headerTypeProblem(header, kind)
  return mistyped === undefined ? undefined : new InvalidHeader({ detail: `${name}: ${mistyped}` })
}

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
