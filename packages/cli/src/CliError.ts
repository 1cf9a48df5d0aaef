/**
 * The command line's own failures: what hsmkey's typed errors do not cover (no library named, no PIN to be
 * had, a file that cannot be read, a destroy without confirmation). Each carries its exit class and a hint.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A failure of the command line itself, with the class of its exit code and what to do about it. It never
 * holds a PIN or key material.
 *
 * @since 0.1.0
 * @category errors
 */
export class CliError extends Schema.TaggedError<CliError>("@hsmkey/cli/CliError")("CliError", {
  exitClass: Schema.Literal("usage", "configuration", "pin", "key", "verification", "token", "unsupported", "io"),
  detail: Schema.String,
  hint: Schema.optional(Schema.String)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return this.detail
  }
}
