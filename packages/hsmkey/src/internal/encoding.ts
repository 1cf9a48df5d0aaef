import * as Predicate from "effect/Predicate"
import * as Options from "./options.js"

/** Whether a value is a plain JSON object: not an array, a Date, a Map or a class instance. */
export const isPlainObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  Predicate.isRecord(u) && (Object.getPrototypeOf(u) === Object.prototype || Object.getPrototypeOf(u) === null)

/**
 * Whether a value is an object of named fields (not null, not an array), as options must be. Not a type
 * guard: the options keep their declared type.
 */
export const isOptions = (u: unknown): boolean => Predicate.isRecord(u)

/** Whether a value is an array of strings. */
export const isStringArray = (u: unknown): u is ReadonlyArray<string> =>
  Array.isArray(u) && u.every((item) => typeof item === "string")

/** How deep hsmkey nests the JSON it signs: more than any header or claims set needs, far from the stack's end. */
export const maxJsonDepth = 100

/**
 * What in a value is not JSON, or `undefined` when it all is: a value JSON has not (`undefined`, `NaN`, a
 * function, a `Date` or another object that is not plain), a cycle, nesting deeper than `maxDepth` (decoding
 * or serializing it would run out of stack), or a member named `__proto__`, which whoever reads the JSON into
 * plain objects takes for their prototype. `JSON.stringify` would drop, coerce or throw on each of them. The
 * walk itself never goes deeper than `maxDepth`.
 */
export const jsonProblem = (value: unknown, maxDepth: number = maxJsonDepth): string | undefined => {
  const path = new Set<object>()
  const walk = (u: unknown, depth: number): string | undefined => {
    if (typeof u === "string" || typeof u === "boolean" || u === null) return undefined
    if (typeof u === "number") return Number.isFinite(u) ? undefined : String(u)
    if (typeof u !== "object") return Options.kindOf(u)
    if (!Array.isArray(u) && !isPlainObject(u)) return "an object that is not plain (a Date, a Map, a class instance)"
    if (path.has(u)) return "a cycle"
    if (depth >= maxDepth) return `nesting deeper than ${maxDepth} levels`
    if (!Array.isArray(u) && Object.hasOwn(u, "__proto__")) return "a member named __proto__"
    path.add(u)
    for (const item of Array.isArray(u) ? u : Object.values(u)) {
      const problem = walk(item, depth + 1)
      if (problem !== undefined) return problem
    }
    path.delete(u)
    return undefined
  }
  return walk(value, 0)
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
export const headerTypeProblem = (
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
