import * as Options from "@effect/cli/Options"
import * as Prompt from "@effect/cli/Prompt"
import type * as Terminal from "@effect/platform/Terminal"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Equivalence from "effect/Equivalence"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { CliError } from "../CliError.js"
import * as Output from "./output.js"
import * as Term from "./terminal.js"

/** `--pin`: works, but warns; HSM_PIN or the prompt keep the PIN out of history and process lists. */
export const option: Options.Options<Option.Option<Redacted.Redacted<string>>> = Options.redacted("pin").pipe(
  Options.withDescription(
    "The user PIN. Prefer HSM_PIN or the hidden prompt: a PIN on the command line lands in the shell's " +
      "history and in process lists"
  ),
  Options.optional
)

/** What reading a PIN can fail with: none to be had, a cancelled prompt, a malformed variable. */
export type PinError = CliError | Terminal.QuitException | ConfigError.ConfigError

// An empty variable counts as unset, as HsmLive reads HSM_PIN.
const fromEnv = (name: string): Effect.Effect<Option.Option<Redacted.Redacted<string>>, ConfigError.ConfigError> =>
  Effect.map(
    Config.option(Config.redacted(name)),
    Option.filter((pin) => Redacted.value(pin).length > 0)
  )

const ask = (message: string): Effect.Effect<Redacted.Redacted<string>, Terminal.QuitException, Terminal.Terminal> =>
  Prompt.hidden({
    message,
    validate: (value) => value.length === 0 ? Effect.fail("a PIN cannot be empty") : Effect.succeed(value)
  })

const none = (what: string, variable: string) =>
  new CliError({
    exitClass: "pin",
    detail: `no ${what}: ${variable} is not set and there is no terminal to ask on`,
    hint: `set ${variable}, or run on a terminal to be asked (the PIN is not echoed)`
  })

const resolve = (
  variable: string,
  what: string,
  message: string
): Effect.Effect<Redacted.Redacted<string>, PinError, Terminal.Terminal> =>
  Effect.flatMap(
    fromEnv(variable),
    (pin): Effect.Effect<Redacted.Redacted<string>, PinError, Terminal.Terminal> =>
      Option.isSome(pin)
        ? Effect.succeed(pin.value)
        : Term.interactive()
        ? ask(message)
        : Effect.fail(none(what, variable))
  )

/** The user PIN: `--pin` (with a warning), else HSM_PIN, else a hidden prompt on a terminal. */
export const userPin = (
  flag: Option.Option<Redacted.Redacted<string>>,
  token: string
): Effect.Effect<Redacted.Redacted<string>, PinError, Terminal.Terminal> =>
  Option.match(flag, {
    onSome: (pin) =>
      Effect.as(
        Output.warn("--pin puts the PIN in your shell's history and in process lists; prefer HSM_PIN or the prompt"),
        pin
      ),
    onNone: () => resolve("HSM_PIN", "user PIN", `User PIN of token "${token}"`)
  })

/** The security officer's PIN: HSM_SO_PIN, else a hidden prompt. */
export const soPin = (token: string): Effect.Effect<Redacted.Redacted<string>, PinError, Terminal.Terminal> =>
  resolve("HSM_SO_PIN", "SO PIN", `Security officer PIN of token "${token}"`)

const samePin = Redacted.getEquivalence(Equivalence.string)

/** A new PIN: HSM_NEW_PIN, else asked twice on a terminal, the two answers compared. */
export const newPin = (
  whose: string,
  token: string
): Effect.Effect<Redacted.Redacted<string>, PinError, Terminal.Terminal> =>
  Effect.flatMap(fromEnv("HSM_NEW_PIN"), (pin) => {
    if (Option.isSome(pin)) return Effect.succeed(pin.value)
    if (!Term.interactive()) return Effect.fail(none(`new ${whose}`, "HSM_NEW_PIN"))
    return Effect.gen(function*() {
      const first = yield* ask(`New ${whose} of token "${token}"`)
      const second = yield* ask(`Repeat the new ${whose}`)
      if (!samePin(first, second)) {
        return yield* new CliError({
          exitClass: "pin",
          detail: `the two new ${whose}s differ; nothing was changed`,
          hint: "run the command again and type the same PIN twice"
        })
      }
      return first
    })
  })
