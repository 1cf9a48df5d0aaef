/**
 * hsmkey on the in-memory emulator, as an app's tests use it: a token that starts with a key, a program
 * that signs in one session of the pool, and a typed failure handled by its tag. No native code.
 *
 *   pnpm tsx examples/in-memory.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Console, Effect, Layer, Redacted } from "effect"
import { HsmJwk, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"

const { privateKey, publicKey } = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
const userPin = Redacted.make("test-pin")

// An emulated token that starts with the key, and a pool on it.
const Emulator = SessionPool.layer({ tokenLabel: "test", userPin }).pipe(
  Layer.provideMerge(MemoryPkcs11.layer({
    tokens: [{ label: "test", userPin, keys: [{ label: "signing", key: privateKey }] }]
  }))
)

const program = Effect.gen(function*() {
  // Everything inside uses one session of the pool, in context.
  const jwt = yield* SessionPool.withSession(Effect.gen(function*() {
    const key = yield* HsmJwk.fromHsm({ label: "signing" })
    return yield* Jwt.sign({ sub: "alice" }, key, { expiresIn: "5 minutes" })
  }))
  const { payload } = yield* Effect.promise(() => jose.jwtVerify(jwt, publicKey))
  yield* Console.log(`signed in the token for ${payload.sub}; verified with the key it started with`)

  const retired = yield* HsmJwk.fromHsm({ label: "retired" }).pipe(
    Effect.map((key) => `found ${key.kid}`),
    Effect.catchTag("KeyNotFound", (error) => Effect.succeed(error.message))
  )
  yield* Console.log(retired)
})

NodeRuntime.runMain(program.pipe(Effect.provide(Emulator)))
