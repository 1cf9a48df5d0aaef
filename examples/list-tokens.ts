/**
 * Lists the tokens of a PKCS#11 library named by HSM_MODULE.
 *
 *   HSM_MODULE=/usr/lib/softhsm/libsofthsm2.so pnpm tsx examples/list-tokens.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { NodePkcs11 } from "@hsmkey/node"
import { Pkcs11 } from "@hsmkey/pkcs11"
import { Config, Console, Effect } from "effect"

const program = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  for (const slot of yield* pkcs11.slots()) {
    const token = yield* pkcs11.tokenInfo(slot)
    yield* Console.log(
      token.initialized
        ? `"${token.label}" serial ${token.serialNumber}, ${token.openSessions} sessions open`
        : `an uninitialized token in slot ${slot}`
    )
  }
})

// The library is loaded and initialized once per process, however many layers name it.
program.pipe(
  Effect.provide(NodePkcs11.layerConfig({ modulePath: Config.string("HSM_MODULE") })),
  NodeRuntime.runMain
)
