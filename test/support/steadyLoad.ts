/**
 * A steady signing load with one fault in the middle, for the fault suites: callers sign in a loop, each
 * request with its deadline, while the test injects a fault; every request's outcome is kept with its
 * times, and `check` asserts what every scenario shares.
 */
import { Data, Effect, Exit, Fiber } from "effect"
import { type HsmJwk, Jws, SessionPool } from "hsmkey"
import { assert } from "vitest"

/** What a caller's own deadline ends a request with. */
export class DeadlineExceeded extends Data.TaggedError("DeadlineExceeded") {}

export interface Outcome {
  readonly start: number
  readonly end: number
  /** `"ok"` for a signature that verified, else the failure's tag. */
  readonly tag: string
}

export interface LoadRun {
  readonly outcomes: ReadonlyArray<Outcome>
  /** When the fault was injected, and when its phase ended. */
  readonly injected: number
  readonly recovering: number
  readonly statsAfterLoad: SessionPool.Stats
}

export interface LoadOptions {
  readonly pool: SessionPool.SessionPool.Service
  readonly key: HsmJwk.HsmJwk
  readonly callers: number
  readonly deadlineMillis: number
  readonly inject: Effect.Effect<void, unknown>
  /** How long the fault phase lasts. */
  readonly faultMillis: number
}

/**
 * Signs from `callers` fibers for 300 ms, injects the fault, signs through the fault phase and 300 ms
 * after it. Each signature is verified; a caller whose request failed waits 5 ms before the next, as a
 * client does (a token that is gone fails a request in microseconds, on the event loop's thread, and
 * callers asking again at once would starve every timer of the process).
 */
export const underLoad = (options: LoadOptions): Effect.Effect<LoadRun, unknown> =>
  Effect.gen(function*() {
    const { key, pool } = options
    const outcomes: Array<Outcome> = []
    let running = true
    const request = (payload: string) =>
      Effect.gen(function*() {
        const start = performance.now()
        const exit = yield* Effect.exit(
          Effect.provideService(Jws.sign(payload, key), SessionPool.SessionPool, pool).pipe(
            Effect.timeoutFail({ duration: options.deadlineMillis, onTimeout: () => new DeadlineExceeded() })
          )
        )
        const end = performance.now()
        if (Exit.isSuccess(exit)) {
          const verified = yield* Effect.exit(Jws.verify(exit.value, key))
          const good = Exit.isSuccess(verified) && new TextDecoder().decode(verified.value.payload) === payload
          outcomes.push({ start, end, tag: good ? "ok" : "wrong signature" })
          return
        }
        outcomes.push({ start, end, tag: exit.cause._tag === "Fail" ? exit.cause.error._tag : `defect: ${exit.cause}` })
        yield* Effect.sleep("5 millis")
      })
    const load = yield* Effect.fork(Effect.forEach(
      Array.from({ length: options.callers }, (_, caller) => caller),
      (caller) =>
        Effect.gen(function*() {
          for (let n = 0; running; n++) yield* request(`caller ${caller}, request ${n}`)
        }),
      { concurrency: "unbounded", discard: true }
    ))
    yield* Effect.sleep("300 millis")
    const injected = performance.now()
    yield* options.inject
    yield* Effect.sleep(options.faultMillis)
    const recovering = performance.now()
    yield* Effect.sleep("300 millis")
    running = false
    yield* Fiber.join(load)
    return { outcomes, injected, recovering, statsAfterLoad: yield* pool.stats }
  })

/** Requests by tag. */
export const countByTag = (outcomes: ReadonlyArray<Outcome>): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const outcome of outcomes) counts[outcome.tag] = (counts[outcome.tag] ?? 0) + 1
  return counts
}

/**
 * What every scenario asserts: each request ended by its deadline (plus `slackMillis` for timers and GC),
 * signed and verified or with a typed failure; the load ran before, during and after the fault, and
 * every request made before it or after it was signed; the failures are exactly those `failures` names
 * (a count, or `"some"`); nothing was lent or waiting once the load stopped.
 */
export const check = (
  run: LoadRun,
  expected: {
    readonly deadlineMillis: number
    readonly slackMillis: number
    readonly failures: Readonly<Record<string, number | "some">>
    readonly figures: string
  }
) => {
  const { figures } = expected
  const byTag = countByTag(run.outcomes)
  const late = run.outcomes.filter((o) => o.end - o.start > expected.deadlineMillis + expected.slackMillis)
  assert.deepStrictEqual(late, [], figures)
  // Requests that ended before the fault, that overlapped it, and that started after its phase.
  const phaseOf = (o: Outcome) => o.end < run.injected ? "steady" : o.start > run.recovering ? "recovered" : "fault"
  for (const phase of ["steady", "fault", "recovered"] as const) {
    const inPhase = run.outcomes.filter((o) => phaseOf(o) === phase)
    assert.isAbove(inPhase.length, 10, `${phase}: ${figures}`)
    if (phase !== "fault") assert.isTrue(inPhase.every((o) => o.tag === "ok"), `${phase}: ${figures}`)
  }
  const failed = Object.fromEntries(Object.entries(byTag).filter(([tag]) => tag !== "ok"))
  assert.deepStrictEqual(Object.keys(failed).sort(), Object.keys(expected.failures).sort(), figures)
  for (const [tag, count] of Object.entries(expected.failures)) {
    if (count === "some") assert.isAbove(failed[tag] ?? 0, 0, figures)
    else assert.strictEqual(failed[tag], count, figures)
  }
  assert.deepStrictEqual(
    { leased: run.statsAfterLoad.leased, waiting: run.statsAfterLoad.waiting },
    { leased: 0, waiting: 0 },
    figures
  )
}
