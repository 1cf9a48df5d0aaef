/**
 * The typed failures of `@hsmkey/x509` beyond hsmkey's own: a subject or a subjectAltName that cannot be
 * put in a request. Both are found before the token is asked anything. Match them with `Effect.catchTag`;
 * the tags are stable API.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A subject that is no distinguished name X.509 can carry: RFC 4514 text that does not parse (a bad
 * escape, a missing `=`, an unescaped special character), an attribute type that is unknown, an empty
 * value, or a value its attribute cannot hold (a country that is not two letters, a common name of more
 * than 64 characters). `position` is the character offset in the text where the problem is, when the
 * subject was given as text.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSubject extends Schema.TaggedError<InvalidSubject>("@hsmkey/x509/InvalidSubject")(
  "InvalidSubject",
  {
    detail: Schema.String,
    position: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid subject: ${this.detail}${this.position === undefined ? "" : ` (at character ${this.position})`}`
  }
}

/**
 * A subjectAltName that cannot be requested: a DNS name that is not an LDH host name (or a wildcard
 * `*.` before one), an IP address that is neither IPv4 nor IPv6, an email address or URI that is not
 * ASCII or not well formed, or an entry of a kind other than `dns`, `ip`, `email` and `uri`. `index` is
 * the entry's place in `subjectAltNames`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSubjectAltName
  extends Schema.TaggedError<InvalidSubjectAltName>("@hsmkey/x509/InvalidSubjectAltName")("InvalidSubjectAltName", {
    index: Schema.Number,
    detail: Schema.String
  })
{
  /** @since 0.1.0 */
  override get message(): string {
    return `Invalid subjectAltName #${this.index}: ${this.detail}`
  }
}
