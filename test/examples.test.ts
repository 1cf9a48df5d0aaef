/**
 * The README's main job runs as documented: each example is executed as a user would run it.
 */
import { assert, describe, it } from "@effect/vitest"
import { SoftHsm } from "@hsmkey/softhsm"
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { root, runTs as run } from "./support/child.js"
import { softHsmAvailable, softHsmModule, writeSoftHsmConfig } from "./support/softhsm.js"

describe.skipIf(!softHsmAvailable)("examples", () => {
  it.live("demo: signs JWTs in a throwaway SoftHSM2 token, verifies them with jose, cleans up", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* run("examples/demo.ts")
      assert.strictEqual(code, 0, stderr)
      for (const alg of ["ES256", "EdDSA", "PS256"]) {
        assert.match(stdout, new RegExp(`${alg}\\s+300 JWTs signed in the token by key \\S+, verified by jose`))
      }
      assert.include(stdout, "at most 4 pooled sessions and one login served 900 signatures")
      const config = /under (\S+softhsm2\.conf)/.exec(stdout)?.[1]
      assert.isDefined(config)
      assert.isFalse(Fs.existsSync(Path.dirname(config!)), "the throwaway directory is deleted")
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
  it.live("in-memory: signs with the key an emulated token started with; a missing key names those present", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* run("examples/in-memory.ts")
      assert.strictEqual(code, 0, stderr)
      assert.include(stdout, "signed in the token for alice; verified with the key it started with")
      assert.include(
        stdout,
        "No private key with label \"retired\" on token \"test\"; private keys present: \"signing\""
      )
    }))
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
