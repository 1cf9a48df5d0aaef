import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import type { PinIncorrect, PinLocked } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Provisioning from "hsmkey/Provisioning"
import { CliError } from "../CliError.js"
import * as Connection from "./connection.js"
import * as Output from "./output.js"
import * as Pin from "./pin.js"

/**
 * hsmkey's PIN errors do not say whose PIN it was, and their hints speak of the user PIN (--pin, HSM_PIN,
 * `pin init`): where the SO logs in, the advice is about the SO PIN.
 */
const asSoLogin = <A, R>(
  effect: Effect.Effect<A, Provisioning.ProvisioningError, R>,
  token: string
): Effect.Effect<A, Provisioning.ProvisioningError | CliError, R> =>
  Effect.catchIf(
    effect,
    (error): error is PinIncorrect | PinLocked =>
      error._tag === "PinIncorrect" || (error._tag === "PinLocked" && error.reason === "locked"),
    (error) =>
      Effect.fail(
        error._tag === "PinIncorrect"
          ? new CliError({
            exitClass: "pin",
            detail: `SO PIN rejected by token "${token}" (${error.method}); it may count towards a lockout, so it ` +
              "is not retried",
            hint: "check the SO PIN (HSM_SO_PIN or the prompt) before trying again: the token counts failed SO " +
              "logins and may lock the SO PIN"
          })
          : new CliError({
            exitClass: "pin",
            detail: `the SO PIN of token "${token}" is locked (${error.method})`,
            hint: "no PIN can unlock it: only re-initializing the token with its vendor's tool recovers it, and " +
              "that destroys every key on it"
          })
      )
  )

const change = Command.make(
  "change",
  {
    connection: Connection.options,
    pin: Pin.option,
    so: Options.boolean("so").pipe(Options.withDescription("Change the security officer's PIN (from HSM_SO_PIN)"))
  },
  ({ connection, pin, so }) =>
    Effect.scoped(Effect.gen(function*() {
      const found = yield* Connection.token(connection)
      const whose = so ? "SO PIN" : "user PIN"
      const oldPin = so ? yield* Pin.soPin(found.label) : yield* Pin.userPin(pin, found.label)
      const newPin = yield* Pin.newPin(whose, found.label)
      const changed = Provisioning.changePin({ ...found.selector, userType: so ? "so" : "user", oldPin, newPin })
      yield* (so ? asSoLogin(changed, found.label) : changed).pipe(Effect.provideService(Pkcs11, found.pkcs11))
      yield* Output.line(`changed the ${whose} of token "${found.label}"`)
    }))
).pipe(
  Command.withDescription(
    "Changes the user PIN (or with --so the SO PIN): the current one from HSM_PIN (HSM_SO_PIN) or a prompt, " +
      "the new one from HSM_NEW_PIN or a prompt that asks twice. No PIN is ever echoed."
  )
)

const init = Command.make(
  "init",
  { connection: Connection.options },
  ({ connection }) =>
    Effect.scoped(Effect.gen(function*() {
      const found = yield* Connection.token(connection)
      const soPin = yield* Pin.soPin(found.label)
      const userPin = yield* Pin.newPin("user PIN", found.label)
      yield* asSoLogin(Provisioning.initUserPin({ ...found.selector, soPin, userPin }), found.label).pipe(
        Effect.provideService(Pkcs11, found.pkcs11)
      )
      yield* Output.line(`set the user PIN of token "${found.label}"`)
    }))
).pipe(
  Command.withDescription(
    "Sets the user PIN as the security officer (C_InitPIN), for a new token or to unlock a locked PIN: the " +
      "SO PIN from HSM_SO_PIN or a prompt, the new user PIN from HSM_NEW_PIN or a prompt that asks twice."
  )
)

/** `hsmkey pin change|init` */
export const command = Command.make("pin").pipe(
  Command.withDescription("The token's PINs: change one, or set the user PIN as the security officer."),
  Command.withSubcommands([change, init])
)
