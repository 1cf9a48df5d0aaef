/**
 * RFC 4514 distinguished names as text, both ways, and the structured forms a caller may give instead.
 * Plain functions returning an `Either`: a subject is parsed once per request, before the token is asked.
 */
import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import type { Attribute, AttributeInput, DistinguishedName } from "../DistinguishedName.js"
import { InvalidSubject } from "../X509Error.js"
import * as Attributes from "./attributes.js"

export type { Attribute, AttributeInput, Input, Rdn } from "../DistinguishedName.js"
export type Name = DistinguishedName

// Longer than any subject a CA takes by far; refused unread so that no input costs more than this.
const MAX_TEXT = 16_384

// RFC 4514 §3: what may not appear unescaped in a value (besides a leading space or #, a trailing space).
const mustEscape = new Set(["\"", "+", ",", ";", "<", ">", "\\"])
// RFC 4514 §3 `escaped`: what a backslash may precede, besides two hex digits.
const escapable = new Set([...mustEscape, " ", "#", "="])

const fail = (detail: string, position?: number): Either.Either<never, InvalidSubject> =>
  Either.left(new InvalidSubject(position === undefined ? { detail } : { detail, position }))

const typePattern = /[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*/y
const hexPair = /^[0-9A-Fa-f]{2}$/
const utf8 = new TextDecoder("utf-8", { fatal: true })
const encoder = new TextEncoder()

const attributeOf = (
  type: string,
  value: string,
  where: string,
  position?: number
): Either.Either<Attribute, InvalidSubject> => {
  const spec = Attributes.lookup(type)
  if (spec === undefined) {
    return fail(
      `${where}unknown attribute type ${JSON.stringify(type.slice(0, 64))}; use one of ${Attributes.knownNames} ` +
        "or a dotted OID",
      position
    )
  }
  const problem = Attributes.valueProblem(spec, value)
  return problem === undefined
    ? Either.right({ type: spec.name, oid: spec.oid, value })
    : fail(where + problem, position)
}

/**
 * RFC 4514 text, most specific RDN first (`CN=api.example.com,O=Example,C=DE`). Beyond the RFC, unescaped
 * spaces around `=`, `,` and `+` are skipped, as RFC 2253 tools write them (`CN=a, O=b`): RFC 4514 allows
 * none there, so no value it can express changes; a value's own leading or trailing space is escaped (`\ `).
 * Hex values (`#04…`) are refused: give the text.
 */
export const parseText = (text: string): Either.Either<Name, InvalidSubject> => {
  if (text.length > MAX_TEXT) return fail(`the subject is ${text.length} characters long; at most ${MAX_TEXT}`)
  if (text.trim() === "") return Either.right([])
  const rdns: Array<Array<Attribute>> = []
  let rdn: Array<Attribute> = []
  let pos = 0
  for (;;) {
    while (text[pos] === " ") pos++
    typePattern.lastIndex = pos
    const type = typePattern.exec(text)?.[0]
    if (type === undefined) return fail("expected an attribute type such as CN", pos)
    const typeAt = pos
    pos += type.length
    while (text[pos] === " ") pos++
    if (text[pos] !== "=") return fail(`expected "=" after ${JSON.stringify(type.slice(0, 64))}`, pos)
    pos++
    while (text[pos] === " ") pos++
    const valueAt = pos
    if (text[pos] === "#") {
      return fail("hex-encoded values (#…) are not supported: give the value as text (a leading # as \\#)", pos)
    }
    const bytes: Array<number> = []
    // Where the value ends if what follows is unescaped spaces only.
    let significant = 0
    while (pos < text.length && text[pos] !== "," && text[pos] !== "+") {
      const c = text[pos]!
      if (c === "\\") {
        const next = text[pos + 1]
        if (next === undefined) return fail("the subject ends in a lone backslash", pos)
        if (escapable.has(next)) {
          bytes.push(next.charCodeAt(0))
          pos += 2
        } else if (hexPair.test(text.slice(pos + 1, pos + 3))) {
          bytes.push(parseInt(text.slice(pos + 1, pos + 3), 16))
          pos += 3
        } else {
          return fail(
            `"\\${next}" is no escape: a backslash precedes one of " + , ; < > \\ # = or a space, or two hex digits`,
            pos
          )
        }
        significant = bytes.length
        continue
      }
      if (c === "\"" || c === ";" || c === "<" || c === ">") {
        return fail(`${c} in a value must be escaped as \\${c}`, pos)
      }
      const codePoint = text.codePointAt(pos)!
      // A lone surrogate would be encoded as U+FFFD: a value other than the one given.
      if (codePoint >= 0xd800 && codePoint <= 0xdfff) return fail("the subject is not well-formed Unicode", pos)
      const char = String.fromCodePoint(codePoint)
      for (const byte of encoder.encode(char)) bytes.push(byte)
      if (c !== " ") significant = bytes.length
      pos += char.length
    }
    bytes.length = significant
    let value: string
    try {
      value = utf8.decode(Uint8Array.from(bytes))
    } catch {
      return fail("the hex escapes of a value are not UTF-8", valueAt)
    }
    const attribute = attributeOf(type, value, "", Attributes.lookup(type) === undefined ? typeAt : valueAt)
    if (Either.isLeft(attribute)) return Either.left(attribute.left)
    rdn.push(attribute.right)
    if (pos >= text.length) break
    if (text[pos] === ",") {
      rdns.push(rdn)
      rdn = []
    }
    pos++
    if (text.slice(pos).trim() === "") return fail(`the subject ends after "${text[pos - 1]}"`, pos - 1)
  }
  rdns.push(rdn)
  return Either.right(rdns)
}

const isAttributeInput = (u: unknown): u is AttributeInput =>
  Predicate.isRecord(u) && Predicate.isString(u.type) && Predicate.isString(u.value)

/** A subject as text, or as attributes (most specific first), or as a record of types to values. */
export const parse = (input: unknown): Either.Either<Name, InvalidSubject> => {
  if (Predicate.isString(input)) return parseText(input)
  const rdns: Array<Array<Attribute>> = []
  if (Array.isArray(input)) {
    for (const [index, entry] of input.entries()) {
      const members: ReadonlyArray<unknown> = Array.isArray(entry) ? entry : [entry]
      if (members.length === 0) return fail(`RDN ${index} has no attribute`)
      const rdn: Array<Attribute> = []
      for (const member of members) {
        if (!isAttributeInput(member)) return fail(`RDN ${index} is not { type: string, value: string }`)
        const attribute = attributeOf(member.type, member.value, `RDN ${index}: `)
        if (Either.isLeft(attribute)) return Either.left(attribute.left)
        rdn.push(attribute.right)
      }
      rdns.push(rdn)
    }
    return Either.right(rdns)
  }
  if (Predicate.isRecord(input)) {
    for (const [type, values] of Object.entries(input)) {
      const list: ReadonlyArray<unknown> = Array.isArray(values) ? values : [values]
      for (const value of list) {
        if (!Predicate.isString(value)) return fail(`the value of ${type.slice(0, 64)} is not a string`)
        const attribute = attributeOf(type, value, "")
        if (Either.isLeft(attribute)) return Either.left(attribute.left)
        rdns.push([attribute.right])
      }
    }
    return Either.right(rdns)
  }
  return fail("the subject must be RFC 4514 text, an array of { type, value }, or a record of types to values")
}

const escapeValue = (value: string): string => {
  const chars = [...value]
  return chars.map((c, i) =>
    mustEscape.has(c) || (i === 0 && (c === " " || c === "#")) || (i === chars.length - 1 && c === " ")
      ? `\\${c}`
      : c
  ).join("")
}

/** RFC 4514 text, most specific RDN first, escaping only what §2.4 requires. */
export const format = (name: Name): string =>
  name.map((rdn) => rdn.map((a) => `${a.type}=${escapeValue(a.value)}`).join("+")).join(",")
