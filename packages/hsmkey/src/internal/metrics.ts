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

/**
 * The metrics of one token, tagged once: tagging on every update would allocate a metric key each time.
 */
export const forToken = (token: string) => {
  const wait = Metric.tagged(sessionWait, "token", token)
  const inUse = Metric.tagged(sessionsInUse, "token", token)
  const errorsOfToken = Metric.tagged(errors, "token", token)
  return {
    recordWait: (millis: number) => Metric.update(wait, millis),
    setInUse: (count: number) => Metric.set(inUse, count),
    countErrors: <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.tapError(effect, (error) => Metric.increment(Metric.tagged(errorsOfToken, "error", error._tag)))
  }
}

export const countLogin = (token: string) => Metric.increment(Metric.tagged(logins, "token", token))
