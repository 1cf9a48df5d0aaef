/**
 * Every failure is a tagged error: handle the ones a caller can act on by their tag, each with the
 * fields that say what to do, and let the rest fail the program. On the in-memory emulator, so that each
 * failure can be staged: a wrong PIN, a key that is not there, a token that is not there, a token removed.
 *
 *   pnpm tsx examples/error-handling.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Console, Effect, Redacted } from "effect"
import { HsmJwk, Jwt, SessionPool } from "hsmkey"
import * as Crypto from "node:crypto"

const userPin = Redacted.make("right-pin")
const { privateKey } = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
const Emulator = MemoryPkcs11.layer({
  tokens: [{ label: "payments", userPin, keys: [{ label: "signing", key: privateKey }] }]
})

/** What an issuer answers, whatever happened: a token, or a status and a reason a caller can act on. */
const issue = (options: { readonly label: string }) =>
  Effect.gen(function*() {
    const key = yield* HsmJwk.fromHsm({ label: options.label })
    return `200 ${(yield* Jwt.sign({ sub: "alice" }, key, { expiresIn: "5 minutes" })).slice(0, 24)}…`
  }).pipe(
    Effect.catchTags({
      KeyNotFound: (e) => Effect.succeed(`404 no key ${e.query}; keys present: ${e.present?.join(", ") ?? "?"}`),
      KeyAmbiguous: (e) => Effect.succeed(`409 ${e.count} keys match ${e.query}: name one by CKA_ID`),
      TokenNotPresent: () => Effect.succeed("503 the token was removed; the pool finds it again when it is back"),
      PoolTimeout: (e) => Effect.succeed(`503 no session within ${e.timeoutMillis} ms`)
    })
  )

/** Making a pool fails with what is wrong about the token or the PIN, before any request is served. */
const withPool =
  (options: { readonly tokenLabel: string; readonly pin: string }) => (effect: ReturnType<typeof issue>) =>
    effect.pipe(
      Effect.provide(SessionPool.layer({ tokenLabel: options.tokenLabel, userPin: Redacted.make(options.pin) })),
      Effect.catchTags({
        TokenNotFound: (e) => Effect.succeed(`no token ${e.selector}; tokens present: ${e.available.join(", ")}`),
        PinIncorrect: () => Effect.succeed("the token refused the PIN (it is never sent again by this process)"),
        PinLocked: (e) => Effect.succeed(`the PIN is locked (${e.reason}): the security officer must reset it`)
      })
    )

const program = Effect.gen(function*() {
  const good = { tokenLabel: "payments", pin: "right-pin" }
  yield* Console.log(`signing key:   ${yield* issue({ label: "signing" }).pipe(withPool(good))}`)
  yield* Console.log(`retired key:   ${yield* issue({ label: "retired" }).pipe(withPool(good))}`)
  yield* Console.log(
    `other token:   ${yield* issue({ label: "signing" }).pipe(withPool({ ...good, tokenLabel: "hr" }))}`
  )
  yield* Console.log(
    `wrong PIN:     ${yield* issue({ label: "signing" }).pipe(withPool({ ...good, pin: "wrong-pin" }))}`
  )

  // The token pulled out while a pool is up: that request fails, typed; the pool carries on when it is back.
  const control = yield* MemoryPkcs11.Control
  const removed = yield* Effect.gen(function*() {
    yield* control.removeToken("payments")
    const answer = yield* issue({ label: "signing" })
    yield* control.insertToken("payments")
    return answer
  }).pipe(withPool(good))
  yield* Console.log(`token removed: ${removed}`)
})

NodeRuntime.runMain(program.pipe(Effect.provide(Emulator)))
