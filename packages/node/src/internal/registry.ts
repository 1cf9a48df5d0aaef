import { CKF, CKR } from "@hsmkey/pkcs11/Constants"
import * as FifoSemaphore from "@hsmkey/pkcs11/internal/fifoSemaphore"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import type pkcs11js from "pkcs11js"

/** pkcs11js's API: loaded with the first library, so that importing hsmkey never loads a native addon. */
export type Api = typeof pkcs11js

const buildAdvice = "its native addon is built when it is installed: with pnpm, allow its build script " +
  "(pnpm-workspace.yaml `allowBuilds: { pkcs11js: true }`, or `pnpm approve-builds`); with npm, approve it " +
  "(`npm install-scripts approve pkcs11js`) and do not install with --ignore-scripts; node-gyp needs a C++ " +
  "compiler, make, Python 3 and Node's headers (npm_config_nodedir). Then run `pnpm rebuild pkcs11js` or " +
  "`npm rebuild pkcs11js`"

/**
 * What to check when a library refuses to initialize: SoftHSM2 answers CKR_GENERAL_ERROR when it cannot read
 * its configuration or its token directory.
 */
const initializeHint = (realPath: string, error: unknown): string => {
  if (!/softhsm/iu.test(Path.basename(realPath)) || codeOf(error) !== CKR.GENERAL_ERROR) return ""
  const conf = process.env.SOFTHSM2_CONF
  const named = conf === undefined || conf === "" ? "unset (SoftHSM2 reads /etc/softhsm/softhsm2.conf)" : `"${conf}"`
  return `; SoftHSM2 could not read its configuration: SOFTHSM2_CONF is ${named}; check that the file exists ` +
    "and is readable, and that its directories.tokendir exists and is writable by this user"
}

let api: Api | undefined

/** pkcs11js, loaded on first use; a missing or unbuilt addon is a load failure that says how to build it. */
export const loadApi = (): Api | LoadFailure => {
  if (api !== undefined) return api
  try {
    api = createRequire(import.meta.url)("pkcs11js") as Api
    return api
  } catch (error) {
    return { reason: `pkcs11js did not load (${messageOf(error)}); ${buildAdvice}` }
  }
}

/**
 * A loaded PKCS#11 library, shared by every `NodePkcs11` layer of the process that names the same
 * file.
 *
 * C_Finalize and dlclose under a native call still running on the threadpool crash the process
 * (SIGSEGV, measured with RSA-4096 signatures on SoftHSM2), and a call into a closed library is a plain
 * Error from pkcs11js. So the library is finalized only when nothing holds it (layers and session pools
 * hold references) and no native call made through it is in flight; a call made once nothing holds it
 * fails with `CKR_CRYPTOKI_NOT_INITIALIZED`, as the library itself would answer after C_Finalize.
 */
export interface Module {
  readonly realPath: string
  readonly api: Api
  readonly library: pkcs11js.PKCS11
  /** Initialized by someone else in this process (`CKR_CRYPTOKI_ALREADY_INITIALIZED`): never finalized by us. */
  readonly adopted: boolean
  /** Layers and pools holding the library. */
  refs: number
  /** Native calls running on the threadpool now. */
  inflight: number
  /** `closing` once nothing holds it, `closed` once finalized (or left, when adopted) and unloaded. */
  state: "open" | "closing" | "closed"
  /**
   * Changes whenever an object is created, found, generated or destroyed through the library in this
   * process: tokens such as openCryptoki give a destroyed object's handle number to the next object they
   * hand out, so a handle proven to be a key's before may name another object since.
   */
  objectGeneration: number
  /** Resolves once the library is finalized and unloaded. */
  readonly closed: Promise<void>
  /**
   * For a library that is not safe to call from two threads at once: every call into it takes this lock,
   * so that no two run at the same time (see `unsafeInParallel`).
   */
  readonly exclusive: FifoSemaphore.FifoSemaphore | undefined
  /** The error of a deferred `C_Finalize`, for whoever waits on `closed`. */
  finalizeError: unknown
  /**
   * Stops what must end before the library is finalized (its signing threads), once no call is in flight:
   * a promise while that is under way, `undefined` when nothing is left.
   */
  stopThreads: () => Promise<void> | undefined
  readonly markClosed: () => void
}

export interface Stats {
  initializeCalls: number
  finalizeCalls: number
}

export type LoadFailure = { readonly reason: string; readonly code?: number }

interface Registry {
  readonly modules: Map<string, Module>
  readonly stats: Map<string, Stats>
}

const processWide = globalThis as unknown as Record<symbol, unknown>

// One registry per process, even when two copies of this package are loaded: C_Initialize and
// C_Finalize act on the whole process, so the refcount must be global too.
// (Effect's GlobalValue would not do: its store is per version of effect.)
const registry: Registry = (processWide[Symbol.for("@hsmkey/pkcs11/ModuleRegistry")] ??= {
  modules: new Map(),
  stats: new Map()
}) as Registry

const statsOf = (realPath: string): Stats => {
  let stats = registry.stats.get(realPath)
  if (stats === undefined) {
    stats = { initializeCalls: 0, finalizeCalls: 0 }
    registry.stats.set(realPath, stats)
  }
  return stats
}

const codeOf = (error: unknown): number | undefined =>
  api !== undefined && error instanceof api.Pkcs11Error && typeof error.code === "number" ? error.code : undefined

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * Resolves the library's real path, so that two spellings of one file share one initialization.
 */
export const resolve = (modulePath: string): string | LoadFailure => {
  try {
    return Fs.realpathSync(modulePath)
  } catch (error) {
    return { reason: `no such file (${messageOf(error)})` }
  }
}

/**
 * Libraries that crash when called from two threads at once. openCryptoki 3.8's software token reloads a
 * token object that another process changed (or that C_SetAttributeValue changed before a logout and a
 * login) from every thread that touches it, with no lock: two C_Sign on two sessions then crash the process
 * (SIGSEGV in object_mgr_check_shm, measured: 2 of 2 runs with another process relabelling the key, none
 * with one session). Later versions are not known to be fixed, so every openCryptoki is called one at a time.
 */
export const unsafeInParallel = (info: { readonly manufacturerID: string; readonly libraryDescription: string }) =>
  info.manufacturerID.trim() === "IBM" && info.libraryDescription.trim() === "Meta PKCS11 LIBRARY"

export type Concurrency = "auto" | "parallel" | "serial"

const exclusiveLock = (library: pkcs11js.PKCS11, concurrency: Concurrency): FifoSemaphore.FifoSemaphore | undefined => {
  if (concurrency === "parallel") return undefined
  if (concurrency === "serial") return FifoSemaphore.unsafeMake(1)
  try {
    return unsafeInParallel(library.C_GetInfo()) ? FifoSemaphore.unsafeMake(1) : undefined
  } catch {
    // A library that cannot describe itself is called one at a time: that is always safe.
    return FifoSemaphore.unsafeMake(1)
  }
}

/**
 * Takes a reference to the library at `realPath`, loading and initializing it on first use. Runs
 * synchronously, so concurrent acquisitions in one thread cannot interleave.
 */
export const acquire = (realPath: string, concurrency: Concurrency = "auto"): Module | LoadFailure => {
  const existing = registry.modules.get(realPath)
  if (existing !== undefined && retain(existing)) return existing
  const loaded = loadApi()
  if (!("PKCS11" in loaded)) return loaded
  const library = new loaded.PKCS11()
  try {
    library.load(realPath)
  } catch (error) {
    return { reason: `not a loadable PKCS#11 library (${messageOf(error)})`, ...codeFields(error) }
  }
  let adopted = false
  try {
    statsOf(realPath).initializeCalls++
    library.C_Initialize({ flags: CKF.OS_LOCKING_OK })
  } catch (error) {
    if (codeOf(error) === CKR.CRYPTOKI_ALREADY_INITIALIZED) {
      adopted = true
    } else {
      library.close()
      return {
        reason: `C_Initialize failed (${messageOf(error)})${initializeHint(realPath, error)}`,
        ...codeFields(error)
      }
    }
  }
  let markClosed: () => void = () => {}
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve
  })
  const module: Module = {
    realPath,
    api: loaded,
    library,
    adopted,
    refs: 1,
    inflight: 0,
    state: "open",
    stopThreads: () => undefined,
    objectGeneration: 0,
    closed,
    finalizeError: undefined,
    markClosed,
    exclusive: exclusiveLock(library, concurrency)
  }
  registry.modules.set(realPath, module)
  return module
}

const codeFields = (error: unknown): { code?: number } => {
  const code = codeOf(error)
  return code === undefined ? {} : { code }
}

/**
 * Takes one more reference to a library that is loaded (`false` once it is finalized): a library that
 * nothing held but that was still finishing native calls is held again and stays.
 */
export const retain = (module: Module): boolean => {
  if (module.state === "closed") return false
  module.refs++
  module.state = "open"
  return true
}

// Finalizes (unless adopted) and unloads, once nothing holds the library and no native call runs.
const finalizeIfIdle = (module: Module): void => {
  if (module.state !== "closing" || module.inflight > 0) return
  // A thread that exits runs its destructors in the library's code: finalizing or unloading it before the
  // thread is gone crashes the process. The wait counts as a call in flight; a retain meanwhile keeps it.
  const stopping = module.stopThreads()
  if (stopping !== undefined) {
    void inflight(module, () => stopping)
    return
  }
  module.state = "closed"
  registry.modules.delete(module.realPath)
  if (!module.adopted) {
    try {
      statsOf(module.realPath).finalizeCalls++
      module.library.C_Finalize()
    } catch (error) {
      module.finalizeError = error
    }
  }
  module.library.close()
  module.markClosed()
}

/**
 * Drops a reference. With the last one the library stops serving calls and is finalized and unloaded
 * as soon as no native call is in flight: `closed` resolves then.
 */
export const release = (module: Module): void => {
  module.refs--
  if (module.refs > 0) return
  module.state = "closing"
  finalizeIfIdle(module)
}

/**
 * Runs a native threadpool call through the library: it holds the library loaded until it settles.
 */
export const inflight = async <A>(module: Module, f: () => Promise<A>): Promise<A> => {
  module.inflight++
  try {
    return await f()
  } finally {
    module.inflight--
    finalizeIfIdle(module)
  }
}

/**
 * How often this process initialized and finalized the library at `realPath`, and how many references
 * are held now.
 */
export const stats = (
  realPath: string
): Stats & {
  readonly loaded: boolean
  readonly refs: number
  readonly inflight: number
  readonly adopted: boolean
  readonly serialized: boolean
} => {
  const module = registry.modules.get(realPath)
  return {
    ...statsOf(realPath),
    loaded: module !== undefined,
    refs: module?.refs ?? 0,
    inflight: module?.inflight ?? 0,
    adopted: module?.adopted ?? false,
    serialized: module?.exclusive !== undefined
  }
}
