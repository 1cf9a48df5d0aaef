import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Path from "node:path"
import { promisify } from "node:util"

export const root = Path.resolve(import.meta.dirname, "../..")

export interface ChildResult {
  /** The exit code, or `null` when a signal ended the process. */
  readonly code: number | null
  readonly signal: string | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs a TypeScript file of the repository in a child process, as a user would (`node --import tsx`), with
 * the environment merged over this process's (`undefined` unsets a variable).
 */
export const runTs = (
  file: string,
  env: Record<string, string | undefined> = {},
  options: { readonly timeoutMillis?: number } = {}
): Effect.Effect<ChildResult> => {
  const merged = Object.fromEntries(
    Object.entries({ ...process.env, ...env }).filter((entry): entry is [string, string] => entry[1] !== undefined)
  )
  return Effect.promise(() =>
    promisify(execFile)(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      env: merged,
      timeout: options.timeoutMillis ?? 120_000,
      maxBuffer: 16 * 1024 * 1024
    }).then(
      (out): ChildResult => ({ code: 0, signal: null, stdout: out.stdout, stderr: out.stderr }),
      (error: { code?: number | string; signal?: string | null; stdout?: string; stderr?: string }): ChildResult => ({
        code: typeof error.code === "number" ? error.code : null,
        signal: error.signal ?? null,
        stdout: error.stdout ?? "",
        stderr: error.stderr ?? ""
      })
    )
  )
}
