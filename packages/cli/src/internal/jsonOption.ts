import * as Options from "@effect/cli/Options"

/** `--json`: machine-readable JSON on stdout, and nothing else there. */
export const option: Options.Options<boolean> = Options.boolean("json").pipe(
  Options.withDescription("Print JSON on stdout (and nothing else there)")
)
