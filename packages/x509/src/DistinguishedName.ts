/**
 * Distinguished names (X.501) as a certificate's subject: parsed from RFC 4514 text or from a structured
 * form, checked against what X.509 and CAs accept, and formatted back as RFC 4514 text.
 *
 * Every form lists the most specific RDN first, as RFC 4514 text and `openssl -nameopt RFC2253` do:
 * `CN=api.example.com,O=Example,C=DE`; the request encodes them in the reverse, X.501 order.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Rfc4514 from "./internal/rfc4514.js"
import type { InvalidSubject } from "./X509Error.js"

/**
 * One attribute of a name: its type (the keyword `format` writes, such as `CN`, or a dotted OID hsmkey
 * has no keyword for), the type's OID, and its value.
 *
 * @since 0.1.0
 * @category models
 */
export interface Attribute {
  readonly type: string
  readonly oid: string
  readonly value: string
}

/**
 * A relative distinguished name: one attribute, or several (`CN=a+UID=b`).
 *
 * @since 0.1.0
 * @category models
 */
export type Rdn = ReadonlyArray<Attribute>

/**
 * A parsed, checked name, most specific RDN first; empty for an empty subject.
 *
 * @since 0.1.0
 * @category models
 */
export type DistinguishedName = ReadonlyArray<Rdn>

/**
 * One attribute as a caller gives it: a type by keyword (`CN`, `commonName`, any case) or dotted OID, and
 * its value as text (nothing escaped).
 *
 * @since 0.1.0
 * @category models
 */
export interface AttributeInput {
  readonly type: string
  readonly value: string
}

/**
 * A subject as a caller gives it: RFC 4514 text (`"CN=api.example.com,O=Example,C=DE"`, with its
 * escapes); or attributes, most specific first, an array of them for a multi-valued RDN; or a record of
 * types to values, in insertion order (`{ CN: "api.example.com", O: "Example", C: "DE" }`, an array of
 * values for several RDNs of one type).
 *
 * Types are the X.520 ones a CA reads: CN, SN, serialNumber, C, L, ST, STREET, O, OU, title,
 * businessCategory, postalCode, GN, initials, generationQualifier, dnQualifier, pseudonym,
 * organizationIdentifier, DC, UID and emailAddress, or a dotted OID (its value a UTF8String).
 *
 * @since 0.1.0
 * @category models
 */
export type Input =
  | string
  | ReadonlyArray<AttributeInput | ReadonlyArray<AttributeInput>>
  | { readonly [type: string]: string | ReadonlyArray<string> }

/**
 * Parses and checks a subject. An unknown keyword, an empty value, a bad escape, a hex (`#…`) value, a
 * control character, a value its attribute cannot hold (C is two capital letters; CN, O and OU at most 64
 * characters, as RFC 5280 bounds them; serialNumber a PrintableString; DC one DNS label; emailAddress
 * ASCII) is `InvalidSubject`, with the position in the text. Whitespace-only text is the empty name.
 * Beyond RFC 4514, unescaped spaces around `=`, `,` and `+` are skipped (`CN=a, O=b`).
 *
 * @example
 * ```ts
 * import { DistinguishedName } from "@hsmkey/x509"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const name = yield* DistinguishedName.parse("CN=api.example.com, O=Example\\, Inc., C=DE")
 *   assert.deepStrictEqual(name[1], [{ type: "O", oid: "2.5.4.10", value: "Example, Inc." }])
 *   assert.strictEqual(DistinguishedName.format(name), "CN=api.example.com,O=Example\\, Inc.,C=DE")
 *   const error = yield* Effect.flip(DistinguishedName.parse("CN=a;b"))
 *   assert.strictEqual(error.position, 4)
 * })
 *
 * Effect.runPromise(program)
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: Input): Effect.Effect<DistinguishedName, InvalidSubject> =>
  Effect.suspend(() => Either.match(Rfc4514.parse(input), { onLeft: Effect.fail, onRight: Effect.succeed }))

/**
 * As `parse`, in plain code: the name, or why it is none.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseEither = (input: Input): Either.Either<DistinguishedName, InvalidSubject> => Rfc4514.parse(input)

/**
 * A name as RFC 4514 text, most specific RDN first, escaping what RFC 4514 §2.4 requires and nothing
 * else: `parse(format(name))` is `name`. For names of ASCII values this is what
 * `openssl req -subject -nameopt RFC2253` prints (OpenSSL spells some keywords otherwise, such as
 * `street`).
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (name: DistinguishedName): string => Rfc4514.format(name)
