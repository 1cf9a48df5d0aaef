import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Prompt from "@effect/cli/Prompt"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as HsmJwk from "hsmkey/HsmJwk"
import * as SessionPool from "hsmkey/SessionPool"
import type * as jose from "jose"
import * as Crypto from "node:crypto"
import { CliError } from "../CliError.js"
import * as Connection from "./connection.js"
import * as Json from "./jsonOption.js"
import * as KeyOptions from "./keyOptions.js"
import * as Output from "./output.js"
import * as Pin from "./pin.js"
import * as Term from "./terminal.js"

const use = Options.choice("use", ["sig", "enc"]).pipe(
  Options.withDescription("What the key is for: signatures (sig, default) or JWE decryption (enc, RSA only)"),
  Options.optional
)

const alg = Options.text("alg").pipe(
  Options.withDescription("The algorithm the key publishes, such as PS256 for an RSA key (default by key type)"),
  Options.optional
)

const onToken = { connection: Connection.options, pin: Pin.option }

const printKey = (json: boolean, verb: string, key: HsmJwk.HsmJwk) =>
  json ? Output.json(KeyOptions.summary(key)) : Output.line(`${verb} ${KeyOptions.describe(key)}`)

const list = Command.make(
  "list",
  { ...onToken, json: Json.option },
  ({ connection, json, pin }) =>
    Connection.withPool(connection, pin, () =>
      Effect.gen(function*() {
        const keys = yield* HsmJwk.list()
        if (json) return yield* Output.json(keys.map(KeyOptions.summary))
        if (keys.length === 0) return yield* Output.line("no key pairs on the token")
        const rows = keys.map((key) => [
          key.label ?? "",
          KeyOptions.hex(key.id),
          KeyOptions.typeOf(key),
          key.alg,
          key.use,
          key.kid
        ])
        const header = ["LABEL", "ID", "TYPE", "ALG", "USE", "KID"]
        const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)))
        const format = (row: ReadonlyArray<string>) =>
          row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")
        yield* Output.line(format(header))
        for (const row of rows) yield* Output.line(format(row))
      }))
).pipe(Command.withDescription("The key pairs on the token: label, CKA_ID, type, algorithm, use and kid."))

const generate = Command.make(
  "generate",
  {
    ...onToken,
    json: Json.option,
    type: Options.choice("type", HsmJwk.generateTypes).pipe(Options.withDescription("The key type")),
    label: Options.text("label").pipe(Options.withDescription("The new key's label")),
    id: KeyOptions.id,
    use,
    alg
  },
  ({ alg, connection, id, json, label, pin, type, use }) =>
    Connection.withPool(connection, pin, () =>
      Effect.gen(function*() {
        const key = yield* Output.progress(
          `generating ${type} key "${label}" in the token…`,
          HsmJwk.generate({
            type,
            label,
            id: Option.getOrUndefined(id),
            use: Option.getOrUndefined(use),
            alg: Option.getOrUndefined(alg)
          })
        )
        yield* printKey(json, "generated", key)
      }))
).pipe(
  Command.withDescription(
    "Generates a key pair inside the token: the private key is sensitive, not extractable and sign only " +
      "(or decrypt only with --use enc). The CKA_ID defaults to the SHA-1 of the public key."
  )
)

const invalidMaterial = (detail: string) =>
  new CliError({
    exitClass: "usage",
    detail: `cannot read the key file: ${detail}`,
    hint: "give a PEM private key (PKCS#8, PKCS#1 or SEC1), PKCS#8 DER, or a private JWK as JSON"
  })

/** What a key file holds, as `HsmJwk.importPrivate` takes it. Its text is never shown. */
const material = (bytes: Uint8Array): Effect.Effect<HsmJwk.PrivateKeyInput, CliError> =>
  Effect.suspend((): Effect.Effect<HsmJwk.PrivateKeyInput, CliError> => {
    const text = Buffer.from(bytes).toString("utf8").trim()
    if (text.startsWith("{")) {
      return Effect.try({ try: () => JSON.parse(text) as jose.JWK, catch: () => invalidMaterial("invalid JSON") })
    }
    if (text.startsWith("-----BEGIN")) {
      if (text.includes("ENCRYPTED PRIVATE KEY")) {
        return Effect.fail(invalidMaterial("the key is encrypted; decrypt it first (openssl pkcs8)"))
      }
      // PKCS#1 and SEC1 keys go through node:crypto; PKCS#8 reaches hsmkey as it is.
      return text.includes("-----BEGIN PRIVATE KEY-----") ? Effect.succeed(text) : Effect.try({
        try: () => Crypto.createPrivateKey({ key: text, format: "pem" }),
        catch: () => invalidMaterial("a PEM block that is no private key")
      })
    }
    return Effect.succeed(bytes)
  })

const importKey = Command.make(
  "import",
  {
    ...onToken,
    json: Json.option,
    file: Options.file("file").pipe(
      Options.withDescription("The private key: PEM (PKCS#8, PKCS#1, SEC1), PKCS#8 DER, or a JWK as JSON")
    ),
    label: Options.text("label").pipe(Options.withDescription("The imported key's label")),
    id: KeyOptions.id,
    use,
    alg
  },
  ({ alg, connection, file, id, json, label, pin, use }) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      // Read and parsed before a PIN is asked for.
      const key = yield* Effect.flatMap(fs.readFile(file), material)
      yield* Connection.withPool(connection, pin, () =>
        Effect.flatMap(
          HsmJwk.importPrivate({
            key,
            label,
            id: Option.getOrUndefined(id),
            use: Option.getOrUndefined(use),
            alg: Option.getOrUndefined(alg)
          }),
          (imported) => printKey(json, "imported", imported)
        ))
    })
).pipe(
  Command.withDescription(
    "Imports a private key into the token, with the protections of a generated one; its public half becomes " +
      "a public object. The file is read and checked before anything reaches the token."
  )
)

const exportKey = Command.make(
  "export",
  {
    ...onToken,
    json: Json.option,
    key: KeyOptions.reference,
    format: Options.choice("format", ["jwk", "pem"]).pipe(
      Options.withDescription("jwk: the public JWK as the JWKS publishes it; pem: the SubjectPublicKeyInfo"),
      Options.withDefault("jwk")
    )
  },
  ({ connection, format, json, key, pin }) =>
    Effect.gen(function*() {
      const reference = yield* KeyOptions.toLoadOptions(key)
      yield* Connection.withPool(connection, pin, () =>
        Effect.gen(function*() {
          const loaded = yield* HsmJwk.fromHsm(reference)
          if (format === "jwk") return yield* Output.json(loaded.publicJwk)
          const pem = HsmJwk.toPem(loaded)
          return yield* json ? Output.json({ pem }) : Output.line(pem.trimEnd())
        }))
    })
).pipe(Command.withDescription("Prints a key's public half: its JWK (exactly as `hsmkey jwks` has it) or its PEM."))

const destroy = Command.make(
  "destroy",
  {
    ...onToken,
    json: Json.option,
    key: KeyOptions.reference,
    yes: Options.boolean("yes").pipe(
      Options.withAlias("y"),
      Options.withDescription("Destroy without asking (required when not on a terminal)")
    )
  },
  ({ connection, json, key, pin, yes }) =>
    Effect.gen(function*() {
      const reference = yield* KeyOptions.toLoadOptions(key)
      if (!yes && !Term.interactive()) {
        return yield* new CliError({
          exitClass: "usage",
          detail: "refusing to destroy a key without confirmation: not on a terminal",
          hint: "add --yes to destroy it"
        })
      }
      yield* Connection.withPool(connection, pin, (token) =>
        Effect.gen(function*() {
          const loaded = yield* HsmJwk.fromHsm(reference)
          if (!yes) {
            const sure = yield* Prompt.confirm({
              message: `Destroy ${KeyOptions.describe(loaded)} on token "${token}"? This cannot be undone`,
              initial: false
            })
            if (!sure) return yield* Output.note("hsmkey: nothing destroyed")
          }
          yield* SessionPool.withSession(HsmJwk.destroy(loaded), { rw: true })
          yield* json ? Output.json({ destroyed: KeyOptions.summary(loaded) }) : Output.line(
            `destroyed ${KeyOptions.describe(loaded)}`
          )
        }))
    })
).pipe(
  Command.withDescription(
    "Destroys a key pair on the token, once its private key is proven to be the one named. Asks first on a " +
      "terminal; elsewhere it needs --yes."
  )
)

/** `hsmkey keys ...` */
export const command = Command.make("keys").pipe(
  Command.withDescription("Key pairs on the token: list, generate, import, export, destroy."),
  Command.withSubcommands([list, generate, importKey, exportKey, destroy])
)
