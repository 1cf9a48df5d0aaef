/**
 * The production layer, configured from the environment:
 *
 * | variable              | meaning                                                         |
 * | --------------------- | --------------------------------------------------------------- |
 * | `HSM_MODULE`          | the PKCS#11 library; default: the SoftHSM2 library of the machine |
 * | `HSM_TOKEN`           | the token's label, or                                           |
 * | `HSM_TOKEN_SERIAL`    | its serial number (exactly one of the two)                      |
 * | `HSM_PIN`             | the user PIN (optional: public sessions only without it)        |
 * | `HSM_POOL_SIZE`       | sessions held open at most (default 8)                          |
 * | `HSM_ACQUIRE_TIMEOUT` | how long to wait for a session, such as `10 seconds` (default 30 s) |
 * | `HSM_LOGIN_ON_FINAL_TRY` | `true` to log in even when one more wrong PIN locks the token (default `false`) |
 *
 * A missing or malformed variable fails the layer with a `ConfigError` that names it; a variable set to
 * the empty string counts as unset.
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePkcs11 from "@hsmkey/pkcs11/NodePkcs11"
import type { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import * as SoftHsm from "@hsmkey/softhsm/SoftHsm"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { HsmError } from "./HsmError.js"
import * as SessionPool from "./SessionPool.js"

/**
 * What the environment configures.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmLiveConfig extends SessionPool.SessionPoolOptions {
  /** `undefined` when `HSM_MODULE` is not set: the SoftHSM2 library of the machine is used. */
  readonly modulePath: string | undefined
}

// An empty variable counts as unset: env files and shells write `HSM_PIN=` to mean "none".
const optionalText = (name: string) => Config.map(Config.option(Config.nonEmptyString(name)), Option.getOrUndefined)

const optionalParsed = <A>(name: string, expected: string, parse: (text: string) => Option.Option<A>) =>
  Config.mapOrFail(
    optionalText(name),
    (text): Either.Either<A | undefined, ConfigError.ConfigError> =>
      text === undefined
        ? Either.right(undefined)
        : Either.fromOption(parse(text), () => ConfigError.InvalidData([name], `Expected ${expected}, not "${text}"`))
  )

const token = Config.all({
  label: optionalText("HSM_TOKEN"),
  serial: optionalText("HSM_TOKEN_SERIAL")
}).pipe(
  Config.mapOrFail(({ label, serial }) => {
    if (label !== undefined && serial !== undefined) {
      return Either.left(
        ConfigError.InvalidData(["HSM_TOKEN"], "Set HSM_TOKEN or HSM_TOKEN_SERIAL, not both")
      )
    }
    if (label === undefined && serial === undefined) {
      return Either.left(
        ConfigError.MissingData(["HSM_TOKEN"], "Expected HSM_TOKEN (the token label) or HSM_TOKEN_SERIAL to be set")
      )
    }
    return Either.right({ tokenLabel: label, tokenSerial: serial })
  })
)

const poolSize = optionalParsed(
  "HSM_POOL_SIZE",
  "a positive integer",
  (text) => /^[1-9][0-9]*$/.test(text) ? Option.some(Number(text)) : Option.none()
)

/**
 * The configuration read from `HSM_*` variables.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<HsmLiveConfig> = Config.all({
  modulePath: optionalText("HSM_MODULE"),
  token,
  userPin: Config.map(optionalText("HSM_PIN"), (pin) => pin === undefined ? undefined : Redacted.make(pin)),
  maxSessions: poolSize,
  acquireTimeout: optionalParsed("HSM_ACQUIRE_TIMEOUT", "a duration such as \"10 seconds\"", Duration.decodeUnknown),
  loginOnFinalTry: optionalParsed(
    "HSM_LOGIN_ON_FINAL_TRY",
    "true or false",
    (text) => text === "true" ? Option.some(true) : text === "false" ? Option.some(false) : Option.none()
  )
}).pipe(
  Config.map(({ token, ...rest }) => ({ ...rest, ...token }))
)

const modulePathOf = (configured: string | undefined) =>
  configured !== undefined
    ? Effect.succeed(configured)
    : SoftHsm.findModule.pipe(
      Effect.provide(NodeFileSystem.layer),
      Effect.mapError((error) =>
        ConfigError.MissingData(["HSM_MODULE"], `Expected HSM_MODULE to be set: ${error.detail}`)
      )
    )

/**
 * `Pkcs11` and a `SessionPool` from an `HsmLiveConfig`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<HsmLiveConfig>
): Layer.Layer<SessionPool.SessionPool | Pkcs11, HsmError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const { modulePath, ...pool } = yield* options
    const pkcs11 = NodePkcs11.layer({ modulePath: yield* modulePathOf(modulePath) })
    return Layer.provideMerge(SessionPool.layer(pool), pkcs11)
  }))

/**
 * `Pkcs11` and a `SessionPool` configured from the `HSM_*` environment variables.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<SessionPool.SessionPool | Pkcs11, HsmError | ConfigError.ConfigError> = layerConfig(
  config
)
