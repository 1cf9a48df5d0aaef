/**
 * The `Pkcs11` service over a native PKCS#11 library, through pkcs11js.
 *
 * A library is loaded and initialized once per process and real path, however many layers name it:
 * `C_Initialize` and `C_Finalize` act on the whole process, so layers share one initialization and the
 * last one to close finalizes and unloads it. A library that something else in the process already
 * initialized (`CKR_CRYPTOKI_ALREADY_INITIALIZED`) is used as it is and never finalized by hsmkey.
 *
 * @since 0.1.0
 */
import { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import * as Pkcs11Driver from "@hsmkey/pkcs11/Pkcs11Driver"
import { ModuleLoadFailed } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as NodeDriver from "./internal/nodeDriver.js"
import * as Registry from "./internal/registry.js"
import * as SigningThreads from "./internal/signingThreads.js"

/**
 * Options of a native PKCS#11 module.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodePkcs11Options {
  /** The path of the PKCS#11 shared library, such as `/usr/lib/softhsm/libsofthsm2.so`. */
  readonly modulePath: string
  /**
   * How long closing the last holder of the library waits for native calls still in flight (signatures,
   * key generation) before leaving the library to be finalized when they settle (default 10 seconds).
   * It is never finalized under a running call: that crashes the process.
   */
  readonly closeTimeout?: Duration.DurationInput | undefined
  /**
   * Whether native calls on different sessions may run at once on the threadpool. `"auto"` (default)
   * runs them in parallel, except for libraries known to crash that way: openCryptoki (its software token
   * corrupts its object cache when two threads reload a token object that changed, SIGSEGV), which is
   * called one call at a time. `"serial"` forces one at a time, `"parallel"` allows it for a library known
   * to be safe. Decided when the process first loads the library.
   */
  readonly concurrency?: "auto" | "parallel" | "serial" | undefined
}

/**
 * Loads (or shares) the library and builds the service; the reference is dropped when the scope
 * closes. Session pools built on the service hold the library too, so closing this scope first finalizes
 * nothing under them: the library goes with the last of its holders, once no native call is in flight.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: NodePkcs11Options): Effect.Effect<Pkcs11.Service, ModuleLoadFailed, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const realPath = Registry.resolve(options.modulePath)
      if (typeof realPath !== "string") {
        return Effect.fail(new ModuleLoadFailed({ path: options.modulePath, ...realPath }))
      }
      const module = Registry.acquire(realPath, options.concurrency)
      return "library" in module
        ? Effect.succeed({ module, driver: NodeDriver.make(module) })
        : Effect.fail(new ModuleLoadFailed({ path: options.modulePath, ...module }))
    }),
    ({ driver, module }) =>
      Pkcs11Driver.release(driver, options.closeTimeout ?? Pkcs11Driver.DEFAULT_CLOSE_TIMEOUT).pipe(
        Effect.zipRight(Effect.suspend(() =>
          module.finalizeError === undefined
            ? Effect.void
            : Effect.logWarning(`C_Finalize of ${module.realPath} failed`).pipe(
              Effect.annotateLogs("error", String(module.finalizeError))
            )
        ))
      )
  ).pipe(
    Effect.map(({ driver }) => Pkcs11Driver.makeService(driver, { closeTimeout: options.closeTimeout })),
    Effect.withSpan("NodePkcs11.make", { attributes: { "pkcs11.modulePath": options.modulePath } })
  )

/**
 * How this process holds a library: whether it is loaded now, whether hsmkey adopted an
 * initialization made by someone else, how many references are open, and how often hsmkey called
 * `C_Initialize` and `C_Finalize` on it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModuleStatus {
  readonly realPath: string
  /** Loaded and initialized: held, or still finishing native calls after its last holder closed. */
  readonly loaded: boolean
  readonly adopted: boolean
  readonly references: number
  /** Native calls into the library running on the threadpool now. */
  readonly inFlight: number
  /** Whether calls into the library are made one at a time (see `NodePkcs11Options.concurrency`). */
  readonly serialized: boolean
  readonly initializeCalls: number
  readonly finalizeCalls: number
  /** Signing threads loaded and listening (see `SessionPoolOptions.signingThreads`). */
  readonly signingThreads: number
}

/**
 * The status of the library at `modulePath` in this process (`ModuleLoadFailed` when the file does not
 * exist).
 *
 * @example
 * ```ts
 * import { NodePkcs11 } from "@hsmkey/node"
 * import { Effect } from "effect"
 *
 * Effect.runPromise(Effect.flip(NodePkcs11.moduleStatus("/nonexistent/libpkcs11.so"))).then((error) =>
 *   assert.strictEqual(error._tag, "ModuleLoadFailed")
 * )
 * ```
 *
 * @since 0.1.0
 * @category diagnostics
 */
export const moduleStatus = (modulePath: string): Effect.Effect<ModuleStatus, ModuleLoadFailed> =>
  Effect.suspend(() => {
    const realPath = Registry.resolve(modulePath)
    if (typeof realPath !== "string") return Effect.fail(new ModuleLoadFailed({ path: modulePath, ...realPath }))
    const stats = Registry.stats(realPath)
    return Effect.succeed({
      realPath,
      loaded: stats.loaded,
      adopted: stats.adopted,
      references: stats.refs,
      inFlight: stats.inflight,
      serialized: stats.serialized,
      initializeCalls: stats.initializeCalls,
      finalizeCalls: stats.finalizeCalls,
      signingThreads: SigningThreads.ready(realPath)
    })
  })

/**
 * A layer providing `Pkcs11` over the library at `modulePath`.
 *
 * @example
 * ```ts
 * import { NodePkcs11 } from "@hsmkey/node"
 * import { Effect } from "effect"
 * import { Capabilities } from "hsmkey"
 *
 * // What a token of a real library can do; no PIN needed.
 * const program = Capabilities.ofToken({ tokenLabel: "issuer" }).pipe(
 *   Effect.provide(NodePkcs11.layer({ modulePath: "/usr/lib/softhsm/libsofthsm2.so" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: NodePkcs11Options): Layer.Layer<Pkcs11, ModuleLoadFailed> =>
  Layer.scoped(Pkcs11, make(options))

/**
 * A layer providing `Pkcs11`, with its options read from `Config`:
 * `NodePkcs11.layerConfig({ modulePath: Config.string("HSM_MODULE") })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<NodePkcs11Options>
): Layer.Layer<Pkcs11, ModuleLoadFailed | ConfigError.ConfigError> =>
  Layer.scoped(Pkcs11, Effect.flatMap(Config.unwrap(options), make))
