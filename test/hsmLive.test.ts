/**
 * HsmLive from environment variables against SoftHSM2, and the one-shot hsmSession. A distinctive PIN
 * is watched for in every log line, error message and serialized value.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { HsmLive, NodePkcs11 } from "@hsmkey/node"
import { SoftHsm } from "@hsmkey/softhsm"
import { Cause, ConfigProvider, Duration, Effect, Exit, Layer, Logger, LogLevel, Redacted } from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import { softHsmAvailable } from "./support/softhsm.js"

const PIN = "Zq7-distinctive-PIN-3141"
const WRONG = "Wx9-wrong-PIN-2718"

/** Every log line at every level, for the test to read. */
const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
    lines.push(
      `${logLevel.label} ${JSON.stringify(message)} ${Cause.pretty(cause)} ${JSON.stringify([...annotations])}`
    )
  })
  return {
    lines,
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  }
}

const withEnv = <A, E, R>(env: Record<string, string | undefined>, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]))
      for (const [key, value] of Object.entries(env)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
      return saved
    }),
    () => effect,
    (saved) =>
      Effect.sync(() => {
        for (const [key, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[key]
          else process.env[key] = value
        }
      })
  )

const fromMap = (entries: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(entries)))

describe.skipIf(!softHsmAvailable)("HsmLive on SoftHSM2", () => {
  layer(SoftHsm.layer({ tokenLabel: "hsmlive", userPin: Redacted.make(PIN) }))((it) => {
    it.effect("builds from HSM_* variables, lends logged-in sessions, and logs no PIN", () =>
      Effect.gen(function*() {
        const token = yield* SoftHsm.Token
        const logs = capture()
        const state = yield* withEnv(
          {
            HSM_MODULE: token.modulePath,
            HSM_TOKEN: token.label,
            HSM_TOKEN_SERIAL: undefined,
            HSM_PIN: PIN,
            HSM_POOL_SIZE: "2",
            HSM_ACQUIRE_TIMEOUT: "5 seconds"
          },
          Effect.gen(function*() {
            yield* Effect.logDebug("under HsmLive")
            // A private key is made and used only in a logged-in session.
            const key = yield* HsmJwk.generate({ type: "P-256", label: "hsmlive-key" })
            const jws = yield* Jws.sign("signed under HsmLive", key)
            yield* Jws.verify(jws, key)
            return (yield* SessionPool.SessionPool).token.label
          }).pipe(Effect.provide(HsmLive.layer), Effect.provide(logs.layer))
        )
        assert.strictEqual(state, token.label)
        assert.isAbove(logs.lines.length, 0)
        for (const line of logs.lines) assert.notInclude(line, PIN)
      }))

    it.effect("finds the token by serial number; without HSM_MODULE it fails with a ConfigError naming it", () =>
      Effect.gen(function*() {
        const token = yield* SoftHsm.Token
        const pool = yield* SessionPool.SessionPool.pipe(
          Effect.provide(HsmLive.layer),
          Effect.withConfigProvider(
            fromMap({ HSM_MODULE: token.modulePath, HSM_TOKEN_SERIAL: token.serialNumber, HSM_PIN: PIN })
          )
        )
        assert.strictEqual(pool.token.label, token.label)
        assert.strictEqual(pool.token.moduleId, token.modulePath)
        const unset = yield* SessionPool.SessionPool.pipe(
          Effect.provide(HsmLive.layer),
          Effect.withConfigProvider(fromMap({ HSM_TOKEN_SERIAL: token.serialNumber, HSM_PIN: PIN })),
          Effect.flip
        )
        assert.strictEqual(unset._tag, "ConfigError")
        assert.include(String(unset), "HSM_MODULE")
        assert.include(String(unset), "SoftHsm.findModule")
      }))

    it.effect("a wrong PIN fails typed, and neither message, JSON nor cause shows it", () =>
      Effect.gen(function*() {
        const token = yield* SoftHsm.Token
        const logs = capture()
        const exit = yield* SessionPool.SessionPool.pipe(
          Effect.provide(HsmLive.layer),
          Effect.withConfigProvider(fromMap({ HSM_MODULE: token.modulePath, HSM_TOKEN: token.label, HSM_PIN: WRONG })),
          Effect.provide(logs.layer),
          Effect.exit
        )
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const [error] = Cause.failures(exit.cause)
          assert.strictEqual(error._tag, "PinIncorrect")
          for (const text of [error.message, JSON.stringify(error), String(error), Cause.pretty(exit.cause)]) {
            assert.notInclude(text, WRONG)
            assert.notInclude(text, PIN)
          }
        }
        for (const line of logs.lines) assert.notInclude(line, WRONG)
      }))

    it.effect("hsmSession: one session in context for a whole program, with its own pool, all undone after", () =>
      Effect.gen(function*() {
        const token = yield* SoftHsm.Token
        const stats = yield* Effect.gen(function*() {
          const pool = yield* SessionPool.SessionPool
          // Every operation of the program runs in the one session, concurrent ones in turn.
          const key = yield* HsmJwk.generate({ type: "P-256", label: "one-shot" })
          const signed = yield* Effect.all(
            Array.from({ length: 8 }, (_, i) => Jws.sign(`payload ${i}`, key)),
            { concurrency: "unbounded" }
          )
          for (const jws of signed) yield* Jws.verify(jws, key)
          return yield* pool.stats
        }).pipe(
          Effect.provide(HsmLive.hsmSession({
            modulePath: token.modulePath,
            tokenLabel: token.label,
            userPin: token.userPin,
            rw: true
          }))
        )
        assert.deepInclude(stats, { open: 1, leased: 1 })
        const status = yield* NodePkcs11.moduleStatus(token.modulePath)
        assert.strictEqual(status.references, 1)
      }))
  })
})

describe("HsmLive configuration", () => {
  const failure = (entries: Record<string, string>) =>
    Effect.gen(function*() {
      const exit = yield* HsmLive.config.pipe(Effect.withConfigProvider(fromMap(entries)), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      return Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
    })

  it.effect("names the variable that is missing or malformed (an empty one counts as unset)", () =>
    Effect.gen(function*() {
      assert.include(yield* failure({}), "HSM_TOKEN")
      assert.include(yield* failure({ HSM_TOKEN: "t" }), "HSM_MODULE")
      assert.include(yield* failure({ HSM_TOKEN: "t", HSM_MODULE: "" }), "HSM_MODULE")
      assert.include(yield* failure({ HSM_TOKEN: "t", HSM_TOKEN_SERIAL: "s" }), "HSM_TOKEN_SERIAL")
      assert.include(yield* failure({ HSM_TOKEN: "t", HSM_POOL_SIZE: "many" }), "HSM_POOL_SIZE")
      assert.include(yield* failure({ HSM_TOKEN: "t", HSM_POOL_SIZE: "0" }), "HSM_POOL_SIZE")
      assert.include(yield* failure({ HSM_TOKEN: "t", HSM_ACQUIRE_TIMEOUT: "soon" }), "HSM_ACQUIRE_TIMEOUT")
      assert.include(yield* failure({ HSM_TOKEN: "t", HSM_LOGIN_ON_FINAL_TRY: "yes" }), "HSM_LOGIN_ON_FINAL_TRY")
      assert.include(yield* failure({ HSM_TOKEN: "", HSM_TOKEN_SERIAL: "" }), "HSM_TOKEN")
    }))

  it.effect("an empty variable counts as unset, the PIN included", () =>
    Effect.gen(function*() {
      const config = yield* HsmLive.config.pipe(
        Effect.withConfigProvider(fromMap({
          HSM_MODULE: "/opt/hsm/lib.so",
          HSM_TOKEN: "",
          HSM_TOKEN_SERIAL: "0a1b",
          HSM_PIN: "",
          HSM_POOL_SIZE: "",
          HSM_ACQUIRE_TIMEOUT: "",
          HSM_LOGIN_ON_FINAL_TRY: ""
        }))
      )
      assert.deepStrictEqual(config, {
        modulePath: "/opt/hsm/lib.so",
        tokenLabel: undefined,
        tokenSerial: "0a1b",
        userPin: undefined,
        maxSessions: undefined,
        acquireTimeout: undefined,
        loginOnFinalTry: undefined
      })
    }))

  it.effect("reads every variable, and the PIN stays redacted when the configuration is printed", () =>
    Effect.gen(function*() {
      const config = yield* HsmLive.config.pipe(
        Effect.withConfigProvider(fromMap({
          HSM_MODULE: "/opt/hsm/lib.so",
          HSM_TOKEN: "prod",
          HSM_PIN: PIN,
          HSM_POOL_SIZE: "3",
          HSM_ACQUIRE_TIMEOUT: "2 seconds",
          HSM_LOGIN_ON_FINAL_TRY: "true"
        }))
      )
      assert.isTrue(config.loginOnFinalTry)
      assert.strictEqual(config.modulePath, "/opt/hsm/lib.so")
      assert.strictEqual(config.tokenLabel, "prod")
      assert.isUndefined(config.tokenSerial)
      assert.strictEqual(config.maxSessions, 3)
      assert.deepStrictEqual(config.acquireTimeout, Duration.seconds(2))
      assert.strictEqual(Redacted.value(config.userPin!), PIN)
      for (const text of [JSON.stringify(config), String(config.userPin), `${JSON.stringify({ config })}`]) {
        assert.notInclude(text, PIN)
      }
    }))
})
