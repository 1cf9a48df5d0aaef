/**
 * The production layer, configured from the environment:
 *
 * | variable              | meaning                                                         |
 * | --------------------- | --------------------------------------------------------------- |
 * | `HSM_MODULE`          | the PKCS#11 library (required)                                  |
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
import type { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import type { ModuleLoadFailed } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { CurrentSession } from "hsmkey/HsmSession"
import * as SessionPool from "hsmkey/SessionPool"
import * as NodePkcs11 from "./NodePkcs11.js"

/**
 * Options of the production layer: the library and the pool on one of its tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmLiveOptions extends SessionPool.SessionPoolOptions, NodePkcs11.NodePkcs11Options {}

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
export const config: Config.Config<HsmLiveOptions> = Config.all({
  modulePath: Config.mapOrFail(
    optionalText("HSM_MODULE"),
    (path) =>
      path === undefined
        ? Either.left(
          ConfigError.MissingData(
            ["HSM_MODULE"],
            "Expected HSM_MODULE to be set to the path of the PKCS#11 library (for a SoftHSM2 test token, " +
              "@hsmkey/softhsm's SoftHsm.findModule finds it)"
          )
        )
        : Either.right(path)
  ),
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

/**
 * `Pkcs11` over the library and a `SessionPool` on one of its tokens, with every option read from
 * `Config`: `HsmLive.layerConfig({ modulePath: Config.string("MY_HSM"), tokenLabel: ..., userPin: ... })`.
 *
 * @example
 * ```ts
 * import { HsmLive } from "@hsmkey/node"
 * import { Config } from "effect"
 *
 * // The same layer under this application's own variable names.
 * const Hsm = HsmLive.layerConfig({
 *   modulePath: Config.string("SIGNER_PKCS11_LIBRARY"),
 *   tokenLabel: Config.string("SIGNER_TOKEN"),
 *   userPin: Config.redacted("SIGNER_PIN"),
 *   maxSessions: Config.integer("SIGNER_SESSIONS").pipe(Config.withDefault(4))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<HsmLiveOptions>
): Layer.Layer<SessionPool.SessionPool | Pkcs11, SessionPool.MakeError | ModuleLoadFailed | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const { closeTimeout, concurrency, modulePath, ...pool } = yield* Config.unwrap(options)
    const pkcs11 = NodePkcs11.layer({ modulePath, closeTimeout, concurrency })
    return Layer.provideMerge(SessionPool.layer(pool), pkcs11)
  }))

/**
 * `Pkcs11` and a `SessionPool` configured from the `HSM_*` environment variables.
 *
 * @example
 * ```ts
 * import { HsmLive } from "@hsmkey/node"
 * import { ConfigError, ConfigProvider, Effect } from "effect"
 * import { Jwks } from "hsmkey"
 *
 * // The JWKS of the token that HSM_MODULE, HSM_TOKEN and HSM_PIN name.
 * const program = Jwks.fromToken().pipe(Effect.provide(HsmLive.layer))
 *
 * // Without HSM_MODULE the layer fails with a ConfigError naming it, before it loads anything.
 * const unconfigured = program.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())), Effect.flip)
 *
 * Effect.runPromise(unconfigured).then((error) => assert.ok(ConfigError.isConfigError(error)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  SessionPool.SessionPool | Pkcs11,
  SessionPool.MakeError | ModuleLoadFailed | ConfigError.ConfigError
> = layerConfig(config)

/**
 * Options of a one-shot session: the library, the pool on one of its tokens, and the kind of session.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmSessionOptions extends HsmLiveOptions {
  /** A read/write session (default), or a read-only one (`false`). */
  readonly rw?: boolean | undefined
}

/**
 * One session on a token, in context for the layer's lifetime, with the pool it was lent from and the
 * library under it: for a script or a command that does its work in one session. Every key and JOSE
 * operation of the program runs in that session, one at a time, checked at each use as the pool checks
 * what it lends (a lost login is restored). Closing the layer returns the session, closes the pool
 * (logging out if it logged in) and releases the library.
 *
 * @example
 * ```ts
 * import { HsmLive } from "@hsmkey/node"
 * import { Effect, Redacted } from "effect"
 * import { HsmJwk, Jwks } from "hsmkey"
 *
 * // A provisioning script: its steps share one read/write session.
 * const script = Effect.gen(function*() {
 *   yield* HsmJwk.generate({ type: "P-256", label: "signing-2026" })
 *   return yield* Jwks.fromToken()
 * }).pipe(
 *   Effect.provide(HsmLive.hsmSession({
 *     modulePath: "/usr/lib/softhsm/libsofthsm2.so",
 *     tokenLabel: "issuer",
 *     userPin: Redacted.make("1234")
 *   }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const hsmSession = (
  options: HsmSessionOptions
): Layer.Layer<
  CurrentSession | SessionPool.SessionPool | Pkcs11,
  SessionPool.MakeError | SessionPool.AcquireError | ModuleLoadFailed
> => {
  const { closeTimeout, concurrency, modulePath, rw, ...pool } = options
  const pooled = Layer.provideMerge(
    SessionPool.layer(pool),
    NodePkcs11.layer({ modulePath, closeTimeout, concurrency })
  )
  return Layer.provideMerge(SessionPool.layerSession({ rw: rw !== false }), pooled)
}
