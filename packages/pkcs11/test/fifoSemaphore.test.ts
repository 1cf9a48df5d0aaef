/**
 * The bounded wait of the FIFO semaphore: it ends by the grant, its timeout or `close`, whatever the caller's
 * interruptibility, and an interruption never costs a permit.
 */
import { assert, describe, it } from "@effect/vitest"
import * as FifoSemaphore from "@hsmkey/pkcs11/internal/fifoSemaphore"
import { Cause, Duration, Effect, Exit, Fiber, Option, Scope, TestClock, TestServices } from "effect"

class Ended {
  readonly _tag = "Ended"
  constructor(readonly ended: FifoSemaphore.Ended) {}
}

const within = (semaphore: FifoSemaphore.FifoSemaphore) =>
  Effect.scoped(semaphore.takeScopedWithin("1 second", (ended) => new Ended(ended)))

/** Awaits a fiber, failing the test when it has not ended within a second of real time. */
const ended = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Fiber.await(fiber).pipe(
    Effect.timeoutFail({
      duration: Duration.seconds(1),
      onTimeout: () => new Error("the caller still waits after 1 s")
    }),
    TestServices.provideLive
  )

/** Holds one permit until the returned scope closes. */
const hold = (semaphore: FifoSemaphore.FifoSemaphore) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    yield* Scope.extend(semaphore.takeScoped, scope)
    return scope
  })

/** Why the wait ended without the permit, or `undefined` when it did not. */
const endedWith = (exit: Exit.Exit<unknown, Ended>): FifoSemaphore.Ended | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Option.map(Cause.failureOption(exit.cause), (e) => e.ended)) : undefined

describe("FifoSemaphore.takeScopedWithin", () => {
  it.scoped("an uninterruptible caller fails at its timeout, not when a permit comes free", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(1)
      const holder = yield* hold(semaphore)
      const waiter = yield* Effect.fork(Effect.uninterruptible(within(semaphore)))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      yield* TestClock.adjust("1 millis")
      const exit = yield* ended(waiter)
      assert.strictEqual(endedWith(exit), "timeout")
      assert.strictEqual(semaphore.waiting, 0)
      yield* Scope.close(holder, Exit.void)
      assert.strictEqual(semaphore.available, 1)
    }))

  it.scoped("an uninterruptible caller interrupted while it waits keeps waiting, and gets the permit", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(1)
      const holder = yield* hold(semaphore)
      let held = false
      const waiter = yield* Effect.fork(Effect.uninterruptible(Effect.scoped(Effect.zipRight(
        semaphore.takeScopedWithin("1 second", (ended) => new Ended(ended)),
        Effect.sync(() => {
          held = semaphore.available === 0
        })
      ))))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(waiter)
      yield* Effect.yieldNow()
      assert.strictEqual(semaphore.waiting, 1)
      yield* Scope.close(holder, Exit.void)
      assert.isTrue(Exit.isInterrupted(yield* ended(waiter)))
      assert.isTrue(held)
      assert.strictEqual(semaphore.available, 1)
      // The timer went with the wait: a later one times out on its own.
      yield* TestClock.adjust("1 second")
      assert.strictEqual(semaphore.available, 1)
    }))

  it.scoped("an interruptible caller interrupted while it waits leaves the queue, its timer stopped", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(1)
      const holder = yield* hold(semaphore)
      const waiter = yield* Effect.fork(within(semaphore))
      yield* Effect.yieldNow()
      assert.strictEqual(semaphore.waiting, 1)
      yield* Fiber.interrupt(waiter)
      assert.strictEqual(semaphore.waiting, 0)
      yield* TestClock.adjust("1 second")
      yield* Scope.close(holder, Exit.void)
      assert.strictEqual(semaphore.available, 1)
    }))

  it.scoped("close ends the bounded waits now and later; holders and unbounded waiters are left alone", () =>
    Effect.gen(function*() {
      const semaphore = FifoSemaphore.unsafeMake(1)
      const holder = yield* hold(semaphore)
      const bounded = yield* Effect.fork(Effect.uninterruptible(within(semaphore)))
      const unbounded = yield* Effect.fork(Effect.uninterruptible(semaphore.withPermit(Effect.void)))
      yield* Effect.yieldNow()
      semaphore.close()
      assert.strictEqual(endedWith(yield* ended(bounded)), "closed")
      assert.strictEqual(endedWith(yield* Effect.exit(within(semaphore))), "closed")
      assert.isTrue(Option.isNone(yield* Fiber.poll(unbounded)))
      yield* Scope.close(holder, Exit.void)
      assert.isTrue(Exit.isSuccess(yield* ended(unbounded)))
      // A free permit is still taken.
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(within(semaphore))))
      assert.strictEqual(semaphore.available, 1)
    }))
})
