import * as Options from "@effect/cli/Options"
import type * as Terminal from "@effect/platform/Terminal"
import * as NodePkcs11 from "@hsmkey/node/NodePkcs11"
import { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import type { ModuleLoadFailed, Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Capabilities from "hsmkey/Capabilities"
import type * as HsmError from "hsmkey/HsmError"
import * as SessionPool from "hsmkey/SessionPool"
import { CliError } from "../CliError.js"
import * as Pin from "./pin.js"

/** Names a token by exactly one of its label and its serial number. */
export type TokenSelector =
  | { readonly tokenLabel: string; readonly tokenSerial?: undefined }
  | { readonly tokenSerial: string; readonly tokenLabel?: undefined }

/** Where the token is: the library, and which of its tokens. */
export interface Connection {
  readonly module: Option.Option<string>
  readonly token: Option.Option<TokenSelector>
}

// An empty variable counts as unset, as HsmLive reads them.
const variable = (name: string): Config.Config<string> =>
  Config.mapOrFail(
    Config.string(name),
    (value) => value === "" ? Either.left(ConfigError.MissingData([name], `${name} is empty`)) : Either.right(value)
  )

const tokenFromEnv: Config.Config<TokenSelector> = Config.mapOrFail(
  Config.all({ label: Config.option(variable("HSM_TOKEN")), serial: Config.option(variable("HSM_TOKEN_SERIAL")) }),
  ({ label, serial }): Either.Either<TokenSelector, ConfigError.ConfigError> =>
    Option.isSome(label) && Option.isSome(serial)
      ? Either.left(ConfigError.InvalidData(["HSM_TOKEN"], "set HSM_TOKEN or HSM_TOKEN_SERIAL, not both"))
      : Option.isSome(label)
      ? Either.right({ tokenLabel: label.value })
      : Option.isSome(serial)
      ? Either.right({ tokenSerial: serial.value })
      : Either.left(ConfigError.MissingData(["HSM_TOKEN"], "HSM_TOKEN and HSM_TOKEN_SERIAL are unset"))
)

/** `--module`, else HSM_MODULE. */
export const moduleOption: Options.Options<Option.Option<string>> = Options.text("module").pipe(
  Options.withDescription("The PKCS#11 library, such as /usr/lib/softhsm/libsofthsm2.so (default: HSM_MODULE)"),
  Options.withFallbackConfig(variable("HSM_MODULE")),
  Options.optional
)

const tokenFlags: Options.Options<TokenSelector> = Options.orElse(
  Options.text("token").pipe(
    Options.withDescription("The token's label (default: HSM_TOKEN)"),
    Options.map((tokenLabel): TokenSelector => ({ tokenLabel }))
  ),
  Options.text("serial").pipe(
    Options.withDescription("The token's serial number, instead of its label (default: HSM_TOKEN_SERIAL)"),
    Options.map((tokenSerial): TokenSelector => ({ tokenSerial }))
  )
)

/** `--token` or `--serial`, else HSM_TOKEN or HSM_TOKEN_SERIAL: flags win over the environment. */
export const tokenOption: Options.Options<Option.Option<TokenSelector>> = tokenFlags.pipe(
  Options.withFallbackConfig(tokenFromEnv),
  Options.optional
)

/** The library and the token. */
export const options: Options.Options<Connection> = Options.all({ module: moduleOption, token: tokenOption })

const noModule = new CliError({
  exitClass: "configuration",
  detail: "no PKCS#11 library named",
  hint: "pass --module PATH or set HSM_MODULE (SoftHSM2: apt-get install softhsm2, then " +
    "/usr/lib/softhsm/libsofthsm2.so)"
})

/** The library, loaded for the scope. */
export const library = (
  module: Option.Option<string>
): Effect.Effect<Pkcs11.Service, CliError | ModuleLoadFailed, Scope.Scope> =>
  Option.match(module, {
    onNone: () => Effect.fail(noModule),
    onSome: (modulePath) => NodePkcs11.make({ modulePath })
  })

const labelsPresent = (pkcs11: Pkcs11.Service): Effect.Effect<ReadonlyArray<string>, Pkcs11Failure> =>
  Effect.flatMap(
    pkcs11.slots({ tokenPresent: true }),
    (slots) =>
      Effect.map(
        Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot)),
        (infos) => infos.filter((info) => info.initialized).map((info) => info.label)
      )
  )

/** The token asked for, or a failure that lists the tokens there are. */
export const selector = (
  pkcs11: Pkcs11.Service,
  token: Option.Option<TokenSelector>
): Effect.Effect<TokenSelector, CliError | Pkcs11Failure> =>
  Option.match(token, {
    onSome: Effect.succeed,
    onNone: () =>
      Effect.flatMap(labelsPresent(pkcs11), (labels) =>
        Effect.fail(
          new CliError({
            exitClass: "configuration",
            detail: `no token named; present: ${
              labels.length === 0 ? "no initialized token" : labels.map((label) => `"${label}"`).join(", ")
            }`,
            hint: "name it with --token LABEL or --serial SERIAL (HSM_TOKEN, HSM_TOKEN_SERIAL)"
          })
        ))
  })

/** What connecting to a token can fail with. */
export type ConnectError =
  | CliError
  | ModuleLoadFailed
  | Pkcs11Failure
  | HsmError.InvalidOptions
  | HsmError.TokenNotFound
  | HsmError.TokenAmbiguous

/** Loads the library and finds the token (with its capabilities), for the scope. */
export const token = (
  connection: Connection
): Effect.Effect<
  { readonly pkcs11: Pkcs11.Service; readonly selector: TokenSelector; readonly label: string },
  ConnectError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const pkcs11 = yield* library(connection.module)
    const chosen = yield* selector(pkcs11, connection.token)
    // Found before a PIN is asked for: a token that is not there fails first, listing those that are.
    const capabilities = yield* Effect.provideService(Capabilities.ofToken(chosen), Pkcs11, pkcs11)
    return { pkcs11, selector: chosen, label: capabilities.token.label }
  })

/**
 * Runs `use` with a `SessionPool` logged in on the token (and its `Pkcs11`), closing every session and
 * logging out when it ends, however it ends.
 */
export const withPool = <A, E, R>(
  connection: Connection,
  pinFlag: Option.Option<Redacted.Redacted<string>>,
  use: (label: string) => Effect.Effect<A, E, R>
): Effect.Effect<
  A,
  E | ConnectError | Pin.PinError | SessionPool.MakeError,
  Exclude<R, SessionPool.SessionPool | Pkcs11> | Terminal.Terminal
> =>
  // The pool and the library are acquired in this scope; what `use` does with a scope of its own is its own.
  Effect.acquireUseRelease(
    Scope.make(),
    (scope) =>
      Effect.gen(function*() {
        const found = yield* Scope.extend(token(connection), scope)
        const userPin = yield* Pin.userPin(pinFlag, found.label)
        const pool = yield* SessionPool.make({
          ...found.selector,
          userPin,
          maxSessions: 4,
          // A command makes a few signatures at most: worker threads would cost more to start than they save.
          signingThreads: 0
        }).pipe(Effect.provideService(Pkcs11, found.pkcs11), Scope.extend(scope))
        return yield* use(found.label).pipe(
          Effect.provide(Context.make(SessionPool.SessionPool, pool).pipe(Context.add(Pkcs11, found.pkcs11)))
        )
      }),
    (scope, exit) => Scope.close(scope, exit)
  )
