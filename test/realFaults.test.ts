/**
 * Faults a real token can be given, under a steady signing load over a pool of 4 on every backend: other
 * code in the process logs out, closes every session of the token, or closes the pool's sessions one by
 * one. Transient all three: no request may fail, each within its deadline; the pool logs in again once,
 * and when it closes the token is logged out and none of the sessions it opened is open.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Layer, TestServices } from "effect"
import { backends, type TestToken, tokenSlot } from "./support/backends.js"
import { Calls, counting } from "./support/counting.js"
import { offered } from "./support/matrix.js"
import { rawSession, watchedPool } from "./support/pool.js"
import { check, countByTag, underLoad } from "./support/steadyLoad.js"

// openCryptoki signs RSA-2048 in ~2 ms on the event loop's side of two cores: deadlines are generous.
const DEADLINE_MILLIS = 2000
const SLACK_MILLIS = 500

interface Fault {
  readonly name: string
  /** `C_Login` calls the pool may make: its own, and one more if the fault took the login. */
  readonly logins: ReadonlyArray<number>
  readonly inject: (
    opened: ReadonlyArray<Pkcs11.SessionHandle>
  ) => Effect.Effect<void, unknown, Pkcs11.Pkcs11 | TestToken>
}

const faults: ReadonlyArray<Fault> = [
  {
    name: "other code logs out",
    logins: [2],
    inject: () => Effect.scoped(Effect.flatMap(rawSession(), (raw) => raw.pkcs11.logout(raw.handle)))
  },
  {
    name: "other code closes every session of the token (C_CloseAllSessions)",
    logins: [2],
    inject: () =>
      Effect.flatMap(Effect.zip(Pkcs11.Pkcs11, tokenSlot), ([pkcs11, slot]) => pkcs11.closeAllSessions(slot))
  },
  {
    name: "other code closes the pool's sessions one by one",
    // The login ends with the last session only: one the pool opened meanwhile keeps it (openCryptoki).
    logins: [1, 2],
    inject: (opened) =>
      Effect.flatMap(
        Pkcs11.Pkcs11,
        (pkcs11) => Effect.forEach(opened, (handle) => Effect.ignore(pkcs11.closeSession(handle)), { discard: true })
      )
  }
]

/** The login state of the token, as a session opened now beside hsmkey's sees it. */
const tokenState = Effect.scoped(
  Effect.flatMap(rawSession(), (raw) => Effect.map(raw.pkcs11.sessionInfo(raw.handle), (info) => info.state))
)

for (const backend of backends("hsmkey-real-faults")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(Layer.provideMerge(counting, backend.layer), { timeout: 120_000 })((it) => {
      const test = offered(it)
      test(
        "sessions closed 200 times while they sign on other threads: each close waits for the signature in flight",
        { features: ["native"] },
        () =>
          TestServices.provideLive(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            yield* Effect.scoped(Effect.gen(function*() {
              const { key, opened, pool } = yield* watchedPool("closed-while-signing")
              const slot = yield* tokenSlot
              // Once: SoftHSM2 freed a session under a C_Sign on a signing thread (free(): invalid pointer).
              const run = yield* underLoad({
                pool,
                key,
                callers: 16,
                deadlineMillis: DEADLINE_MILLIS,
                inject: Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) =>
                  Effect.zipRight(
                    i % 20 === 19
                      ? Effect.ignore(pkcs11.closeAllSessions(slot))
                      : Effect.ignore(pkcs11.closeSession(opened[Math.floor(Math.random() * opened.length)])),
                    Effect.sleep("5 millis")
                  ), { discard: true }),
                faultMillis: 100
              })
              const byTag = countByTag(run.outcomes)
              const figures = JSON.stringify(byTag)
              console.log(`${backend.name}, sessions closed while signing: ${figures}`)
              // A session closed every 5 ms may use up a request's six tries: SessionFailed, and nothing else.
              const failures = byTag.SessionFailed === undefined ? {} : { SessionFailed: "some" as const }
              check(run, { deadlineMillis: DEADLINE_MILLIS, slackMillis: SLACK_MILLIS, failures, figures })
            }))
          }))
      )

      for (const fault of faults) {
        test(
          `${fault.name}, under a steady signing load: no request fails, nothing is left open`,
          {},
          () =>
            TestServices.provideLive(Effect.gen(function*() {
              const calls = yield* Calls
              const pkcs11 = yield* Pkcs11.Pkcs11
              const context = yield* Effect.context<Pkcs11.Pkcs11 | TestToken>()
              calls.reset()
              let opened: ReadonlyArray<Pkcs11.SessionHandle> = []
              const run = yield* Effect.scoped(Effect.gen(function*() {
                const watched = yield* watchedPool("real-faults")
                const { key, pool } = watched
                opened = watched.opened
                const result = yield* underLoad({
                  pool,
                  key,
                  callers: 8,
                  deadlineMillis: DEADLINE_MILLIS,
                  inject: Effect.provide(Effect.suspend(() => fault.inject([...opened])), context),
                  faultMillis: 400
                })
                return result
              }))
              const figures = JSON.stringify({
                byTag: countByTag(run.outcomes),
                logins: calls.logins,
                opened: opened.length
              })
              console.log(`${backend.name}, ${fault.name}: ${figures}`)
              check(run, { deadlineMillis: DEADLINE_MILLIS, slackMillis: SLACK_MILLIS, failures: {}, figures })
              assert.include(fault.logins, calls.logins, figures)
              // None of the sessions the pool opened is open, and the token is logged out.
              for (const handle of opened) {
                const info = yield* Effect.either(pkcs11.sessionInfo(handle))
                assert.isTrue(info._tag === "Left" && info.left._tag === "SessionFailed", `session ${handle} is open`)
              }
              assert.strictEqual(yield* tokenState, "ro-public", figures)
            }))
        )
      }
    })
  })
}
