import * as Fs from "node:fs"
import pkcs11js from "pkcs11js"
import { CKF, CKR } from "../Constants.js"

/**
 * A loaded PKCS#11 library, shared by every `NodePkcs11` layer of the process that names the same
 * file.
 */
export interface Module {
  readonly realPath: string
  readonly library: pkcs11js.PKCS11
  /** Initialized by someone else in this process (`CKR_CRYPTOKI_ALREADY_INITIALIZED`): never finalized by us. */
  readonly adopted: boolean
  refs: number
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

// One registry per process, even when two copies of this package are loaded: C_Initialize and
// C_Finalize act on the whole process, so the refcount must be global too.
const registryKey = Symbol.for("@hsmkey/pkcs11/ModuleRegistry")
const registry: Registry = ((globalThis as any)[registryKey] ??= { modules: new Map(), stats: new Map() })

const statsOf = (realPath: string): Stats => {
  let stats = registry.stats.get(realPath)
  if (stats === undefined) {
    stats = { initializeCalls: 0, finalizeCalls: 0 }
    registry.stats.set(realPath, stats)
  }
  return stats
}

const codeOf = (error: unknown): number | undefined =>
  error instanceof pkcs11js.Pkcs11Error && typeof error.code === "number" ? error.code : undefined

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
 * Takes a reference to the library at `realPath`, loading and initializing it on first use. Runs
 * synchronously, so concurrent acquisitions in one thread cannot interleave.
 */
export const acquire = (realPath: string): Module | LoadFailure => {
  const existing = registry.modules.get(realPath)
  if (existing !== undefined) {
    existing.refs++
    return existing
  }
  const library = new pkcs11js.PKCS11()
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
      return { reason: `C_Initialize failed (${messageOf(error)})`, ...codeFields(error) }
    }
  }
  const module: Module = { realPath, library, adopted, refs: 1 }
  registry.modules.set(realPath, module)
  return module
}

const codeFields = (error: unknown): { code?: number } => {
  const code = codeOf(error)
  return code === undefined ? {} : { code }
}

/**
 * Drops a reference; the last one finalizes (unless adopted) and unloads the library. Returns the
 * error of `C_Finalize`, if any, for the caller to log.
 */
export const release = (module: Module): { readonly finalized: boolean; readonly error?: unknown } => {
  module.refs--
  if (module.refs > 0) return { finalized: false }
  registry.modules.delete(module.realPath)
  let error: unknown = undefined
  if (!module.adopted) {
    try {
      statsOf(module.realPath).finalizeCalls++
      module.library.C_Finalize()
    } catch (e) {
      error = e
    }
  }
  module.library.close()
  return error === undefined ? { finalized: !module.adopted } : { finalized: !module.adopted, error }
}

/**
 * How often this process initialized and finalized the library at `realPath`, and how many references
 * are held now.
 */
export const stats = (realPath: string): Stats & { readonly refs: number; readonly adopted: boolean } => {
  const module = registry.modules.get(realPath)
  return { ...statsOf(realPath), refs: module?.refs ?? 0, adopted: module?.adopted ?? false }
}
