/**
 * Native code loads only where it is used: hsmkey and @hsmkey/pkcs11 (the pool, JOSE, the emulator) never
 * load pkcs11js's addon, @hsmkey/node loads it when its layer is built, and an addon that cannot load is a
 * typed failure that says how to build it. Each case runs in a child process, which starts with nothing
 * loaded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runTs } from "./support/child.js"
import { softHsmAvailable, softHsmModule, writeSoftHsmConfig } from "./support/softhsm.js"

const jsonOf = (stdout: string): unknown => JSON.parse(stdout.trim().split("\n").at(-1) ?? "null")

describe("native code", () => {
  it.effect("hsmkey and @hsmkey/pkcs11 sign on the emulator with no native addon loaded", () =>
    Effect.gen(function*() {
      const result = yield* runTs("test/fixtures/no-native.ts", { HSMKEY_FIXTURE_NODE_MODULE: undefined })
      assert.strictEqual(result.code, 0, result.stderr)
      assert.deepStrictEqual(jsonOf(result.stdout), { verified: "no native code", emulator: [] })
    }))

  it.effect.skipIf(!softHsmAvailable)(
    "@hsmkey/node loads pkcs11js's addon when its layer is built, not on import",
    () =>
      Effect.gen(function*() {
        const { config } = writeSoftHsmConfig("hsmkey-native-")
        const result = yield* runTs("test/fixtures/no-native.ts", {
          HSMKEY_FIXTURE_NODE_MODULE: softHsmModule,
          SOFTHSM2_CONF: config
        })
        assert.strictEqual(result.code, 0, result.stderr)
        const report = jsonOf(result.stdout) as {
          readonly emulator: ReadonlyArray<string>
          readonly node: { readonly imported: ReadonlyArray<string>; readonly built: ReadonlyArray<string> }
        }
        assert.deepStrictEqual(report.emulator, [])
        assert.deepStrictEqual(report.node.imported, [])
        assert.strictEqual(report.node.built.length, 1)
        assert.match(report.node.built[0], /pkcs11js\/build\/Release\/pkcs11\.node$/u)
      })
  )

  it.effect("an addon that was never built is ModuleLoadFailed saying how to build it", () =>
    Effect.gen(function*() {
      // Any file will do: the addon is loaded before the library is.
      const result = yield* runTs("test/fixtures/missing-addon.ts", { HSMKEY_FIXTURE_NODE_MODULE: process.execPath })
      assert.strictEqual(result.code, 0, result.stderr)
      const failure = jsonOf(result.stdout) as { readonly tag: string; readonly message: string }
      assert.strictEqual(failure.tag, "ModuleLoadFailed")
      assert.include(failure.message, "Cannot find module './build/Release/pkcs11.node'")
      assert.include(failure.message, "allowBuilds")
      assert.include(failure.message, "pnpm rebuild pkcs11js")
    }))
})
