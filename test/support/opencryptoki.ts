/**
 * openCryptoki's software token as a test backend: one token per machine (slot 3, "IBM SoftTok"), served
 * by the `pkcsslotd` daemon, shared by every process. Test files that use it take a machine-wide lock
 * and re-initialize the token for themselves (C_InitToken wipes it), so they run one at a time.
 */
import { NodePkcs11 } from "@hsmkey/node"
import { Constants, type Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Redacted, type Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export const openCryptokiModule = process.env.OPENCRYPTOKI_MODULE ??
  "/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0"

const daemonSocket = "/var/run/pkcsslotd.socket"

const absence = (): string | undefined => {
  if (!Fs.existsSync(openCryptokiModule)) {
    return `openCryptoki is not installed (apt-get install opencryptoki, or set OPENCRYPTOKI_MODULE)`
  }
  if (!Fs.existsSync(daemonSocket)) return "the openCryptoki daemon pkcsslotd is not running (scripts/test starts it)"
  return undefined
}

const why = absence()

/** Whether openCryptoki and its daemon are here. Under `CI` their absence fails the suite at import. */
export const openCryptokiAvailable = why === undefined

if (why !== undefined) {
  if (process.env.CI) throw new Error(`${why}: openCryptoki tests may not skip under CI`)
  console.warn(`Skipping openCryptoki tests: ${why}`)
}

/** The SO PIN the token has (openCryptoki's default, which `C_InitToken` checks and cannot be set back to). */
export const soPin = Redacted.make(process.env.OPENCRYPTOKI_SO_PIN ?? "87654321")

/** openCryptoki takes PINs of 4 to 8 characters. */
export const userPin = Redacted.make("hk-u1234")

const lockFile = Path.join(Os.tmpdir(), "hsmkey-opencryptoki.lock")

/**
 * The machine-wide lock on the openCryptoki token, for the scope's lifetime: an exclusive `flock(1)` held
 * by a child process until its standard input closes. The kernel releases it when that process ends, so a
 * test process that dies cannot leave the token locked, and two waiters cannot both take it.
 */
export const machineLock: Effect.Effect<void, Error, Scope.Scope> = Effect.asVoid(Effect.acquireRelease(
  Effect.async<ChildProcess.ChildProcess, Error>((resume) => {
    const child = ChildProcess.spawn("flock", ["--exclusive", lockFile, "sh", "-c", "echo locked; cat >/dev/null"], {
      stdio: ["pipe", "pipe", "inherit"]
    })
    let settled = false
    const settle = (effect: Effect.Effect<ChildProcess.ChildProcess, Error>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    child.stdout.once("data", () => settle(Effect.succeed(child)))
    child.once("error", (error) => settle(Effect.fail(error)))
    child.once("exit", (code) => settle(Effect.fail(new Error(`flock ended (${code}) before taking ${lockFile}`))))
    return Effect.sync(() => child.kill())
  }),
  (child) => Effect.sync(() => child.stdin?.end())
))

const SOFT_TOKEN_MODEL = "IBM SoftTok"

/**
 * The software token, re-initialized under `label` with a fresh user PIN. A token someone labelled
 * otherwise than openCryptoki's default or a previous run of these tests is not wiped: set
 * `HSMKEY_OPENCRYPTOKI_WIPE=1` to allow it.
 */
export const provision = (label: string): Effect.Effect<
  { readonly pkcs11: Pkcs11.Pkcs11.Service; readonly slot: Pkcs11.SlotId; readonly serialNumber: string },
  unknown,
  Scope.Scope
> =>
  Effect.gen(function*() {
    yield* machineLock
    const pkcs11 = yield* NodePkcs11.make({ modulePath: openCryptokiModule })
    let found: Pkcs11.TokenInfo | undefined
    for (const slot of yield* pkcs11.slots()) {
      const info = yield* pkcs11.tokenInfo(slot)
      if (info.model === SOFT_TOKEN_MODEL) found = info
    }
    if (found === undefined) return yield* Effect.dieMessage(`openCryptoki lists no ${SOFT_TOKEN_MODEL} token`)
    const ours = !found.initialized || found.label === "IBM OS PKCS#11" || found.label.startsWith("hsmkey-")
    if (!ours && process.env.HSMKEY_OPENCRYPTOKI_WIPE !== "1") {
      return yield* Effect.dieMessage(
        `the openCryptoki token is labelled "${found.label}": set HSMKEY_OPENCRYPTOKI_WIPE=1 to let the tests wipe it`
      )
    }
    const slot = found.slotId
    yield* pkcs11.closeAllSessions(slot)
    yield* pkcs11.initToken(slot, { soPin, label })
    yield* Effect.acquireUseRelease(
      pkcs11.openSession(slot, { rw: true }),
      (session) =>
        Effect.gen(function*() {
          yield* pkcs11.login(session, soPin, "so")
          yield* pkcs11.initPin(session, userPin)
          yield* pkcs11.logout(session)
        }),
      (session) => Effect.ignore(pkcs11.closeSession(session))
    )
    const info = yield* pkcs11.tokenInfo(slot)
    if ((info.flags & Constants.CKF.USER_PIN_INITIALIZED) === 0) {
      return yield* Effect.dieMessage("openCryptoki: the user PIN did not initialize")
    }
    return { pkcs11, slot, serialNumber: info.serialNumber }
  })
