import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import * as Effect from "effect/Effect"
import * as Provisioning from "hsmkey/Provisioning"
import * as Connection from "./connection.js"
import * as Output from "./output.js"
import * as Pin from "./pin.js"

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
      yield* Provisioning.changePin({ ...found.selector, userType: so ? "so" : "user", oldPin, newPin }).pipe(
        Effect.provideService(Pkcs11, found.pkcs11)
      )
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
      yield* Provisioning.initUserPin({ ...found.selector, soPin, userPin }).pipe(
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
