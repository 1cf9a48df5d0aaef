/**
 * How an application tests its own code on the in-memory emulator: no native code, a token that starts
 * with the keys the tests know, failures injected where a real token would fail, and counts of what the
 * token saw. The same `issueAccessToken` runs on SoftHSM2 or an HSM, given another layer.
 *
 *   pnpm tsx examples/testing-with-memory.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Constants, MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Console, Effect, Layer, Redacted } from "effect"
import { HsmJwk, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Assert from "node:assert/strict"
import * as Crypto from "node:crypto"

// The application's code: it needs a SessionPool, and knows nothing of which token is behind it.
const issueAccessToken = (userId: string) =>
  Effect.flatMap(
    HsmJwk.fromHsm({ label: "access-tokens" }),
    (key) =>
      Jwt.sign({ scope: "api" }, key, { subject: userId, issuer: "https://auth.example", expiresIn: "15 minutes" })
  )

// The test's side: a key it generated itself, so that it can verify what the token signed.
const { privateKey, publicKey } = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
const userPin = Redacted.make("test-pin")

// An emulated token that starts with the key, and a pool on it.
const Emulator = SessionPool.layer({ tokenLabel: "test", userPin, maxSessions: 4 }).pipe(
  Layer.provideMerge(MemoryPkcs11.layer({
    tokens: [{ label: "test", userPin, keys: [{ label: "access-tokens", key: privateKey }] }]
  }))
)

const test = <A, E, R>(name: string, body: Effect.Effect<A, E, R>) => Effect.zipRight(body, Console.log(`ok - ${name}`))

const suite = Effect.gen(function*() {
  yield* test(
    "issues a JWT signed by the token's key",
    Effect.gen(function*() {
      const jwt = yield* issueAccessToken("alice")
      const { payload } = yield* Effect.promise(() =>
        jose.jwtVerify(jwt, publicKey, { issuer: "https://auth.example" })
      )
      Assert.equal(payload.sub, "alice")
    })
  )

  const control = yield* MemoryPkcs11.Control
  yield* test(
    "a device error on C_Sign reaches the caller as a typed Pkcs11Error",
    Effect.gen(function*() {
      yield* control.failNext({ method: "C_Sign", code: Constants.CKR.DEVICE_ERROR })
      const error = yield* Effect.flip(issueAccessToken("bob"))
      Assert.equal(error._tag, "Pkcs11Error")
    })
  )

  yield* test(
    "100 concurrent requests share one login and at most the pool's sessions",
    Effect.gen(function*() {
      yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => `user-${i}`), issueAccessToken, {
        concurrency: "unbounded"
      })
      const stats = yield* control.stats("test")
      Assert.equal(stats.loginCalls, 1)
      // The pool's 4, and the session that holds its login.
      Assert.ok(stats.peakSessions <= 5, `peak ${stats.peakSessions} sessions`)
    })
  )
})

NodeRuntime.runMain(suite.pipe(Effect.provide(Emulator)))
