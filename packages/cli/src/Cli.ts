/**
 * The `hsmkey` command line as a value: the root `Command`, to embed in another program, and `run`, which
 * runs it on an argument vector and returns the exit code.
 *
 * `run` prints every typed failure as one line on stderr, with a hint and no stack trace, and answers with
 * the failure's exit code (`ExitCode`); a defect prints its cause and answers 1. Prompts are drawn on
 * stderr, so that stdout carries results only.
 *
 * @since 0.1.0
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as PlatformError from "@effect/platform/Error"
import type * as Terminal from "@effect/platform/Terminal"
import type { ModuleLoadFailed, Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import type { SoftHsmError } from "@hsmkey/softhsm/SoftHsm"
import type * as X509Error from "@hsmkey/x509/X509Error"
import * as Cause from "effect/Cause"
import type * as ConfigError from "effect/ConfigError"
import type * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as HsmError from "hsmkey/HsmError"
import { createRequire } from "node:module"
import type { CliError } from "./CliError.js"
import * as ExitCode from "./ExitCode.js"
import * as Csr from "./internal/csr.js"
import * as Demo from "./internal/demo.js"
import * as Errors from "./internal/errors.js"
import * as Jwks from "./internal/jwks.js"
import * as Keys from "./internal/keys.js"
import * as Output from "./internal/output.js"
import * as PinCommand from "./internal/pinCommand.js"
import * as Sign from "./internal/sign.js"
import * as Term from "./internal/terminal.js"
import * as Tokens from "./internal/tokens.js"
import * as Verify from "./internal/verify.js"

/**
 * What a command can fail with: hsmkey's typed errors, the command line's own, a bad variable, a
 * cancelled prompt, a file that cannot be read.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandError =
  | HsmError.HsmError
  | ModuleLoadFailed
  | Pkcs11Failure
  | SoftHsmError
  | X509Error.InvalidSubject
  | X509Error.InvalidSubjectAltName
  | CliError
  | ConfigError.ConfigError
  | Terminal.QuitException
  | PlatformError.PlatformError

/**
 * The root command, `hsmkey`, with its subcommands.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("hsmkey").pipe(
  Command.withDescription(
    "HSM-backed JOSE signing: tokens, keys, JWKS, JWS and JWT signing and verification, CSRs and PINs, on any " +
      "PKCS#11 token."
  ),
  Command.withSubcommands([
    Tokens.command,
    Keys.command,
    Jwks.command,
    Sign.command,
    Verify.command,
    Csr.command,
    PinCommand.command,
    Demo.command
  ])
)

const environment: ReadonlyArray<readonly [string, string]> = [
  ["HSM_MODULE", "the PKCS#11 library (--module wins)"],
  ["HSM_TOKEN", "the token's label (--token wins)"],
  ["HSM_TOKEN_SERIAL", "the token's serial number, instead of its label (--serial wins)"],
  ["HSM_PIN", "the user PIN; without it, a hidden prompt on a terminal"],
  ["HSM_SO_PIN", "the security officer's PIN (pin init, pin change --so)"],
  ["HSM_NEW_PIN", "the new PIN (pin init, pin change); without it, asked twice on a terminal"]
]

const list = (rows: ReadonlyArray<readonly [string, string]>): HelpDoc.HelpDoc =>
  HelpDoc.descriptionList(
    rows.map(([term, meaning]) => [Span.text(term), HelpDoc.p(meaning)] as [Span.Span, HelpDoc.HelpDoc]) as [
      [Span.Span, HelpDoc.HelpDoc],
      ...Array<[Span.Span, HelpDoc.HelpDoc]>
    ]
  )

/**
 * The help's footer: the environment variables and the exit codes.
 *
 * @since 0.1.0
 * @category help
 */
export const footer: HelpDoc.HelpDoc = HelpDoc.blocks([
  HelpDoc.h1("ENVIRONMENT"),
  list(environment),
  HelpDoc.h1("EXIT CODES"),
  list(ExitCode.table.map((entry) => [String(entry.code), entry.meaning] as const))
])

/**
 * The package's version.
 *
 * @since 0.1.0
 * @category constants
 */
export const version: string = (createRequire(import.meta.url)("../package.json") as { readonly version: string })
  .version

// Logs go to stderr, one line each: stdout is for results. Warnings and worse unless --log-level says otherwise.
const stderrLogger = Logger.make(({ logLevel, message }) => {
  const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
  process.stderr.write(`hsmkey: ${logLevel.label.toLowerCase()}: ${text}\n`)
})

const runtime = Layer.mergeAll(
  Term.layer,
  Logger.replace(Logger.defaultLogger, stderrLogger),
  Logger.minimumLogLevel(LogLevel.Warning)
)

const cli = Command.run(command, { name: "hsmkey", version, footer })

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g

const plain = (text: string): string => text.replace(ANSI, "")

const plainArgs = (args: ReadonlyArray<unknown>): ReadonlyArray<unknown> =>
  args.map((arg) => typeof arg === "string" ? plain(arg) : arg)

// @effect/cli prints its help with Console.log in colour, and its usage errors with Console.error over
// several lines. Help is plain text where stdout is no terminal (a pager, grep, a file); usage errors are
// left to `report`, which prints each as one line as it does every other failure.
const withCliConsole = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (base) =>
    Effect.withConsole(
      effect,
      {
        ...base,
        log: (...args) => base.log(...(process.stdout.isTTY === true ? args : plainArgs(args))),
        error: () => Effect.void
      } satisfies Console.Console
    ))

const groupOf = <Name extends string, R, E, A>(
  group: Command.Command<Name, R, E, A>
): readonly [string, ReadonlyArray<string>] => [
  Array.from(Command.getNames(group))[0],
  Array.from(HashMap.keys(Command.getSubcommands(group))).sort()
]

// The groups of commands and their own subcommands, by name.
const groups: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  groupOf(Keys.command),
  groupOf(Sign.command),
  groupOf(PinCommand.command)
]

const usageLine = (error: ValidationError.ValidationError, args: ReadonlyArray<string>): string => {
  const [first, second] = args.slice(2)
  const group = groups.find(([name]) => name === first)
  // @effect/cli names the root and its commands when a group's subcommand is unknown (`hsmkey keys lst`).
  const detail = ValidationError.isCommandMismatch(error) && group !== undefined
    ? `unknown command "${second}" for hsmkey ${group[0]}: use one of ${group[1].join(", ")}`
    : plain(HelpDoc.toAnsiText(error.error))
  const where = group !== undefined && group[1].includes(second)
    ? `hsmkey ${first} ${second} --help`
    : HashMap.has(Command.getSubcommands(command), first)
    ? `hsmkey ${first} --help`
    : "hsmkey --help"
  return Errors.line(detail, `\`${where}\` shows the usage`)
}

const report = (
  cause: Cause.Cause<CommandError | ValidationError.ValidationError>,
  args: ReadonlyArray<string>
): Effect.Effect<number> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error._tag === "QuitException") {
      return Effect.as(Output.note("hsmkey: cancelled"), ExitCode.codeOf("interrupted"))
    }
    if (ValidationError.isValidationError(error)) {
      return Effect.as(Output.note(usageLine(error, args)), ExitCode.codeOf("usage"))
    }
    const rendered = Errors.render(error)
    return Effect.as(Output.note(rendered.line), ExitCode.codeOf(rendered.exitClass))
  }
  return Effect.as(
    Output.note(`hsmkey: unexpected failure (a bug: please report it)\n${Cause.pretty(cause)}`),
    ExitCode.codeOf("unexpected")
  )
}

/**
 * Runs the command line on an argument vector (`process.argv`: the runtime and script first) and answers
 * with its exit code, having printed any failure on stderr. Interrupted (Ctrl-C), it closes every session
 * and logs out on its way, then says so and stays interrupted.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (args: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  cli(args).pipe(
    withCliConsole,
    Effect.matchCauseEffect({
      onSuccess: () => Effect.succeed(ExitCode.codeOf("ok")),
      onFailure: (cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : report(cause, args)
    }),
    Effect.onInterrupt(() => Output.note("hsmkey: interrupted; sessions closed")),
    Effect.provide(runtime)
  )
