/**
 * The basic usage: a pool of sessions on the token named by the `HSM_*` variables, a key loaded by its
 * label, and a JWS and a JWT signed inside the token, verified by jose with the key's public half.
 *
 *   HSM_MODULE=/usr/lib/softhsm/libsofthsm2.so HSM_TOKEN=my-token HSM_PIN=… pnpm tsx examples/quickstart.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { HsmLive } from "@hsmkey/node"
import { Config, Console, Effect } from "effect"
import { HsmJwk, Jws, Jwt } from "hsmkey"
import * as jose from "jose"

const program = Effect.gen(function*() {
  // The key stays in the token: an HsmJwk is its public half and what finds it again.
  const key = yield* HsmJwk.fromHsm({
    label: yield* Config.string("HSM_KEY_LABEL").pipe(Config.withDefault("signing"))
  })
  yield* Console.log(`key ${key.kid} (${key.alg}) on token "${key.token.label}"`)

  // A compact JWS over bytes or text, with a protected header of your own.
  const jws = yield* Jws.sign("hello from the token", key, { protectedHeader: { typ: "text" } })
  const { payload } = yield* Effect.promise(() => jose.compactVerify(jws, key.publicKey))
  yield* Console.log(`JWS verified by jose: ${new TextDecoder().decode(payload)}`)

  // A JWT with registered claims.
  const jwt = yield* Jwt.sign({ scope: "read" }, key, {
    issuer: "quickstart",
    subject: "alice",
    expiresIn: "5 minutes"
  })
  const verified = yield* Effect.promise(() => jose.jwtVerify(jwt, key.publicKey, { issuer: "quickstart" }))
  yield* Console.log(`JWT verified by jose: sub=${verified.payload.sub} scope=${verified.payload.scope}`)
})

// HSM_MODULE, HSM_TOKEN (or HSM_TOKEN_SERIAL) and HSM_PIN say which library, token and PIN.
program.pipe(Effect.provide(HsmLive.layer), NodeRuntime.runMain)
