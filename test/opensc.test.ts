/**
 * Interoperability with OpenSC's pkcs11-tool on the same SoftHSM2 token, from another process: keys it
 * makes load and sign in hsmkey, and keys hsmkey makes are listed by it with their label and CKA_ID.
 */
import { assert, describe, layer } from "@effect/vitest"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect, Layer, Redacted } from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import { promisify } from "node:util"
import { softHsmAvailable } from "./support/softhsm.js"

const pkcs11Tool = ["/usr/bin/pkcs11-tool", "/usr/local/bin/pkcs11-tool", "/opt/homebrew/bin/pkcs11-tool"].find((
  path
) => Fs.existsSync(path))
if (softHsmAvailable && pkcs11Tool === undefined) {
  const why = "OpenSC's pkcs11-tool is not installed (apt-get install opensc)"
  if (process.env.CI) throw new Error(`${why}: the interop tests may not skip under CI`)
  console.warn(`Skipping the OpenSC interop tests: ${why}`)
}

const PIN = "opensc-interop-1234"

const tool = (token: SoftHsm.Token.Info, ...args: ReadonlyArray<string>) =>
  Effect.promise(() =>
    promisify(execFile)(
      pkcs11Tool!,
      ["--module", token.modulePath, "--token-label", token.label, "--login", "--pin", PIN, ...args],
      { env: { ...process.env, ...token.env } }
    )
  )

const Live = Layer.unwrapEffect(
  Effect.map(SoftHsm.Token, (token) => SessionPool.layer({ tokenLabel: token.label, userPin: token.userPin }))
).pipe(Layer.provideMerge(SoftHsm.layer({ tokenLabel: "opensc-interop", userPin: Redacted.make(PIN) })))

describe.skipIf(!softHsmAvailable || pkcs11Tool === undefined)("OpenSC interop on SoftHSM2", () => {
  layer(Live, { timeout: 60_000 })((it) => {
    for (const [keyType, alg] of [["EC:prime256v1", "ES256"], ["rsa:2048", "RS256"], ["EC:edwards25519", "EdDSA"]]) {
      it.effect(`a ${keyType} key made by pkcs11-tool --keypairgen loads and signs ${alg}`, () =>
        Effect.gen(function*() {
          const token = yield* SoftHsm.Token
          const label = `opensc-${keyType.replace(/\W/gu, "")}`
          yield* tool(token, "--keypairgen", "--key-type", keyType, "--label", label, "--id", "c0ffee", "--usage-sign")
          const key = yield* HsmJwk.fromHsm({ label })
          assert.strictEqual(key.alg, alg)
          const jws = yield* Jws.sign("made by OpenSC, signed by hsmkey", key)
          const verified = yield* Effect.promise(() => jose.compactVerify(jws, key.publicKey))
          assert.strictEqual(new TextDecoder().decode(verified.payload), "made by OpenSC, signed by hsmkey")
        }))
    }

    it.effect("pkcs11-tool --list-objects lists keys hsmkey generated, with their label and id", () =>
      Effect.gen(function*() {
        const token = yield* SoftHsm.Token
        const key = yield* HsmJwk.generate({ type: "P-256", label: "made-by-hsmkey" })
        const { stdout } = yield* tool(token, "--list-objects")
        const id = Buffer.from(key.id).toString("hex")
        const objects = stdout.split(/\n(?=\S)/u).filter((block) => block.includes("made-by-hsmkey"))
        assert.isTrue(objects.some((block) => block.startsWith("Private Key Object")), stdout)
        assert.isTrue(objects.some((block) => block.startsWith("Public Key Object")), stdout)
        for (const block of objects) {
          assert.match(block, /label:\s+made-by-hsmkey/u)
          assert.match(block, new RegExp(`ID:\\s+${id}`, "u"))
        }
      }))
  })
})
