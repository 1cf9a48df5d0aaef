import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"

/** Writes a line to stdout: results only, so that `--json` output is all there is there. */
export const line = (text: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(`${text}\n`))

/** Writes a value as JSON to stdout. */
export const json = (value: unknown): Effect.Effect<void> => line(JSON.stringify(value, null, 2))

/** Writes a line to stderr. */
export const note = (text: string): Effect.Effect<void> => Effect.sync(() => void process.stderr.write(`${text}\n`))

/** A warning on stderr. */
export const warn = (text: string): Effect.Effect<void> => note(`hsmkey: warning: ${text}`)

/** Whether a person is watching stderr: progress is shown only then. */
export const stderrIsTty = (): boolean => process.stderr.isTTY === true

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/**
 * Runs `effect` with a spinner and `message` on stderr, replaced in place and erased at the end, when
 * stderr is a terminal; with nothing at all otherwise.
 */
export const progress = <A, E, R>(message: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    if (!stderrIsTty()) return effect
    let frame = 0
    const draw = Effect.sync(() => {
      process.stderr.write(`\r\x1b[2K${FRAMES[frame % FRAMES.length]} ${message}`)
      frame++
    })
    const erase = Effect.sync(() => void process.stderr.write("\r\x1b[2K"))
    return Effect.acquireUseRelease(
      // Forked in acquire, which is uninterruptible: the spinner must be made interruptible, or it never stops.
      Effect.zipRight(
        draw,
        Effect.forkDaemon(Effect.interruptible(Effect.repeat(draw, Schedule.spaced(Duration.millis(80)))))
      ),
      () => effect,
      (spinner) => Effect.zipRight(Fiber.interrupt(spinner), erase)
    )
  })
