/**
 * Throwaway SoftHSM2 tokens as a Layer, for tests and demos.
 *
 * `SoftHsm.layer()` finds the SoftHSM2 library, points it at a configuration in a temporary
 * directory, initializes a fresh token through PKCS#11 alone (`C_InitToken`, SO login, `C_InitPIN`;
 * no `softhsm2-util`), and provides `Pkcs11` with a `SoftHsm.Token` describing it. When the scope
 * closes the token is wiped, and with the last layer of the process the directory is deleted.
 *
 * Several layers in one process each get their own token. SoftHSM2 reads its configuration only when
 * the library initializes, once per process, so they share one configuration; hsmkey refuses to start
 * when something else in the process already initialized SoftHSM2 with another one.
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { Pkcs11, type SessionHandle, type SlotId } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SessionPool from "hsmkey/SessionPool"
import * as Crypto from "node:crypto"
import { installAdvice, locate } from "./internal/locate.js"
import * as Sandbox from "./internal/sandbox.js"

/**
 * Why a throwaway token could not be provided.
 *
 * @since 0.1.0
 * @category errors
 */
export class SoftHsmError extends Schema.TaggedError<SoftHsmError>("@hsmkey/softhsm/SoftHsmError")("SoftHsmError", {
  reason: Schema.Literal(
    "NotInstalled",
    "AlreadyInitialized",
    "InvalidOptions",
    "LabelInUse",
    "FileSystem",
    "Provisioning"
  ),
  detail: Schema.String,
  /** The failure underneath: a Cryptoki error, a file system error, a library that did not load. */
  underlying: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `SoftHSM2 ${this.reason}: ${this.detail}`
  }
}

/**
 * Options of a throwaway token. PINs default to random ones, readable from `SoftHsm.Token`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SoftHsmOptions {
  /** At most 32 bytes of UTF-8; defaults to `hsmkey-` and random hex. Unique among live tokens. */
  readonly tokenLabel?: string | undefined
  readonly userPin?: Redacted.Redacted<string> | undefined
  readonly soPin?: Redacted.Redacted<string> | undefined
  /** The SoftHSM2 library; by default `SOFTHSM2_MODULE`, then the usual install locations. */
  readonly modulePath?: string | undefined
}

/**
 * A provisioned token.
 *
 * @since 0.1.0
 * @category tags
 */
export class Token extends Context.Tag("@hsmkey/softhsm/SoftHsm/Token")<Token, Token.Info>() {}

/**
 * The types that go with the `Token` tag.
 *
 * @since 0.1.0
 */
export declare namespace Token {
  /**
   * Where the token lives and how to reach it: its label and serial number, the library, the configuration
   * file, its PINs, and the environment a child process needs to see it.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Info {
    readonly label: string
    readonly serialNumber: string
    /** The real path of the SoftHSM2 library. */
    readonly modulePath: string
    /** The SoftHSM2 configuration the token lives under. */
    readonly configPath: string
    readonly userPin: Redacted.Redacted<string>
    readonly soPin: Redacted.Redacted<string>
    /** The environment a child process (`pkcs11-tool`, `softhsm2-util`) needs to see this token. */
    readonly env: { readonly SOFTHSM2_CONF: string }
  }
}

const LABEL_BYTES = 32
const RELEASED_LABEL = "hsmkey-released"

const randomSecret = () => Redacted.make(Crypto.randomBytes(12).toString("hex"))

const invalid = (detail: string) => new SoftHsmError({ reason: "InvalidOptions", detail })

const provisioning = (step: string) => (underlying: Pkcs11Failure) =>
  new SoftHsmError({ reason: "Provisioning", detail: `${step}: ${underlying.message}`, underlying })

const checkPin = (name: string, pin: Redacted.Redacted<string>) => {
  const length = Buffer.byteLength(Redacted.value(pin), "utf8")
  // SoftHSM2 accepts PINs of 4 to 255 bytes; a shorter one reads as CKR_PIN_INCORRECT, not as a length error.
  return length < 4 || length > 255 ? Effect.fail(invalid(`${name} must be 4 to 255 bytes long`)) : Effect.void
}

/**
 * The path of the SoftHSM2 library on this machine: `SOFTHSM2_MODULE` when set, else the first of the
 * usual Debian, Ubuntu, Fedora and Homebrew locations that exists.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { SoftHsm } from "@hsmkey/softhsm"
 * import { Effect, Either } from "effect"
 *
 * // The library's path, or a SoftHsmError saying how to install SoftHSM2.
 * const found = SoftHsm.findModule.pipe(Effect.either, Effect.provide(NodeFileSystem.layer))
 *
 * Effect.runPromise(found).then((result) =>
 *   assert.ok(Either.isRight(result) || result.left.reason === "NotInstalled")
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const findModule: Effect.Effect<string, SoftHsmError, FileSystem.FileSystem> = locate(undefined).pipe(
  Effect.mapError((looked) =>
    new SoftHsmError({ reason: "NotInstalled", detail: `not found in ${looked.join(", ")}; ${installAdvice}` })
  )
)

const withSession = <A>(
  pkcs11: Pkcs11.Service,
  slot: SlotId,
  use: (session: SessionHandle) => Effect.Effect<A, Pkcs11Failure>
) =>
  Effect.acquireUseRelease(
    pkcs11.openSession(slot, { rw: true }),
    use,
    (session) => pkcs11.closeSession(session).pipe(Effect.ignoreLogged)
  )

const freeSlot = (pkcs11: Pkcs11.Service) =>
  Effect.gen(function*() {
    for (const slot of yield* pkcs11.slots({ tokenPresent: true })) {
      const info = yield* pkcs11.tokenInfo(slot)
      if (!info.initialized) return slot
    }
    // SoftHSM2 always keeps one uninitialized slot, so this is a broken installation.
    return yield* Effect.dieMessage("SoftHSM2 offers no uninitialized slot")
  })

/**
 * Initializes a token in a free slot with the given label and PINs. A fresh slot gives a fresh serial
 * number: SoftHSM2 keeps the serial when a token is re-initialized.
 */
const provision = (
  pkcs11: Pkcs11.Service,
  label: string,
  soPin: Redacted.Redacted<string>,
  userPin: Redacted.Redacted<string>
) =>
  Effect.gen(function*() {
    const slot = yield* freeSlot(pkcs11).pipe(Effect.mapError(provisioning("finding a free slot")))
    yield* pkcs11.initToken(slot, { soPin, label }).pipe(Effect.mapError(provisioning("C_InitToken")))
    yield* withSession(pkcs11, slot, (session) =>
      Effect.gen(function*() {
        yield* pkcs11.login(session, soPin, "so")
        yield* pkcs11.initPin(session, userPin)
        yield* pkcs11.logout(session)
      })).pipe(Effect.mapError(provisioning("setting the user PIN")))
    return slot
  })

/**
 * Closes the token's sessions and wipes it: re-initializing destroys its objects. Its files go with the
 * sandbox directory; deleting them earlier would break SoftHSM2's slot scans (`CKR_GENERAL_ERROR`).
 */
const wipe = (sandbox: Sandbox.Sandbox, slot: SlotId, label: string, soPin: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    sandbox.labels.delete(label)
    const pkcs11 = sandbox.pkcs11
    yield* pkcs11.closeAllSessions(slot)
    yield* pkcs11.initToken(slot, { soPin, label: RELEASED_LABEL })
  }).pipe(
    Effect.catchAll((error) => Effect.logWarning(`Could not wipe the SoftHSM2 token "${label}": ${error.message}`))
  )

const acquire = (options: SoftHsmOptions) =>
  Effect.gen(function*() {
    const label = options.tokenLabel ?? `hsmkey-${Crypto.randomBytes(4).toString("hex")}`
    if (label.length === 0 || Buffer.byteLength(label, "utf8") > LABEL_BYTES) {
      return yield* invalid("tokenLabel must be 1 to 32 bytes of UTF-8")
    }
    const soPin = options.soPin ?? randomSecret()
    const userPin = options.userPin ?? randomSecret()
    yield* checkPin("soPin", soPin)
    yield* checkPin("userPin", userPin)
    const modulePath = yield* locate(options.modulePath).pipe(
      Effect.mapError((looked) =>
        new SoftHsmError({
          reason: "NotInstalled",
          detail: `the SoftHSM2 library is not at ${looked.join(", ")}; ${installAdvice}`
        })
      )
    )
    return yield* Sandbox.locked(Effect.gen(function*() {
      const sandbox = yield* Sandbox.open(modulePath).pipe(Effect.mapError(openFailure))
      const release = Sandbox.close(sandbox)
      if (sandbox.labels.has(label)) {
        yield* release
        return yield* new SoftHsmError({
          reason: "LabelInUse",
          detail: `a live SoftHSM2 token of this process is already labelled "${label}"`
        })
      }
      const slot = yield* provision(sandbox.pkcs11, label, soPin, userPin).pipe(Effect.tapError(() => release))
      sandbox.labels.add(label)
      const info = yield* sandbox.pkcs11.tokenInfo(slot).pipe(
        Effect.mapError(provisioning("C_GetTokenInfo")),
        Effect.tapError(() => Effect.zipRight(wipe(sandbox, slot, label, soPin), release))
      )
      const token: Token.Info = {
        label,
        serialNumber: info.serialNumber,
        modulePath: sandbox.modulePath,
        configPath: sandbox.configPath,
        userPin,
        soPin,
        env: { SOFTHSM2_CONF: sandbox.configPath }
      }
      return { sandbox, slot, token }
    }))
  })

const openFailure = (failure: Sandbox.OpenFailure): SoftHsmError => {
  switch (failure._tag) {
    case "AlreadyInitialized":
      return new SoftHsmError({
        reason: "AlreadyInitialized",
        detail: `${failure.modulePath} was initialized in this process before SoftHsm.layer, so it will not read ` +
          "a throwaway configuration; build SoftHsm layers before any other layer of this library"
      })
    case "OtherModule":
      return new SoftHsmError({
        reason: "InvalidOptions",
        detail: `the throwaway tokens of this process live in ${failure.modulePath}; use that library for all of them`
      })
    case "ModuleLoadFailed":
      return new SoftHsmError({
        reason: "NotInstalled",
        detail: `the SoftHSM2 library did not load: ${String(failure.error)}`,
        underlying: failure.error
      })
    case "FileSystem":
      return new SoftHsmError({
        reason: "FileSystem",
        detail: `cannot prepare the SoftHSM2 directory: ${failure.error.message}`,
        underlying: failure.error
      })
  }
}

/**
 * A throwaway token on a given file system; `layer` provides Node's.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithFileSystem = (
  options: SoftHsmOptions = {}
): Layer.Layer<Pkcs11 | Token, SoftHsmError, FileSystem.FileSystem | Path.Path> =>
  Layer.scopedContext(
    Effect.acquireRelease(
      acquire(options),
      ({ sandbox, slot, token }) =>
        Sandbox.locked(Effect.zipRight(wipe(sandbox, slot, token.label, token.soPin), Sandbox.close(sandbox)))
    ).pipe(
      Effect.map(({ sandbox, token }) => Context.make(Pkcs11, sandbox.pkcs11).pipe(Context.add(Token, token))),
      Effect.withSpan("SoftHsm.layer")
    )
  )

/**
 * A throwaway SoftHSM2 token: provides `Pkcs11` over SoftHSM2 and the `SoftHsm.Token` it made.
 *
 * @example
 * ```ts
 * import { Pkcs11 } from "@hsmkey/pkcs11"
 * import { SoftHsm } from "@hsmkey/softhsm"
 * import { Effect } from "effect"
 *
 * // The raw Cryptoki service on a throwaway token, and where the token lives, for child processes.
 * const program = Effect.gen(function*() {
 *   const pkcs11 = yield* Pkcs11.Pkcs11
 *   const token = yield* SoftHsm.Token
 *   const slots = yield* pkcs11.slots({ tokenPresent: true })
 *   return { slots, env: token.env }
 * }).pipe(Effect.provide(SoftHsm.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: SoftHsmOptions = {}): Layer.Layer<Pkcs11 | Token, SoftHsmError> =>
  layerWithFileSystem(options).pipe(Layer.provide([NodeFileSystem.layer, NodePath.layer]))

/**
 * Options of a pool on a throwaway token: the token's, and the pool's but for the token and the PIN,
 * which are the throwaway token's own.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolOptions
  extends SoftHsmOptions, Omit<SessionPool.SessionPoolOptions, "tokenLabel" | "tokenSerial" | "userPin">
{}

/**
 * A `SessionPool` logged in on a throwaway SoftHSM2 token, with the `Pkcs11` under it and the token's
 * `SoftHsm.Token`: everything a test or a demo of hsmkey needs, in one layer.
 *
 * @example
 * ```ts
 * import { SoftHsm } from "@hsmkey/softhsm"
 * import { Effect } from "effect"
 * import { HsmJwk, Jws } from "hsmkey"
 *
 * // A fresh SoftHSM2 token with a pool logged in on it, wiped when the program ends.
 * const program = Effect.gen(function*() {
 *   const token = yield* SoftHsm.Token
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "test" })
 *   return { token: token.label, jws: yield* Jws.sign("hello", key) }
 * }).pipe(Effect.provide(SoftHsm.layerPool({ tokenLabel: "docs", maxSessions: 2 })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPool = (
  options: PoolOptions = {}
): Layer.Layer<SessionPool.SessionPool | Pkcs11 | Token, SoftHsmError | SessionPool.MakeError> => {
  const { modulePath, soPin, tokenLabel, userPin, ...pool } = options
  return Layer.unwrapEffect(
    Effect.map(
      Token,
      (token) => SessionPool.layer({ ...pool, tokenSerial: token.serialNumber, userPin: token.userPin })
    )
  ).pipe(Layer.provideMerge(layer({ modulePath, soPin, tokenLabel, userPin })))
}
