/**
 * What a token can do, before anything is made on it: the JOSE algorithms it signs and decrypts with, the
 * key types it generates, and the mechanism each uses. `HSM_MODULE` names the library, `HSM_TOKEN` the
 * token; no PIN is needed.
 */
import { NodeRuntime } from "@effect/platform-node"
import { NodePkcs11 } from "@hsmkey/node"
import { Config, Console, Effect } from "effect"
import { Capabilities } from "hsmkey"

const program = Effect.gen(function*() {
  const capabilities = yield* Capabilities.ofToken({ tokenLabel: yield* Config.string("HSM_TOKEN") })
  const { model, label } = capabilities.token
  yield* Console.log(`Token "${label}" (${model})`)
  yield* Console.log(`  signs: ${capabilities.signing.map((s) => `${s.alg} with ${s.mechanism}`).join(", ")}`)
  yield* Console.log(`  decrypts: ${capabilities.decryption.map((d) => d.alg).join(", ") || "nothing"}`)
  for (const keyType of capabilities.keyTypes) {
    yield* Console.log(`  ${keyType.type}: ${keyType.generate === undefined ? "not generated" : "generated"}`)
  }
})

program.pipe(
  Effect.provide(NodePkcs11.layerConfig({ modulePath: Config.string("HSM_MODULE") })),
  NodeRuntime.runMain
)
