import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as HsmJwk from "hsmkey/HsmJwk"
import * as Jws from "hsmkey/Jws"
import * as Jwt from "hsmkey/Jwt"
import * as jose from "jose"
import { CliError } from "../CliError.js"
import * as Connection from "./connection.js"
import * as Input from "./input.js"
import * as Json from "./jsonOption.js"
import * as KeyOptions from "./keyOptions.js"
import * as Output from "./output.js"
import * as Pin from "./pin.js"

const key: Options.Options<KeyOptions.KeyReference> = Options.all({
  label: Options.text("key").pipe(Options.withDescription("The signing key's label"), Options.optional),
  id: KeyOptions.id
})

const alg = Options.text("alg").pipe(
  Options.withDescription("The JWS algorithm, such as PS256 with an RSA key (default: the key's own)"),
  Options.optional
)

const onToken = { connection: Connection.options, pin: Pin.option, json: Json.option, key, alg }

const nothingToSign = (what: string, flag: string) =>
  new CliError({
    exitClass: "usage",
    detail: `no ${what} to sign`,
    hint: `pass ${flag}, or pipe it on stdin`
  })

const signing = <E, R>(
  options: {
    readonly connection: Connection.Connection
    readonly pin: Option.Option<Redacted.Redacted<string>>
    readonly key: KeyOptions.KeyReference
    readonly alg: Option.Option<string>
    readonly json: boolean
  },
  sign: (key: HsmJwk.HsmJwk, alg: string | undefined) => Effect.Effect<string, E, R>
) =>
  Effect.flatMap(
    KeyOptions.toLoadOptions(options.key, "--key"),
    (reference) =>
      Connection.withPool(options.connection, options.pin, () =>
        Effect.gen(function*() {
          const loaded = yield* HsmJwk.fromHsm(reference)
          const token = yield* sign(loaded, Option.getOrUndefined(options.alg))
          if (!options.json) return yield* Output.line(token)
          const header = jose.decodeProtectedHeader(token)
          yield* Output.json({ token, alg: header.alg, kid: header.kid ?? null, keyLabel: loaded.label ?? null })
        }))
  )

const jws = Command.make(
  "jws",
  {
    ...onToken,
    payload: Options.text("payload").pipe(
      Options.withDescription("The payload, as text (default: stdin, as bytes)"),
      Options.optional
    )
  },
  (options) =>
    Effect.gen(function*() {
      const payload = Option.isSome(options.payload) ? options.payload.value : yield* Input.stdin
      if (payload === undefined) return yield* nothingToSign("payload", "--payload TEXT")
      yield* signing(options, (key, alg) => Jws.sign(payload, key, { alg }))
    })
).pipe(Command.withDescription(
  "Signs a payload in the token and prints the compact JWS (with --json: its token, alg, kid and key label)."
))

const duration = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withDescription(description),
    Options.mapEffect((text) =>
      Option.match(Duration.decodeUnknown(/^\d+$/.test(text) ? Number(text) * 1000 : text), {
        onNone: () =>
          Effect.fail(
            ValidationError.invalidValue(
              HelpDoc.p(`--${name} takes a duration such as "5 minutes" or a number of seconds, not "${text}"`)
            )
          ),
        onSome: Effect.succeed
      })
    ),
    Options.optional
  )

const jwt = Command.make(
  "jwt",
  {
    ...onToken,
    claims: Options.text("claims").pipe(
      Options.withDescription("The claims, as a JSON object (default: stdin)"),
      Options.optional
    ),
    expiresIn: duration("expires-in", "Sets exp this long from now: \"5 minutes\", \"1 hour\", or seconds"),
    issuer: Options.text("issuer").pipe(Options.withDescription("Sets iss"), Options.optional),
    subject: Options.text("subject").pipe(Options.withDescription("Sets sub"), Options.optional),
    audience: Options.text("audience").pipe(Options.withDescription("Adds an aud (repeatable)"), Options.repeated)
  },
  (options) =>
    Effect.gen(function*() {
      const text = Option.isSome(options.claims)
        ? options.claims.value
        : yield* Effect.map(Input.stdin, (bytes) => bytes === undefined ? undefined : Buffer.from(bytes).toString())
      if (text === undefined) return yield* nothingToSign("claims", "--claims JSON")
      const claims = yield* Input.parseJson(text, Option.isSome(options.claims) ? "--claims" : "stdin")
      yield* signing(options, (key, alg) =>
        Jwt.sign(claims, key, {
          alg,
          expiresIn: Option.getOrUndefined(options.expiresIn),
          issuer: Option.getOrUndefined(options.issuer),
          subject: Option.getOrUndefined(options.subject),
          audience: options.audience.length === 0
            ? undefined
            : options.audience.length === 1
            ? options.audience[0]
            : options.audience
        }))
    })
).pipe(Command.withDescription(
  "Signs JWT claims in the token and prints the compact JWT, iat set (with --json: its token, alg, kid and key " +
    "label)."
))

/** `hsmkey sign jws|jwt` */
export const command = Command.make("sign").pipe(
  Command.withDescription("Signs a JWS or a JWT with a key of the token; prints the compact token on stdout."),
  Command.withSubcommands([jws, jwt])
)
