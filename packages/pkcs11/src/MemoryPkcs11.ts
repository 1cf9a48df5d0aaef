/**
 * An in-memory PKCS#11 token emulator providing `Pkcs11`, for tests that need no native library.
 *
 * It keeps the rules real tokens apply, so code tested on it behaves the same on SoftHSM2 or an HSM:
 * tokens found by label or serial, read-only and read/write sessions, login state per token
 * (`CKR_USER_ALREADY_LOGGED_IN` on a second login, logout on one session logs out all, closing the last
 * session logs out, handles of private objects die at logout), object attributes with sensitive values
 * hidden, and real signatures through node:crypto. It also models what SoftHSM2 lacks: a maximum session
 * count and a PIN retry counter with the COUNT_LOW, FINAL_TRY and LOCKED flags.
 *
 * Tokens may start with keys (`keys` in their options: JWK, PKCS#8 or `KeyObject`), as a token provisioned
 * beforehand would. `MemoryPkcs11.Control` lets tests inject return values, remove and re-insert tokens,
 * and count sessions and logins.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { CKR } from "./Constants.js"
import { Emulator, type Method as EmulatorMethod, type PreloadedKey } from "./internal/memory/emulator.js"
import * as Service from "./internal/service.js"
import { Pkcs11, type SlotId } from "./Pkcs11.js"

/**
 * One emulated token.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenOptions {
  readonly label: string
  /** Defaults to 16 random hex digits. */
  readonly serialNumber?: string | undefined
  /** Without one, the user PIN is not initialized and only public sessions work. */
  readonly userPin?: Redacted.Redacted<string> | undefined
  /** Without one, the SO PIN is random and SO logins fail. */
  readonly soPin?: Redacted.Redacted<string> | undefined
  /** The token's maximum number of sessions (`ulMaxSessionCount`); unlimited by default. */
  readonly maxSessions?: number | undefined
  /** The token's maximum number of read/write sessions; unlimited by default. */
  readonly maxRwSessions?: number | undefined
  /** Wrong PINs before a PIN locks (default 3). */
  readonly pinRetries?: number | undefined
  /** Flag the user PIN `CKF_USER_PIN_TO_BE_CHANGED`, as some tokens do after the SO sets it. */
  readonly userPinToBeChanged?: boolean | undefined
  /**
   * The mechanisms the token offers, to emulate a token that lacks some; by default every mechanism
   * the emulator implements (RSA PKCS#1 v1.5, PSS and OAEP, ECDSA on P-256/384/521, EdDSA on Ed25519
   * and Ed448, HMAC-SHA-2 and their key generation).
   */
  readonly mechanisms?: ReadonlyArray<number> | undefined
  /** The shortest PIN the token accepts (`ulMinPinLen`, default 4). */
  readonly minPinLength?: number | undefined
  /** The longest PIN the token accepts (`ulMaxPinLen`, default 255; openCryptoki's is 8). */
  readonly maxPinLength?: number | undefined
  /**
   * What `CKA_VALUE_LEN` reads for a secret made with `C_CreateObject`: its length (default), or 0, as
   * openCryptoki 3.8 answers.
   */
  readonly createdSecretValueLen?: "actual" | "zero" | undefined
  /**
   * The return value of `C_Decrypt` for an RSA-OAEP block that does not decrypt with the key (another
   * key's, or tampered with): `CKR_ENCRYPTED_DATA_INVALID` by default; SoftHSM2 answers
   * `CKR_GENERAL_ERROR`, openCryptoki `CKR_FUNCTION_FAILED`.
   */
  readonly undecryptable?: number | undefined
  /** Keys the token holds from the start, as token objects (a key pair is a private and a public object). */
  readonly keys?: ReadonlyArray<KeyOptions> | undefined
}

/**
 * A key an emulated token starts with. Its objects are token objects, private and sensitive, labelled
 * `label` and identified by `id` (both halves of a pair alike), as a key imported with OpenSC or hsmkey
 * would be. A key the emulator cannot hold is a defect of the test, with a message that says why.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyOptions {
  readonly label: string
  /**
   * CKA_ID as hex or bytes. By default a key pair's is the SHA-1 of its public key material (the RSA
   * modulus, the EC point, the Edwards key), as OpenSC and hsmkey give one, and a secret has none.
   */
  readonly id?: string | Uint8Array | undefined
  /**
   * The private key: a private JWK, PKCS#8 as PEM text or DER bytes, or a private `KeyObject` (RSA,
   * P-256/384/521, Ed25519, Ed448); or an `oct` JWK, for an HMAC secret.
   */
  readonly key: Crypto.JsonWebKey | string | Uint8Array | Crypto.KeyObject
  /** What a key pair is for: signatures (default), or decryption (RSA only). */
  readonly use?: "sig" | "enc" | undefined
}

const publicKeyId = (privateKey: Crypto.KeyObject): Uint8Array => {
  const jwk = Crypto.createPublicKey(privateKey).export({ format: "jwk" })
  const part = (name: "n" | "x" | "y") => Buffer.from(jwk[name] ?? "", "base64url")
  const material = jwk.kty === "RSA"
    ? part("n")
    : jwk.kty === "EC"
    ? Buffer.concat([Buffer.from([4]), part("x"), part("y")])
    : part("x")
  return new Uint8Array(Crypto.createHash("sha1").update(material).digest())
}

const preloaded = (token: string, options: KeyOptions): PreloadedKey => {
  const where = `MemoryPkcs11: key "${options.label}" of token "${token}"`
  if (typeof options.id === "string" && !/^(?:[0-9a-fA-F]{2})*$/u.test(options.id)) {
    throw new Error(`${where}: its id "${options.id}" is not hex`)
  }
  const given = options.id === undefined
    ? undefined
    : typeof options.id === "string"
    ? new Uint8Array(Buffer.from(options.id, "hex"))
    : options.id
  const id = given ?? new Uint8Array(0)
  const input = options.key
  if (!(input instanceof Crypto.KeyObject) && typeof input === "object" && !(input instanceof Uint8Array)) {
    if (input.kty === "oct") {
      if (typeof input.k !== "string" || input.k.length === 0) throw new Error(`${where}: an oct JWK needs its "k"`)
      return { kind: "secret", label: options.label, id, value: new Uint8Array(Buffer.from(input.k, "base64url")) }
    }
  }
  let privateKey: Crypto.KeyObject
  try {
    privateKey = input instanceof Crypto.KeyObject
      ? input
      : typeof input === "string"
      ? Crypto.createPrivateKey(input)
      : input instanceof Uint8Array
      ? Crypto.createPrivateKey({ key: Buffer.from(input), format: "der", type: "pkcs8" })
      : Crypto.createPrivateKey({ key: input, format: "jwk" })
  } catch (error) {
    throw new Error(`${where} is not a private key: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (privateKey.type !== "private") throw new Error(`${where} is a ${privateKey.type} key, not a private one`)
  if (!["rsa", "ec", "ed25519", "ed448"].includes(privateKey.asymmetricKeyType ?? "")) {
    throw new Error(`${where} is a ${privateKey.asymmetricKeyType} key, a type or curve the emulator does not hold`)
  }
  return {
    kind: "pair",
    label: options.label,
    id: given ?? publicKeyId(privateKey),
    privateKey,
    use: options.use ?? "sig"
  }
}

/**
 * The emulated slots.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryPkcs11Options {
  readonly tokens: ReadonlyArray<TokenOptions>
  /** Slots holding an uninitialized token, for `initToken` (default 0). */
  readonly emptySlots?: number | undefined
}

/**
 * A Cryptoki function whose return value `Control.failNext` can set.
 *
 * @since 0.1.0
 * @category models
 */
export type Method = EmulatorMethod

/**
 * What the emulator counts for a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenStats {
  /** The token's current slot id, `undefined` while it is removed. */
  readonly slotId: SlotId | undefined
  readonly present: boolean
  readonly openSessions: number
  readonly openRwSessions: number
  /** The most sessions open at once since the layer was built or `resetPeak` was called. */
  readonly peakSessions: number
  /** Every `C_Login` call on the token, successful or not. */
  readonly loginCalls: number
  readonly loggedIn: "user" | "so" | undefined
}

/**
 * Test controls of an emulator. Tokens are named by label or serial number; naming one that does not
 * exist is a defect of the test.
 *
 * @since 0.1.0
 * @category tags
 */
export class Control extends Context.Tag("@hsmkey/pkcs11/MemoryPkcs11/Control")<Control, Control.Service>() {}

/**
 * The types that go with the `Control` tag.
 *
 * @since 0.1.0
 */
export declare namespace Control {
  /**
   * What a test can do to the emulated tokens: inject return values and delays, remove and re-insert
   * tokens, read their state.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /**
     * Makes the next `times` (default 1) calls of `method` return `code`, on one token or any. An
     * injected `CKR_SESSION_HANDLE_INVALID` or `CKR_SESSION_CLOSED` also makes the token forget the
     * session, as a real one would have.
     */
    readonly failNext: (options: {
      readonly method: Method
      readonly code: number
      readonly times?: number | undefined
      readonly token?: string | undefined
    }) => Effect.Effect<void>
    /**
     * Makes the next `times` (default 1) calls of `method` take `duration` longer, on one token or any:
     * a slow device, or a stuck one when the duration outlasts the caller's deadline. The call then runs
     * on the state the token has by then. Signing, verification, decryption and generation wait on a
     * timer; every other call holds the calling thread, as a real library's synchronous call does. A
     * duration that is not finite is a defect of the test.
     */
    readonly delayNext: (options: {
      readonly method: Method
      readonly duration: Duration.DurationInput
      readonly times?: number | undefined
      readonly token?: string | undefined
    }) => Effect.Effect<void>
    /** Forgets the faults and delays of `failNext` and `delayNext` not met yet. */
    readonly clearFaults: Effect.Effect<void>
    /** Pulls the token out: its sessions fail with `CKR_DEVICE_REMOVED`, its login state is lost. */
    readonly removeToken: (token: string) => Effect.Effect<void>
    /** Puts a removed token back, in a new slot; the old slot id becomes invalid. */
    readonly insertToken: (token: string) => Effect.Effect<SlotId>
    /** The token loses its login state, as after a reset. */
    readonly forceLogout: (token: string) => Effect.Effect<void>
    readonly stats: (token: string) => Effect.Effect<TokenStats>
    /** Restarts `peakSessions` from the number of sessions open now. */
    readonly resetPeak: (token: string) => Effect.Effect<void>
    /**
     * A second `Pkcs11` service, built on its own over the same emulated library, as a second
     * `NodePkcs11.make` on the same path is: the same `moduleId`, tokens, sessions and login state.
     */
    readonly reopen: Effect.Effect<Pkcs11.Service>
  }
}

const control = (emulator: Emulator): Control.Service => {
  const tokenNamed = (name: string) =>
    Effect.suspend(() => {
      const token = emulator.findToken(name)
      return token === undefined
        ? Effect.dieMessage(`MemoryPkcs11: no token labelled "${name}"`)
        : Effect.succeed(token)
    })
  return {
    failNext: ({ code, method, times, token }) =>
      token === undefined
        ? Effect.sync(() => emulator.failNext(method, code, times ?? 1, undefined))
        : Effect.map(tokenNamed(token), (t) => emulator.failNext(method, code, times ?? 1, t)),
    delayNext: ({ duration, method, times, token }) => {
      const millis = Duration.toMillis(Duration.decode(duration))
      if (!Number.isFinite(millis) || millis > 2 ** 31 - 1) {
        return Effect.dieMessage("MemoryPkcs11: delayNext takes a finite duration under 24 days")
      }
      return token === undefined
        ? Effect.sync(() => emulator.delayNext(method, millis, times ?? 1, undefined))
        : Effect.map(tokenNamed(token), (t) => emulator.delayNext(method, millis, times ?? 1, t))
    },
    clearFaults: Effect.sync(() => emulator.clearFaults()),
    removeToken: (name) => Effect.map(tokenNamed(name), (t) => emulator.remove(t)),
    insertToken: (name) => Effect.map(tokenNamed(name), (t) => emulator.reinsert(t) as SlotId),
    forceLogout: (name) => Effect.map(tokenNamed(name), (t) => emulator.forceLogout(t)),
    stats: (name) =>
      Effect.map(tokenNamed(name), (t) => {
        const stats = emulator.stats(t)
        return { ...stats, slotId: stats.slotId as SlotId | undefined }
      }),
    resetPeak: (name) => Effect.map(tokenNamed(name), (t) => emulator.resetPeak(t)),
    reopen: Effect.sync(() => Service.make(emulator))
  }
}

/**
 * Builds an emulator and returns its `Pkcs11` service and `Control`.
 *
 * @example
 * ```ts
 * import { Constants, MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const { control, pkcs11 } = yield* MemoryPkcs11.make({ tokens: [{ label: "test" }] })
 *   // The next C_OpenSession fails as on a token with no session left.
 *   yield* control.failNext({ method: "C_OpenSession", code: Constants.CKR.SESSION_COUNT })
 *   const [slot] = yield* pkcs11.slots()
 *   const error = yield* Effect.flip(pkcs11.openSession(slot))
 *   assert.strictEqual(error._tag, "SessionFailed")
 * })
 *
 * Effect.runPromise(program)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: MemoryPkcs11Options
): Effect.Effect<{ readonly pkcs11: Pkcs11.Service; readonly control: Control.Service }> =>
  Effect.sync(() => {
    const emulator = new Emulator(
      options.tokens.map((token) => ({
        label: token.label,
        serialNumber: token.serialNumber ?? Crypto.randomBytes(8).toString("hex"),
        userPin: token.userPin === undefined ? undefined : Redacted.value(token.userPin),
        soPin: token.soPin === undefined ? Crypto.randomBytes(16).toString("hex") : Redacted.value(token.soPin),
        maxSessions: token.maxSessions,
        maxRwSessions: token.maxRwSessions,
        pinRetries: token.pinRetries ?? 3,
        userPinToBeChanged: token.userPinToBeChanged ?? false,
        mechanisms: token.mechanisms,
        minPinLength: token.minPinLength ?? 4,
        maxPinLength: token.maxPinLength ?? 255,
        createdSecretValueLen: token.createdSecretValueLen ?? "actual",
        undecryptable: token.undecryptable ?? CKR.ENCRYPTED_DATA_INVALID,
        keys: (token.keys ?? []).map((key) => preloaded(token.label, key))
      })),
      options.emptySlots ?? 0
    )
    return { pkcs11: Service.make(emulator), control: control(emulator) }
  })

/**
 * A layer providing `Pkcs11` over a fresh emulator, and its `Control`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Redacted } from "effect"
 *
 * const Emulator = MemoryPkcs11.layer({
 *   tokens: [{ label: "test", userPin: Redacted.make("1234") }]
 * })
 *
 * const program = Effect.gen(function*() {
 *   const pkcs11 = yield* Pkcs11.Pkcs11
 *   const [slot] = yield* pkcs11.slots({ tokenPresent: true })
 *   const token = yield* pkcs11.tokenInfo(slot)
 *   assert.strictEqual(token.label, "test")
 *   assert.strictEqual(token.userPinInitialized, true)
 * })
 *
 * Effect.runPromise(Effect.provide(program, Emulator))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: MemoryPkcs11Options): Layer.Layer<Pkcs11 | Control> =>
  Layer.effectContext(
    Effect.map(make(options), ({ control, pkcs11 }) => Context.make(Pkcs11, pkcs11).pipe(Context.add(Control, control)))
  )
