/**
 * The fault-injection suite: a steady signing load over a pool of 4 on the emulator while one fault at a
 * time is injected. For each scenario: every request ends (signed, or a typed failure) within its
 * deadline, transient faults cost no request, the service recovers by itself, and once the pool closes
 * the token has no session open and is logged out. Figures (requests by outcome and tag, logins, the
 * most sessions open at once) are asserted per scenario and quoted in the README's Reliability section.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Duration, Effect, Exit, Redacted, Schedule } from "effect"
import { HsmJwk, Jwe, Jws, SessionPool } from "hsmkey"
import { check, countByTag, DeadlineExceeded, underLoad } from "../../../test/support/steadyLoad.js"

const { CKR } = Constants

const userPin = Redacted.make("faults-user-4711")
const DEADLINE_MILLIS = 1000
// A request that ends later than its deadline by more than this (timers, GC) breaks the deadline.
const SLACK_MILLIS = 250
const CALLERS = 16

interface Scenario {
  readonly name: string
  readonly inject: (control: MemoryPkcs11.Control.Service) => Effect.Effect<void>
  /** Failed requests by tag (a count, or `"some"`); no other tag may occur. */
  readonly failures: Readonly<Record<string, number | "some">>
  readonly logins: number
  /** How long the fault phase lasts (default 400 ms). */
  readonly faultMillis?: number
}

const failNext = (method: MemoryPkcs11.Method, code: number, times = 5) => (control: MemoryPkcs11.Control.Service) =>
  control.failNext({ method, code, times })

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "5 × CKR_SESSION_HANDLE_INVALID on C_Sign",
    inject: failNext("C_Sign", CKR.SESSION_HANDLE_INVALID),
    failures: {},
    logins: 1
  },
  { name: "5 × CKR_SESSION_CLOSED on C_Sign", inject: failNext("C_Sign", CKR.SESSION_CLOSED), failures: {}, logins: 1 },
  { name: "5 × CKR_DEVICE_REMOVED on C_Sign", inject: failNext("C_Sign", CKR.DEVICE_REMOVED), failures: {}, logins: 1 },
  {
    name: "5 × CKR_TOKEN_NOT_PRESENT on C_Sign",
    inject: failNext("C_Sign", CKR.TOKEN_NOT_PRESENT),
    failures: {},
    logins: 1
  },
  {
    name: "5 × CKR_USER_NOT_LOGGED_IN on C_Sign",
    inject: failNext("C_Sign", CKR.USER_NOT_LOGGED_IN),
    failures: {},
    logins: 1
  },
  {
    name: "the token loses its login",
    inject: (control) => control.forceLogout("faults"),
    failures: {},
    logins: 2
  },
  {
    // Five faults at most, however they fall: the default signingRetry tries a request six times.
    name: "3 sessions die and 2 × CKR_DEVICE_REMOVED on C_OpenSession",
    inject: (control) =>
      Effect.zipRight(
        control.failNext({ method: "C_OpenSession", code: CKR.DEVICE_REMOVED, times: 2 }),
        control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID, times: 3 })
      ),
    failures: {},
    logins: 1
  },
  {
    name: "the token removed for 100 ms and put back in a new slot",
    inject: (control) =>
      Effect.gen(function*() {
        yield* control.removeToken("faults")
        yield* Effect.sleep("100 millis")
        yield* control.insertToken("faults")
      }),
    // Requests made while it is out find it gone, as they should: retries do not wait for it.
    failures: { TokenNotPresent: "some" },
    logins: 2
  },
  {
    name: "5 × CKR_GENERAL_ERROR on C_Sign",
    inject: failNext("C_Sign", CKR.GENERAL_ERROR),
    // Not transient: each costs its request, with the token's answer.
    failures: { Pkcs11Error: 5 },
    logins: 1
  },
  {
    name: "5 × CKR_DEVICE_MEMORY on C_Sign",
    inject: failNext("C_Sign", CKR.DEVICE_MEMORY),
    failures: { Pkcs11Error: 5 },
    logins: 1
  },
  {
    name: "40 slow C_Sign calls (+50 ms each)",
    inject: (control) => control.delayNext({ method: "C_Sign", duration: "50 millis", times: 40 }),
    failures: {},
    logins: 1
  },
  {
    name: "a C_Sign stuck for 2.5 s, past its caller's deadline",
    inject: (control) => control.delayNext({ method: "C_Sign", duration: "2500 millis" }),
    // Its caller stops waiting at the deadline; the other lanes sign on.
    failures: { DeadlineExceeded: 1 },
    logins: 1,
    faultMillis: 3000
  }
]

const emulator = MemoryPkcs11.layer({ tokens: [{ label: "faults", userPin }] })

describe("fault injection under a steady signing load (emulator, pool of 4, 16 callers)", () => {
  for (const scenario of scenarios) {
    it.live(scenario.name, () =>
      Effect.gen(function*() {
        const control = yield* MemoryPkcs11.Control
        const run = yield* Effect.scoped(Effect.gen(function*() {
          const pool = yield* SessionPool.make({ tokenLabel: "faults", userPin, maxSessions: 4 })
          const key = yield* Effect.provideService(
            HsmJwk.generate({ type: "Ed25519", label: "fault-key" }),
            SessionPool.SessionPool,
            pool
          )
          yield* control.resetPeak("faults")
          return yield* underLoad({
            pool,
            key,
            callers: CALLERS,
            deadlineMillis: DEADLINE_MILLIS,
            inject: scenario.inject(control),
            faultMillis: scenario.faultMillis ?? 400
          })
        }))
        const after = yield* control.stats("faults")
        const figures = JSON.stringify({
          byTag: countByTag(run.outcomes),
          logins: after.loginCalls,
          peak: after.peakSessions
        })
        console.log(`fault injection, ${scenario.name}: ${figures}`)
        check(run, { deadlineMillis: DEADLINE_MILLIS, slackMillis: SLACK_MILLIS, failures: scenario.failures, figures })
        assert.strictEqual(after.loginCalls, scenario.logins, figures)
        // Nothing leaked: the bound held, and the closed pool left no session and no login behind.
        assert.isAtMost(after.peakSessions, 5, figures)
        assert.strictEqual(after.openSessions, 0, figures)
        assert.strictEqual(after.loggedIn, undefined, figures)
      }).pipe(Effect.provide(emulator)), 30_000)
  }
})

describe("every return code on every method a request makes (emulator)", () => {
  const methods: ReadonlyArray<MemoryPkcs11.Method> = [
    "C_OpenSession",
    "C_GetSessionInfo",
    "C_GetTokenInfo",
    "C_FindObjectsInit",
    "C_GetAttributeValue",
    "C_SignInit",
    "C_Sign",
    "C_Decrypt",
    "C_CloseSession"
  ]
  const codes: ReadonlyArray<readonly [string, number]> = [
    ["CKR_SESSION_HANDLE_INVALID", CKR.SESSION_HANDLE_INVALID],
    ["CKR_SESSION_CLOSED", CKR.SESSION_CLOSED],
    ["CKR_USER_NOT_LOGGED_IN", CKR.USER_NOT_LOGGED_IN],
    ["CKR_DEVICE_REMOVED", CKR.DEVICE_REMOVED],
    ["CKR_TOKEN_NOT_PRESENT", CKR.TOKEN_NOT_PRESENT],
    ["CKR_GENERAL_ERROR", CKR.GENERAL_ERROR],
    ["CKR_DEVICE_ERROR", CKR.DEVICE_ERROR],
    ["CKR_DEVICE_MEMORY", CKR.DEVICE_MEMORY],
    ["CKR_FUNCTION_FAILED", CKR.FUNCTION_FAILED]
  ]
  const matrixPin = Redacted.make("matrix-user-4711")

  it.live(
    "81 scenarios: typed failures only, each request by its deadline, then all signed; nothing left open",
    () =>
      Effect.gen(function*() {
        const control = yield* MemoryPkcs11.Control
        const keys = yield* Effect.scoped(Effect.gen(function*() {
          const pool = yield* SessionPool.make({ tokenLabel: "matrix", userPin: matrixPin })
          const inPool = <A, E>(effect: Effect.Effect<A, E, SessionPool.SessionPool>) =>
            Effect.provideService(effect, SessionPool.SessionPool, pool)
          return {
            signing: yield* inPool(HsmJwk.generate({ type: "Ed25519", label: "matrix-sig" })),
            decrypting: yield* inPool(HsmJwk.generate({ type: "RSA-2048", label: "matrix-enc", use: "enc" }))
          }
        }))
        const jwe = yield* Jwe.encrypt("matrix", keys.decrypting, { enc: "A256GCM" })
        const failures: Record<string, number> = {}
        for (const method of methods) {
          for (const [name, code] of codes) {
            yield* Effect.scoped(Effect.gen(function*() {
              const pool = yield* SessionPool.make({ tokenLabel: "matrix", userPin: matrixPin, maxSessions: 4 })
              const inPool = <A, E>(effect: Effect.Effect<A, E, SessionPool.SessionPool>) =>
                Effect.provideService(effect, SessionPool.SessionPool, pool)
              const requests: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
                inPool(Jws.sign("matrix", keys.signing)),
                inPool(Jwe.decrypt(jwe, keys.decrypting)),
                inPool(HsmJwk.fromHsm({ label: "matrix-sig" }))
              ]
              const request = (i: number) =>
                Effect.gen(function*() {
                  const start = performance.now()
                  const exit = yield* Effect.exit(requests[i % 3].pipe(
                    Effect.timeoutFail({ duration: DEADLINE_MILLIS, onTimeout: () => new DeadlineExceeded() })
                  ))
                  const took = performance.now() - start
                  assert.isBelow(took, DEADLINE_MILLIS + SLACK_MILLIS, `${method} ${name}`)
                  if (Exit.isFailure(exit)) {
                    assert.strictEqual(exit.cause._tag, "Fail", `${method} ${name}: ${exit.cause}`)
                    const tag = exit.cause._tag === "Fail" ? exit.cause.error._tag : ""
                    assert.notStrictEqual(tag, "DeadlineExceeded", `${method} ${name}`)
                    failures[tag] = (failures[tag] ?? 0) + 1
                  }
                })
              yield* Effect.forEach(Array.from({ length: 3 }, (_, i) => i), request, { concurrency: "unbounded" })
              yield* control.failNext({ method, code, times: 2 })
              yield* Effect.forEach(Array.from({ length: 24 }, (_, i) => i), request, { concurrency: 8 })
              // The fault is over (one on C_OpenSession may not have been met): all is signed, decrypted, found.
              yield* control.clearFaults
              const after = yield* Effect.forEach(
                Array.from({ length: 12 }, (_, i) => i),
                (i) => Effect.exit(requests[i % 3]),
                { concurrency: 4 }
              )
              assert.deepStrictEqual(after.filter(Exit.isFailure).map(String), [], `${method} ${name}: recovered`)
            }))
            const stats = yield* control.stats("matrix")
            assert.strictEqual(stats.openSessions, 0, `${method} ${name}: sessions left`)
            assert.strictEqual(stats.loggedIn, undefined, `${method} ${name}: login left`)
          }
        }
        console.log(`fault matrix, 9 codes × 9 methods: failed requests by tag ${JSON.stringify(failures)}`)
      }).pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "matrix", userPin: matrixPin }] }))),
    120_000
  )
})

describe("retries and the caller's deadline", () => {
  it.live("a fault that lasts is retried until the caller stops waiting, and not after", () =>
    Effect.gen(function*() {
      const inner = yield* Pkcs11.Pkcs11
      const control = yield* MemoryPkcs11.Control
      let signCalls = 0
      const counted: Pkcs11.Pkcs11.Service = {
        ...inner,
        sign: (...args) =>
          Effect.suspend(() => {
            signCalls++
            return inner.sign(...args)
          }),
        signDirect: inner.signDirect === undefined ? undefined : (...args) => {
          signCalls++
          return inner.signDirect!(...args)
        }
      }
      const pool = yield* Effect.provideService(
        SessionPool.make({
          tokenLabel: "faults",
          userPin,
          maxSessions: 2,
          signingRetry: Schedule.spaced("20 millis")
        }),
        Pkcs11.Pkcs11,
        counted
      )
      const key = yield* Effect.provideService(
        HsmJwk.generate({ type: "Ed25519", label: "deadline-key" }),
        SessionPool.SessionPool,
        pool
      )
      yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID, times: 1_000_000 })
      const start = performance.now()
      const exit = yield* Effect.exit(
        Effect.provideService(Jws.sign("never", key), SessionPool.SessionPool, pool).pipe(
          Effect.timeoutFail({ duration: "300 millis", onTimeout: () => new DeadlineExceeded() })
        )
      )
      const took = performance.now() - start
      assert.isTrue(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "DeadlineExceeded")
      assert.isBelow(took, 300 + SLACK_MILLIS)
      const byDeadline = signCalls
      // Tried again and again while the caller waited (every 20 ms: about 15 times)...
      assert.isAbove(byDeadline, 5)
      yield* Effect.sleep(Duration.millis(300))
      // ...and not once after it stopped waiting (one try may have been under way).
      assert.isAtMost(signCalls - byDeadline, 1)
    }).pipe(Effect.scoped, Effect.provide(emulator)))
})
