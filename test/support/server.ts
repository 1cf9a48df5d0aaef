import { Deferred, Effect, type Scope } from "effect"
import { spawn } from "node:child_process"
import { type ChildResult, root } from "./child.js"

/** A TypeScript program of the repository running in a child process until it is stopped. */
export interface Running {
  /** The first match of `ready` in its standard output. */
  readonly ready: RegExpExecArray
  /** Sends `signal` and waits for the process to end. */
  readonly stop: (signal: NodeJS.Signals) => Effect.Effect<ChildResult>
  /** What it wrote so far. */
  readonly output: () => { readonly stdout: string; readonly stderr: string }
}

/**
 * Starts a TypeScript file of the repository as a user would (`node --import tsx`), with the environment
 * merged over this process's, and waits until its standard output matches `ready`. An exit before that
 * fails with what it wrote; so does a wait longer than `timeoutMillis`. The process is killed when the
 * scope closes, if it still runs.
 */
export const startTs = (
  file: string,
  ready: RegExp,
  env: Record<string, string | undefined> = {},
  options: { readonly timeoutMillis?: number } = {}
): Effect.Effect<Running, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const merged = Object.fromEntries(
      Object.entries({ ...process.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined)
    )
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", file], {
          cwd: root,
          env: merged,
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    let stdout = ""
    let stderr = ""
    const started = yield* Deferred.make<RegExpExecArray, Error>()
    const exited = yield* Deferred.make<ChildResult>()
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      const match = ready.exec(stdout)
      if (match !== null) Deferred.unsafeDone(started, Effect.succeed(match))
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("close", (code, signal) => {
      const result: ChildResult = { code, signal, stdout, stderr }
      Deferred.unsafeDone(exited, Effect.succeed(result))
      Deferred.unsafeDone(
        started,
        Effect.fail(
          new Error(`${file} ended (code ${code}, signal ${signal}) before it was ready:\n${stdout}${stderr}`)
        )
      )
    })
    const match = yield* Deferred.await(started).pipe(
      Effect.timeoutFail({
        duration: options.timeoutMillis ?? 120_000,
        onTimeout: () => new Error(`${file} was not ready in time:\n${stdout}${stderr}`)
      })
    )
    return {
      ready: match,
      stop: (signal) => Effect.zipRight(Effect.sync(() => child.kill(signal)), Deferred.await(exited)),
      output: () => ({ stdout, stderr })
    }
  })
