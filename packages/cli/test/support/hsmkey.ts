import { Effect } from "effect"
import { execFile, execFileSync } from "node:child_process"
import * as Path from "node:path"

export const root = Path.resolve(import.meta.dirname, "../../../..")
const bin = Path.join(root, "packages/cli/dist/bin.js")
const register = Path.join(import.meta.dirname, "distRegister.mjs")
const ptyScript = Path.join(import.meta.dirname, "terminal.py")

/** Builds the workspace once, as `pnpm build` does; the tests run what it wrote. */
export const build = (): void => {
  execFileSync("pnpm", ["--silent", "build"], { cwd: root, stdio: "inherit" })
}

/** Every output of every run, to check that no PIN ever appears in any of them. */
export const outputs: Array<string> = []

export interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

// The built binary, its dependencies resolved to their dist/ as an installed app resolves them.
const argvOf = (args: ReadonlyArray<string>): Array<string> => ["--import", register, bin, ...args]

const environment = (env: Record<string, string | undefined>): Record<string, string> => {
  const merged: Record<string, string | undefined> = {
    ...process.env,
    // Nothing of the test runner's own HSM configuration leaks in.
    HSM_MODULE: undefined,
    HSM_TOKEN: undefined,
    HSM_TOKEN_SERIAL: undefined,
    HSM_PIN: undefined,
    HSM_SO_PIN: undefined,
    HSM_NEW_PIN: undefined,
    ...env
  }
  return Object.fromEntries(
    Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== undefined)
  )
}

/** Runs `node packages/cli/dist/bin.js ...args` with pipes for stdin, stdout and stderr. */
export const hsmkey = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string | undefined>; readonly input?: string | undefined } = {}
): Effect.Effect<Result> =>
  Effect.async<Result>((resume) => {
    const child = execFile(process.execPath, argvOf(args), {
      cwd: root,
      env: environment(options.env ?? {}),
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      encoding: "utf8"
    }, (error, stdout, stderr) => {
      outputs.push(stdout, stderr)
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    child.stdin?.end(options.input ?? "")
  })

export interface PtyStep {
  readonly expect: string
  readonly send: string
  readonly hidden?: boolean
}

export interface PtyResult {
  readonly output: string
  readonly code: number
  readonly echoOff: ReadonlyArray<boolean>
  readonly unanswered: ReadonlyArray<string>
}

/** Runs the binary in a pseudo-terminal (python3's pty), answering prompts as a person would. */
export const hsmkeyOnTty = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string | undefined>; readonly steps?: ReadonlyArray<PtyStep> } = {}
): Effect.Effect<PtyResult> =>
  Effect.async<PtyResult>((resume) => {
    const spec = {
      argv: [process.execPath, ...argvOf(args)],
      env: environment(options.env ?? {}),
      steps: options.steps ?? [],
      timeout: 90
    }
    execFile("python3", [ptyScript, JSON.stringify(spec)], {
      cwd: root,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      encoding: "utf8"
    }, (error, stdout, stderr) => {
      if (error !== null) return resume(Effect.die(new Error(`terminal.py failed: ${stderr}`)))
      const result = JSON.parse(stdout) as PtyResult
      outputs.push(result.output)
      resume(Effect.succeed(result))
    })
  })

/** Whether python3 has a pty module here: the terminal tests need it. */
export const ptyAvailable = (): boolean => {
  try {
    execFileSync("python3", ["-c", "import pty, termios"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}
