import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/** Time from asking for a session to holding one, in milliseconds. */
export const sessionWait = Metric.histogram(
  "hsmkey_session_wait_ms",
  MetricBoundaries.exponential({ start: 0.25, factor: 4, count: 10 }),
  "Time from asking a SessionPool for a session to holding one"
)

/** Sessions lent out now. */
export const sessionsInUse = Metric.gauge("hsmkey_sessions_in_use", { description: "Sessions lent out now" })

/** Successful `C_Login` calls (a second login answered `CKR_USER_ALREADY_LOGGED_IN` counts too). */
export const logins = Metric.counter("hsmkey_logins", { description: "Logins made by session pools" })

/** Failures of pool operations, by error tag. */
export const errors = Metric.counter("hsmkey_errors", { description: "Failures of session pool operations" })

export const recordWait = (token: string, elapsed: Duration.Duration) =>
  Metric.update(Metric.tagged(sessionWait, "token", token), Duration.toMillis(elapsed))

export const setInUse = (token: string, inUse: number) =>
  Metric.set(Metric.tagged(sessionsInUse, "token", token), inUse)

export const countLogin = (token: string) => Metric.increment(Metric.tagged(logins, "token", token))

/** Counts a typed failure by its tag, and passes it on. */
export const countErrors = (token: string) =>
<A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.tapError(
    effect,
    (error) => Metric.increment(Metric.tagged(Metric.tagged(errors, "token", token), "error", error._tag))
  )
