/**
 * A first-come first-served semaphore that hands each released permit to exactly one waiter.
 *
 * Effect 3's `Semaphore` (and the `Pool` built on it) wakes every waiter on each release and lets them
 * race for the permit: with n waiters that is O(n²) work. Measured here: 2,000 signatures queued on 4
 * PKCS#11 sessions took 3.6 s instead of 0.2 s, and 4,000 borrowers of an Effect `Pool` of 4 ran out
 * of memory. hsmkey queues on this instead, wherever many fibers may wait.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"

/** Why a bounded wait ended without a permit: its time ran out, or the semaphore was closed. */
export type Ended = "timeout" | "closed"

interface Waiter {
  granted: boolean
  /** Waits in `takeScopedWithin`: its wait may end without the permit. */
  bounded: boolean
  /** Set when a bounded wait ends without the permit; the waiter has left the queue. */
  ended: Ended | undefined
  wake: (() => void) | undefined
}

/**
 * A FIFO semaphore.
 *
 * @since 0.1.0
 * @category models
 */
export interface FifoSemaphore {
  readonly permits: number
  /** Permits free now. */
  readonly available: number
  /** Fibers waiting for a permit now. */
  readonly waiting: number
  /** Runs an effect holding a permit; waiting for it is interruptible. */
  readonly withPermit: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Holds a permit until the scope closes; waiting for it is interruptible. */
  readonly takeScoped: Effect.Effect<void, never, Scope.Scope>
  /**
   * As `takeScoped`, failing with `onEnd("timeout")` after waiting `timeout`, or with `onEnd("closed")` once
   * `close` was called. A free permit is taken at once, without a timer: only a caller that has to wait pays
   * for one. The wait ends so whatever the caller's interruptibility: an uninterruptible caller (a finalizer,
   * an `acquireRelease`'s acquire) gets its failure at `timeout` too.
   */
  readonly takeScopedWithin: <E>(
    timeout: Duration.DurationInput,
    onEnd: (ended: Ended) => E
  ) => Effect.Effect<void, E, Scope.Scope>
  /**
   * Ends the waits of `takeScopedWithin`, those queued now and any that would queue later, with
   * `onEnd("closed")`. Permits held stay held; free ones are still taken.
   */
  readonly close: () => void
}

class FifoSemaphoreImpl implements FifoSemaphore {
  private taken = 0
  private closed = false
  private readonly queue: Array<Waiter> = []

  constructor(readonly permits: number) {}

  get available(): number {
    return this.permits - this.taken
  }

  get waiting(): number {
    return this.queue.length
  }

  private enqueue(): Waiter {
    if (this.taken < this.permits) {
      this.taken++
      return { granted: true, bounded: false, ended: undefined, wake: undefined }
    }
    const waiter: Waiter = { granted: false, bounded: false, ended: undefined, wake: undefined }
    this.queue.push(waiter)
    return waiter
  }

  // A released permit goes straight to the next waiter: `taken` does not change.
  private release(): void {
    const next = this.queue.shift()
    if (next === undefined) {
      this.taken--
      return
    }
    next.granted = true
    next.wake?.()
  }

  private awaitGrant(waiter: Waiter): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (waiter.granted) return resume(Effect.void)
      waiter.wake = () => resume(Effect.void)
    })
  }

  // Takes the waiter out of the queue, unless it was granted meanwhile, and wakes it without the permit.
  private end(waiter: Waiter, ended: Ended): void {
    if (waiter.granted || waiter.ended !== undefined) return
    const index = this.queue.indexOf(waiter)
    if (index >= 0) this.queue.splice(index, 1)
    waiter.ended = ended
    waiter.wake?.()
  }

  /**
   * Waits for the grant, the timer or `close`, in the caller's fiber. `Effect.timeoutFail` would run
   * the wait on a fiber of its own, which inherits the caller's interruptibility, and interrupt it when the
   * time is up, awaiting it: an uninterruptible caller would wait until a permit came free. Nor may the wait
   * run `Effect.interruptible` on a child fiber: an interruption of the caller reaches its children at once,
   * even while the caller is uninterruptible, and would end the wait. The timer runs on a root fiber that
   * only this wait interrupts, so the wait ends by the grant, the timer, `close`, or (for an interruptible
   * caller) the caller's interruption, as `acquire` expects.
   */
  private awaitGrantWithin<E>(
    waiter: Waiter,
    timeout: Duration.DurationInput,
    onEnd: (ended: Ended) => E
  ): Effect.Effect<void, E> {
    const outcome = (): Effect.Effect<void, E> =>
      waiter.ended === undefined ? Effect.void : Effect.failSync(() => onEnd(waiter.ended!))
    waiter.bounded = true
    if (this.closed) this.end(waiter, "closed")
    if (waiter.granted || waiter.ended !== undefined) return outcome()
    return Effect.clockWith((clock) =>
      Effect.async<void, E>((resume) => {
        // The caller's clock (a TestClock in tests), on a root fiber of its own.
        const timer = Effect.runFork(
          Effect.zipRight(clock.sleep(Duration.decode(timeout)), Effect.sync(() => this.end(waiter, "timeout")))
        )
        const settle = () => {
          timer.unsafeInterruptAsFork(FiberId.none)
          resume(outcome())
        }
        if (waiter.granted || waiter.ended !== undefined) return settle()
        waiter.wake = settle
        return Effect.sync(() => {
          waiter.wake = undefined
          timer.unsafeInterruptAsFork(FiberId.none)
        })
      })
    )
  }

  // Runs uninterruptibly when the wait ends without the caller taking the permit: an interruption may
  // land after the grant, even after the wait returned, so the waiter's state decides.
  private abandon(waiter: Waiter): void {
    if (waiter.ended !== undefined) return
    if (waiter.granted) {
      this.release()
    } else {
      const index = this.queue.indexOf(waiter)
      if (index >= 0) this.queue.splice(index, 1)
    }
  }

  private acquire<A, E, R, E2>(
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
    wait: (waiter: Waiter) => Effect.Effect<void, E2>,
    use: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | E2, R> {
    return Effect.suspend(() => {
      const waiter = this.enqueue()
      return restore(waiter.granted ? Effect.void : wait(waiter)).pipe(
        Effect.onExit((exit) => exit._tag === "Failure" ? Effect.sync(() => this.abandon(waiter)) : Effect.void),
        Effect.zipRight(use)
      )
    })
  }

  private readonly releaseLater = Effect.addFinalizer(() => Effect.sync(() => this.release()))

  readonly withPermit = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      this.acquire(
        restore,
        (waiter) => this.awaitGrant(waiter),
        Effect.ensuring(restore(self), Effect.sync(() => this.release()))
      )
    )

  readonly takeScoped: Effect.Effect<void, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
    this.acquire(restore, (waiter) => this.awaitGrant(waiter), this.releaseLater)
  )

  readonly takeScopedWithin = <E>(
    timeout: Duration.DurationInput,
    onEnd: (ended: Ended) => E
  ): Effect.Effect<void, E, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      this.acquire(restore, (waiter) => this.awaitGrantWithin(waiter, timeout, onEnd), this.releaseLater)
    )

  readonly close = (): void => {
    this.closed = true
    for (const waiter of this.queue.filter((waiter) => waiter.bounded)) this.end(waiter, "closed")
  }
}

/**
 * A semaphore with `permits` permits, outside of any Effect.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = (permits: number): FifoSemaphore => new FifoSemaphoreImpl(permits)

/**
 * A semaphore with `permits` permits.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (permits: number): Effect.Effect<FifoSemaphore> => Effect.sync(() => unsafeMake(permits))
