import type * as Jwks from "hsmkey/Jwks"
import * as Crypto from "node:crypto"

/** A key set as it is served: its bytes and their entity tag, made once per read of the set. */
export interface Publication {
  readonly body: Uint8Array
  readonly etag: string
  readonly keys: number
}

// The members a public JWK may have (RFC 7517 §4, RFC 7518 §6.2.1 and §6.3.1, RFC 8037 §2). A JWK's private
// members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`) and a secret key's `k` are not among them.
const PUBLIC_MEMBERS: ReadonlySet<string> = new Set([
  "kty",
  "use",
  "key_ops",
  "alg",
  "kid",
  "x5u",
  "x5c",
  "x5t",
  "x5t#S256",
  "crv",
  "x",
  "y",
  "n",
  "e"
])

const ASYMMETRIC: ReadonlySet<unknown> = new Set(["RSA", "EC", "OKP"])

/**
 * Only the public members of the set's asymmetric keys, in the order they come. `Jwks.fromToken` and
 * `Jwks.fromKeys` hold nothing else; a set from elsewhere (`keys` of the options) might, and what is
 * published cannot be taken back.
 */
const publicKeys = (set: Jwks.JsonWebKeySet): Array<Record<string, unknown>> => {
  const keys: Array<Record<string, unknown>> = []
  for (const jwk of set.keys as ReadonlyArray<unknown>) {
    if (typeof jwk !== "object" || jwk === null || !ASYMMETRIC.has((jwk as { kty?: unknown }).kty)) continue
    const published: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(jwk)) {
      if (PUBLIC_MEMBERS.has(name)) published[name] = value
    }
    keys.push(published)
  }
  return keys
}

/** The set's JSON and a strong entity tag over it: the same keys give the same bytes, on every instance. */
export const make = (set: Jwks.JsonWebKeySet): Publication => {
  const keys = publicKeys(set)
  const body = new TextEncoder().encode(JSON.stringify({ keys }))
  const etag = `"${Crypto.createHash("sha256").update(body).digest("base64url")}"`
  return { body, etag, keys: keys.length }
}

const opaque = (tag: string): string => tag.startsWith("W/") ? tag.slice(2) : tag

/**
 * Whether an `If-None-Match` header names the entity tag (RFC 9110 §13.1.2): `*`, or a list of tags
 * compared weakly, as that header's comparison is.
 */
export const noneMatch = (header: string | undefined, etag: string): boolean => {
  if (header === undefined) return false
  for (const candidate of header.split(",")) {
    const tag = candidate.trim()
    if (tag === "*" || opaque(tag) === etag) return true
  }
  return false
}
