/**
 * A key another tool made: here one that OpenSC's pkcs11-tool generated on the token, found by the
 * CKA_ID it was given (`--id`), published as a JWK whose `kid` is that id, and used to sign.
 *
 *   pkcs11-tool --module "$HSM_MODULE" --token-label "$HSM_TOKEN" --login --pin "$HSM_PIN" \
 *     --keypairgen --key-type EC:prime256v1 --id c0ffee --label legacy --usage-sign
 *   HSM_KEY_ID=c0ffee pnpm tsx examples/existing-key.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { HsmLive } from "@hsmkey/node"
import { Config, Console, Effect } from "effect"
import { HsmJwk, Jwks, Jwt } from "hsmkey"
import * as jose from "jose"

const program = Effect.gen(function*() {
  const id = yield* Config.string("HSM_KEY_ID")
  // By CKA_ID, which names one key pair on most tokens; a label may name several (KeyAmbiguous).
  const key = yield* HsmJwk.fromHsm({ id, kid: "id" })
  yield* Console.log(`found ${key.keyType} key "${key.label ?? ""}" with CKA_ID ${id}: alg ${key.alg}`)
  yield* Console.log(JSON.stringify(Jwks.fromKeys([key])))
  yield* Console.log(HsmJwk.toPem(key).trim())

  const jwt = yield* Jwt.sign({ sub: "legacy-client" }, key, { expiresIn: "1 minute" })
  const { protectedHeader } = yield* Effect.promise(() => jose.jwtVerify(jwt, key.publicKey))
  yield* Console.log(`signed a JWT with kid ${protectedHeader.kid}; jose verified it`)
})

program.pipe(Effect.provide(HsmLive.layer), NodeRuntime.runMain)
