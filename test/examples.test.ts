/**
 * The README's main job runs as documented: each example is executed as a user would run it.
 */
import { assert, describe, it } from "@effect/vitest"
import { SoftHsm } from "@hsmkey/softhsm"
import { Context, Effect, Layer, Redacted } from "effect"
import { HsmJwk, SessionPool } from "hsmkey"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { promisify } from "node:util"
import { root, runTs as run } from "./support/child.js"
import { softHsmAvailable, softHsmModule, writeSoftHsmConfig } from "./support/softhsm.js"

describe.skipIf(!softHsmAvailable)("examples", () => {
  it.live("the README's main job (`pnpm demo`, which scripts/demo runs): hsmkey demo on a throwaway token", () =>
    Effect.gen(function*() {
      const { stderr, stdout } = yield* Effect.promise(() =>
        promisify(execFile)("pnpm", ["--silent", "demo"], { cwd: root, timeout: 120_000 })
      )
      assert.strictEqual(stderr, "")
      for (const alg of ["PS256", "ES256", "EdDSA"]) {
        assert.match(stdout, new RegExp(`${alg} +JWT signed in the token, verified by jose: ey`))
      }
      assert.match(stdout, /pool: \d+ session\(s\) open of at most 4, 1 login\(s\), 3 signature\(s\)/)
      const directory = /cleaned up: logged out, token wiped, (\S+) deleted/.exec(stdout)?.[1]
      assert.isDefined(directory)
      assert.isFalse(Fs.existsSync(directory!), "the throwaway directory is deleted")
    }))

  it.live("list-tokens: lists the tokens of the library named by HSM_MODULE", () =>
    Effect.gen(function*() {
      const { config, directory } = writeSoftHsmConfig("hsmkey-example-")
      const { code, stderr, stdout } = yield* run("examples/list-tokens.ts", {
        HSM_MODULE: softHsmModule!,
        SOFTHSM2_CONF: config
      })
      Fs.rmSync(directory, { recursive: true })
      assert.strictEqual(code, 0, stderr)
      assert.match(stdout, /an uninitialized token in slot \d+/)
    }))

  it.live("capabilities: says what a token signs, decrypts and generates, with no PIN", () =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(SoftHsm.layer({ tokenLabel: "capable" }))
      const token = Context.get(context, SoftHsm.Token)
      const { code, stderr, stdout } = yield* run("examples/capabilities.ts", {
        ...token.env,
        HSM_MODULE: token.modulePath,
        HSM_TOKEN: "capable"
      })
      assert.strictEqual(code, 0, stderr)
      assert.include(stdout, "Token \"capable\" (SoftHSM v2)")
      assert.include(stdout, "ES256 with CKM_ECDSA")
      assert.include(stdout, "decrypts: RSA-OAEP\n")
      assert.include(stdout, "Ed448: generated")
    })))

  it.live("list-tokens: a missing HSM_MODULE is a configuration error naming it", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* run("examples/list-tokens.ts", { HSM_MODULE: undefined })
      assert.notStrictEqual(code, 0)
      assert.include(stdout + stderr, "HSM_MODULE")
    }))
})

describe("examples without SoftHSM2", () => {
  it.live("testing-with-memory: an app's own code tested on the emulator, with a preloaded key and a fault", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* run("examples/testing-with-memory.ts")
      assert.strictEqual(code, 0, stderr)
      assert.deepStrictEqual(stdout.trim().split("\n"), [
        "ok - issues a JWT signed by the token's key",
        "ok - a device error on C_Sign reaches the caller as a typed Pkcs11Error",
        "ok - 100 concurrent requests share one login and at most the pool's sessions"
      ])
    }))

  it.live("error-handling: each staged failure is handled by its tag, with what its fields say", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* run("examples/error-handling.ts")
      assert.strictEqual(code, 0, stderr)
      assert.strictEqual(stderr, "", "no warning or log line")
      const lines = stdout.trim().split("\n")
      assert.match(lines[0], /^signing key: {3}200 eyJ/)
      assert.deepStrictEqual(lines.slice(1), [
        "retired key:   404 no key label \"retired\"; keys present: signing",
        "other token:   no token label \"hr\"; tokens present: payments",
        "wrong PIN:     the token refused the PIN (it is never sent again by this process)",
        "token removed: 503 the token was removed; the pool finds it again when it is back"
      ])
    }))
})

const pkcs11Tool = ["/usr/bin/pkcs11-tool", "/usr/local/bin/pkcs11-tool", "/opt/homebrew/bin/pkcs11-tool"].find((
  path
) => Fs.existsSync(path))

/** What a child process needs to reach a throwaway token as an application would: library, token, PIN. */
const childEnv = (token: SoftHsm.Token.Info) => ({
  ...token.env,
  HSM_MODULE: token.modulePath,
  HSM_TOKEN: token.label,
  HSM_PIN: Redacted.value(token.userPin)
})

describe.skipIf(!softHsmAvailable)("examples on a token made for them", () => {
  it.live("quickstart: loads the key labelled \"signing\" and signs a JWS and a JWT that jose verifies", () =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(SoftHsm.layerPool({ tokenLabel: "quickstart" }))
      const key = yield* HsmJwk.generate({ type: "P-256", label: "signing" }).pipe(
        Effect.provideService(SessionPool.SessionPool, Context.get(context, SessionPool.SessionPool))
      )
      const { code, stderr, stdout } = yield* run(
        "examples/quickstart.ts",
        childEnv(Context.get(context, SoftHsm.Token))
      )
      assert.strictEqual(code, 0, stderr)
      assert.deepStrictEqual(stdout.trim().split("\n"), [
        `key ${key.kid} (ES256) on token "quickstart"`,
        "JWS verified by jose: hello from the token",
        "JWT verified by jose: sub=alice scope=read"
      ])
    })))

  it.live.skipIf(pkcs11Tool === undefined)(
    "existing-key: a key pkcs11-tool generated loads by its CKA_ID, publishes it as its kid, and signs",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const token = Context.get(yield* Layer.build(SoftHsm.layer({ tokenLabel: "legacy" })), SoftHsm.Token)
        yield* Effect.promise(() =>
          promisify(execFile)(pkcs11Tool!, [
            "--module",
            token.modulePath,
            "--token-label",
            token.label,
            "--login",
            "--pin",
            Redacted.value(token.userPin),
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "c0ffee",
            "--label",
            "legacy",
            "--usage-sign"
          ], { env: { ...process.env, ...token.env } })
        )
        const { code, stderr, stdout } = yield* run("examples/existing-key.ts", {
          ...childEnv(token),
          HSM_KEY_ID: "c0ffee"
        })
        assert.strictEqual(code, 0, stderr)
        const lines = stdout.trim().split("\n")
        assert.strictEqual(lines[0], "found P-256 key \"legacy\" with CKA_ID c0ffee: alg ES256")
        const jwks = JSON.parse(lines[1])
        assert.deepStrictEqual(Object.keys(jwks.keys[0]).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"])
        assert.strictEqual(jwks.keys[0].kid, "c0ffee")
        assert.include(stdout, "-----BEGIN PUBLIC KEY-----")
        assert.strictEqual(lines.at(-1), "signed a JWT with kid c0ffee; jose verified it")
      }))
  )
})

describe("examples", () => {
  it("every example is run by a test", () => {
    const tests = Fs.readdirSync(Path.join(root, "test")).filter((file) => file.endsWith(".test.ts"))
      .map((file) => Fs.readFileSync(Path.join(root, "test", file), "utf8")).join("\n")
    for (const example of Fs.readdirSync(Path.join(root, "examples"))) {
      assert.include(tests, `"examples/${example}"`, `no test runs examples/${example}`)
    }
  })
})

describe("README", () => {
  it("shows only code that the examples hold, as they hold it", () => {
    const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1])
    assert.isAtLeast(blocks.length, 2)
    const examples = Fs.readdirSync(Path.join(root, "examples")).map((file) =>
      Fs.readFileSync(Path.join(root, "examples", file), "utf8")
    )
    for (const block of blocks) {
      assert.isTrue(examples.some((source) => source.includes(block)), `README block not in examples/:\n${block}`)
    }
  })
})
