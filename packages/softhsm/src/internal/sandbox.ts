import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as NodePkcs11 from "@hsmkey/node/NodePkcs11"
import type { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

/**
 * The SoftHSM2 installation of this process: one configuration and token directory in a temporary
 * directory, and the module initialized with it.
 *
 * SoftHSM2 reads `SOFTHSM2_CONF` only in `C_Initialize`, and the module is initialized once per process.
 * So every `SoftHsm.layer` of the process shares this sandbox and gets its own token in it; the last one
 * to close finalizes the module and deletes the directory.
 */
export interface Sandbox {
  readonly directory: string
  readonly configPath: string
  readonly modulePath: string
  readonly pkcs11: Pkcs11.Service
  readonly scope: Scope.CloseableScope
  readonly labels: Set<string>
  references: number
}

interface State {
  current: Sandbox | undefined
  readonly lock: Effect.Semaphore
}

// Shared by every copy of this package in the process, as the native module is.
const processWide = globalThis as unknown as Record<symbol, unknown>
const state = (processWide[Symbol.for("@hsmkey/softhsm/Sandbox")] ??= {
  current: undefined,
  lock: Effect.unsafeMakeSemaphore(1)
}) as State

export type OpenFailure =
  | { readonly _tag: "AlreadyInitialized"; readonly modulePath: string }
  | { readonly _tag: "OtherModule"; readonly modulePath: string }
  | { readonly _tag: "ModuleLoadFailed"; readonly error: unknown }
  | { readonly _tag: "FileSystem"; readonly error: PlatformError.PlatformError }

/**
 * Runs `f` while holding the process-wide sandbox lock: provisioning picks free slots, which two layers
 * must not do at once.
 */
export const locked = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  state.lock.withPermits(1)(effect)

const config = (tokenDir: string) =>
  [
    `directories.tokendir = ${tokenDir}`,
    "objectstore.backend = file",
    "log.level = ERROR",
    "slots.removable = false",
    ""
  ].join("\n")

/**
 * Takes a reference to the sandbox, creating it (and initializing the module) when there is none.
 * Must run under `locked`.
 */
export const open = (
  modulePath: string
): Effect.Effect<Sandbox, OpenFailure, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const status = yield* NodePkcs11.moduleStatus(modulePath).pipe(
      Effect.mapError((error): OpenFailure => ({ _tag: "ModuleLoadFailed", error }))
    )
    const current = state.current
    if (current !== undefined) {
      if (current.modulePath !== status.realPath) {
        return yield* Effect.fail<OpenFailure>({ _tag: "OtherModule", modulePath: current.modulePath })
      }
      current.references++
      return current
    }
    if (status.loaded) return yield* Effect.fail<OpenFailure>({ _tag: "AlreadyInitialized", modulePath })

    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const fileSystemFailure = (error: PlatformError.PlatformError): OpenFailure => ({ _tag: "FileSystem", error })
    const directory = yield* fs.makeTempDirectory({ prefix: "hsmkey-softhsm-" }).pipe(
      Effect.mapError(fileSystemFailure)
    )
    const tokenDir = path.join(directory, "tokens")
    const configPath = path.join(directory, "softhsm2.conf")
    const removeDirectory = fs.remove(directory, { recursive: true }).pipe(Effect.ignoreLogged)
    yield* Effect.gen(function*() {
      yield* fs.makeDirectory(tokenDir, { mode: 0o700 })
      yield* fs.writeFileString(configPath, config(tokenDir), { mode: 0o600 })
    }).pipe(Effect.mapError(fileSystemFailure), Effect.tapError(() => removeDirectory))

    const scope = yield* Scope.make()
    const pkcs11 = yield* withConfig(configPath, Scope.extend(NodePkcs11.make({ modulePath }), scope)).pipe(
      Effect.mapError((error): OpenFailure => ({ _tag: "ModuleLoadFailed", error })),
      Effect.tapError(() => Effect.zipRight(Scope.close(scope, Exit.void), removeDirectory))
    )
    const after = yield* NodePkcs11.moduleStatus(modulePath).pipe(Effect.orDie)
    if (after.adopted) {
      // Another thread of the process initialized SoftHSM2 first: it did not read our configuration.
      yield* Scope.close(scope, Exit.void)
      yield* removeDirectory
      return yield* Effect.fail<OpenFailure>({ _tag: "AlreadyInitialized", modulePath })
    }
    const sandbox: Sandbox = {
      directory,
      configPath,
      modulePath: after.realPath,
      pkcs11,
      scope,
      labels: new Set(),
      references: 1
    }
    state.current = sandbox
    return sandbox
  })

/**
 * Points `SOFTHSM2_CONF` at the sandbox while the module initializes, and restores it afterwards so
 * that child processes and later initializations see the environment they had.
 */
const withConfig = <A, E, R>(configPath: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const previous = process.env.SOFTHSM2_CONF
      process.env.SOFTHSM2_CONF = configPath
      return previous
    }),
    () => effect,
    (previous) =>
      Effect.sync(() => {
        if (previous === undefined) delete process.env.SOFTHSM2_CONF
        else process.env.SOFTHSM2_CONF = previous
      })
  )

/**
 * Drops a reference; the last one finalizes the module and deletes the directory. Must run under
 * `locked`.
 */
export const close = (sandbox: Sandbox): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    sandbox.references--
    if (sandbox.references > 0) return
    state.current = undefined
    yield* Scope.close(sandbox.scope, Exit.void)
    const status = yield* NodePkcs11.moduleStatus(sandbox.modulePath).pipe(Effect.option)
    if (status._tag === "Some" && status.value.loaded) {
      // Someone else still holds SoftHSM2 initialized with this configuration: deleting its token
      // directory now would break their slot scans (CKR_GENERAL_ERROR), so it stays.
      yield* Effect.logWarning(
        `SoftHSM2 is still in use in this process; keeping its throwaway tokens in ${sandbox.directory}`
      )
      return
    }
    const fs = yield* FileSystem.FileSystem
    yield* fs.remove(sandbox.directory, { recursive: true }).pipe(Effect.ignoreLogged)
  })
