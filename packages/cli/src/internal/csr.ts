import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Csr from "@hsmkey/x509/Csr"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as HsmJwk from "hsmkey/HsmJwk"
import * as Connection from "./connection.js"
import * as Json from "./jsonOption.js"
import * as KeyOptions from "./keyOptions.js"
import * as Output from "./output.js"
import * as Pin from "./pin.js"

/** `hsmkey csr` */
export const command = Command.make(
  "csr",
  {
    connection: Connection.options,
    pin: Pin.option,
    json: Json.option,
    key: Options.all({
      label: Options.text("key").pipe(Options.withDescription("The key's label"), Options.optional),
      id: KeyOptions.id
    }),
    subject: Options.text("subject").pipe(
      Options.withDescription("The subject, as RFC 4514 text: \"CN=api.example.com,O=Example,C=DE\"")
    ),
    san: Options.text("san").pipe(
      Options.withDescription("A subjectAltName, repeatable: DNS:host, IP:address, email:address, URI:uri"),
      Options.repeated
    ),
    alg: Options.text("alg").pipe(
      Options.withDescription("The signature algorithm, such as PS256 (default: the key's own)"),
      Options.optional
    )
  },
  ({ alg, connection, json, key, pin, san, subject }) =>
    Effect.flatMap(
      KeyOptions.toLoadOptions(key, "--key"),
      (reference) =>
        Connection.withPool(connection, pin, () =>
          Effect.gen(function*() {
            const loaded = yield* HsmJwk.fromHsm(reference)
            const csr = yield* Csr.create({
              key: loaded,
              subject,
              subjectAltNames: san,
              alg: Option.getOrUndefined(alg)
            })
            if (json) {
              return yield* Output.json({
                pem: csr.pem,
                subject: csr.subject,
                subjectAltNames: csr.subjectAltNames,
                alg: csr.alg,
                kid: csr.kid
              })
            }
            yield* Output.line(csr.pem.trimEnd())
          }))
    )
).pipe(
  Command.withDescription(
    "Makes a PKCS#10 certificate signing request for a key of the token, signed inside it, and prints its PEM " +
      "(for openssl req, or a CA)."
  )
)
