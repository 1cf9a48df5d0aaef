import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"

interface Entry<A, E> {
  readonly deferred: Deferred.Deferred<A, E>
  /** When the outcome stops being served; infinite while the read runs, so that callers wait on it. */
  expiresAt: number
}

/**
 * A read shared by its callers: its outcome is kept for `keepFor(exit)` milliseconds (by the `Clock`, so a
 * `TestClock` drives it), and the first caller after that starts the next read, on which the callers that
 * come meanwhile wait. `Effect.cachedWithTTL` keeps a failure as long as a success; here each outcome has
 * its own time, so that a failing token is read again soon, but not by every request.
 *
 * The read runs in a fiber of its own: a caller that goes away (a client that hung up) must not cancel it for
 * the others waiting on it, and running it uninterruptibly in the caller's fiber instead would make each
 * `Effect.timeout` inside it (the pool's `acquireTimeout`) wait out its whole timer. Each caller's wait stays
 * interruptible; the read ends by itself, bounded by those timeouts.
 */
export const make = <A, E>(
  read: Effect.Effect<A, E>,
  keepFor: (exit: Exit.Exit<A, E>) => number
): Effect.Effect<Effect.Effect<A, E>> =>
  Effect.sync(() => {
    let current: Entry<A, E> | undefined
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      // Checked and replaced in one synchronous step: no other fiber runs in between.
      if (current !== undefined && now < current.expiresAt) return Deferred.await(current.deferred)
      const entry: Entry<A, E> = { deferred: Deferred.unsafeMake<A, E>(FiberId.none), expiresAt: Infinity }
      current = entry
      return Effect.exit(read).pipe(
        Effect.flatMap((exit) =>
          Effect.flatMap(Clock.currentTimeMillis, (done) => {
            entry.expiresAt = done + keepFor(exit)
            return Deferred.done(entry.deferred, exit)
          })
        ),
        Effect.forkDaemon,
        Effect.zipRight(Deferred.await(entry.deferred))
      )
    })
  })
