/**
 * subjectAltName entries (RFC 5280 §4.2.1.6): checked and put in the form the extension carries.
 */
import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as Net from "node:net"
import * as Url from "node:url"
import { InvalidSubjectAltName } from "../X509Error.js"

export type Kind = "dns" | "ip" | "email" | "uri"

export interface AltName {
  readonly type: Kind
  readonly value: string
}

export type Input = string | AltName

const kinds: ReadonlyArray<Kind> = ["dns", "ip", "email", "uri"]

// The prefixes OpenSSL's configuration and `-addext subjectAltName=` use.
const prefixes: Record<string, Kind> = { dns: "dns", ip: "ip", email: "email", uri: "uri" }

const MAX_VALUE = 4096

const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

/** Why text is no LDH host name (RFC 1123 §2.1, RFC 5890 A-labels), or `undefined`. */
const hostProblem = (host: string, wildcard: boolean): string | undefined => {
  if ([...host].some((c) => c.charCodeAt(0) > 0x7f)) {
    const ascii = Url.domainToASCII(host)
    return `${JSON.stringify(host)} is not ASCII: give the IDNA A-label${ascii === "" ? "" : ` (${ascii})`}`
  }
  if (host.length > 253) return `${host.length} characters long; a DNS name has at most 253`
  const labels = host.split(".")
  for (const [i, part] of labels.entries()) {
    if (part === "*" && i === 0 && wildcard && labels.length > 1) continue
    if (!label.test(part)) {
      return `${JSON.stringify(host)} is no DNS name: each label is 1 to 63 letters, digits and inner hyphens` +
        (wildcard ? ", and only a whole leftmost label may be *" : "")
    }
  }
  return undefined
}

/** The 4 or 16 bytes of an IP address in its usual text forms; an IPv6 zone (`%eth0`) is refused. */
export const ipBytes = (text: string): Uint8Array | undefined => {
  const version = Net.isIP(text)
  if (version === 4) return Uint8Array.from(text.split(".").map(Number))
  if (version !== 6 || text.includes("%")) return undefined
  // node:net has checked the syntax; a trailing dotted quad becomes the two groups it stands for.
  const lastColon = text.lastIndexOf(":")
  const quad = text.slice(lastColon + 1).split(".").map(Number)
  const hex = quad.length === 4
    ? `${text.slice(0, lastColon + 1)}${((quad[0]! << 8) | quad[1]!).toString(16)}:${
      ((quad[2]! << 8) | quad[3]!).toString(16)
    }`
    : text
  const groups = (part: string): Array<number> => part === "" ? [] : part.split(":").map((g) => parseInt(g, 16))
  const gap = hex.indexOf("::")
  const words = gap < 0 ? groups(hex) : (() => {
    const left = groups(hex.slice(0, gap))
    const right = groups(hex.slice(gap + 2))
    return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right]
  })()
  return words.length === 8 ? Uint8Array.from(words.flatMap((w) => [w >> 8, w & 0xff])) : undefined
}

const check = (kind: Kind, value: string): string | undefined => {
  if (value.length === 0) return `the ${kind} value is empty`
  if (value.length > MAX_VALUE) return `the ${kind} value is ${value.length} characters long; at most ${MAX_VALUE}`
  switch (kind) {
    case "dns":
      return hostProblem(value, true)
    case "ip":
      return ipBytes(value) === undefined ? `${JSON.stringify(value)} is no IPv4 or IPv6 address` : undefined
    case "email": {
      const at = value.lastIndexOf("@")
      if (at <= 0 || !/^[\x21-\x7e]+$/.test(value.slice(0, at))) {
        return `${JSON.stringify(value)} is no email address (local@domain, ASCII; RFC 5280 §4.2.1.6)`
      }
      return hostProblem(value.slice(at + 1), false)
    }
    case "uri":
      return !/^[\x21-\x7e]+$/.test(value)
        ? `${JSON.stringify(value)} is not an ASCII URI: percent-encode it (RFC 3987 §3.1)`
        : !URL.canParse(value)
        ? `${JSON.stringify(value)} is no absolute URI with a scheme`
        : undefined
  }
}

const shown = (u: unknown): string =>
  Predicate.isString(u) ? JSON.stringify(u.slice(0, 64)) : Array.isArray(u) ? "an array" : `a ${typeof u}`

/** One entry: `{ type, value }`, or text with OpenSSL's prefix (`DNS:api.example.com`, `IP:10.0.0.1`). */
export const parseOne = (input: unknown, index: number): Either.Either<AltName, InvalidSubjectAltName> => {
  const fail = (detail: string) => Either.left(new InvalidSubjectAltName({ index, detail }))
  let kind: unknown
  let value: unknown
  if (Predicate.isString(input)) {
    const colon = input.indexOf(":")
    kind = colon < 0 ? undefined : prefixes[input.slice(0, colon).toLowerCase()]
    if (kind === undefined) return fail(`${shown(input)} has no prefix DNS:, IP:, email: or URI:`)
    value = input.slice(colon + 1)
  } else if (Predicate.isRecord(input)) {
    kind = input.type
    value = input.value
  } else {
    return fail(`an entry is text such as "DNS:api.example.com" or { type, value }, not ${shown(input)}`)
  }
  if (!kinds.includes(kind as Kind)) return fail(`the type is ${shown(kind)}; it must be one of ${kinds.join(", ")}`)
  if (!Predicate.isString(value)) return fail(`the value is ${shown(value)}, not text`)
  const problem = check(kind as Kind, value)
  return problem === undefined ? Either.right({ type: kind as Kind, value }) : fail(problem)
}

export const parse = (
  inputs: ReadonlyArray<unknown>
): Either.Either<ReadonlyArray<AltName>, InvalidSubjectAltName> => {
  const out: Array<AltName> = []
  for (const [index, input] of inputs.entries()) {
    const parsed = parseOne(input, index)
    if (Either.isLeft(parsed)) return Either.left(parsed.left)
    out.push(parsed.right)
  }
  return Either.right(out)
}
