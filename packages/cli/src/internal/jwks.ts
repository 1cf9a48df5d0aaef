import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Jwks from "hsmkey/Jwks"
import * as Connection from "./connection.js"
import * as Json from "./jsonOption.js"
import * as Output from "./output.js"
import * as Pin from "./pin.js"

/** `hsmkey jwks` */
export const command = Command.make(
  "jwks",
  { connection: Connection.options, pin: Pin.option, json: Json.option },
  ({ connection, pin }) => Connection.withPool(connection, pin, () => Effect.flatMap(Jwks.fromToken(), Output.json))
).pipe(
  Command.withDescription(
    "Prints the token's JWK set: the public JWK of every key pair, as a relying party fetches it. It is JSON " +
      "with or without --json."
  )
)
