import { NodePkcs11 } from "@hsmkey/node"
import { Constants, Curve, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import { SoftHsm } from "@hsmkey/softhsm"
import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import { Capabilities } from "hsmkey"
import * as Crypto from "node:crypto"
import * as OpenCryptoki from "./opencryptoki.js"
import { softHsmAvailable } from "./softhsm.js"

const { CKM } = Constants

export type BackendName = "MemoryPkcs11" | "SoftHSM2" | "openCryptoki"

/**
 * What a backend offers beyond its mechanisms, for tests that need it.
 */
export type Feature =
  /** An uninitialized slot for `C_InitToken` (SoftHSM2 always keeps one; openCryptoki has one token). */
  | "free-slot"
  /** A native library, loaded, initialized and finalized. */
  | "native"
  /** `MemoryPkcs11.Control`: injected return values, removed tokens, counts. */
  | "control"
  /** The SO PIN can be changed and changed back (openCryptoki refuses its default back: CKR_PIN_INVALID). */
  | "settable-so-pin"
  /** Wrong PINs count and lock (SoftHSM2 never locks). */
  | "pin-lockout"
  /** Several tokens at once, for tests of pools on different tokens. */
  | "several-tokens"
  /** Hands a destroyed object's handle number to the next object (openCryptoki; the emulator). */
  | "reuses-handles"
  /** Reads CKA_VALUE_LEN back as 0 for a secret made by C_CreateObject (openCryptoki 3.8). */
  | "zero-secret-length"
  /** Crashes when called from two threads at once, so hsmkey calls it one call at a time (openCryptoki). */
  | "unsafe-in-parallel"

/**
 * The token a conformance test runs against, whichever backend provides it.
 */
export class TestToken extends Context.Tag("test/TestToken")<TestToken, {
  readonly backend: BackendName
  readonly label: string
  readonly serialNumber: string
  readonly userPin: Redacted.Redacted<string>
  readonly soPin: Redacted.Redacted<string>
  /** The native library, for a backend that has one. */
  readonly modulePath: string | undefined
  /** A second, independently built `Pkcs11` service on the same module, in the caller's scope. */
  readonly reopen: Effect.Effect<Pkcs11.Pkcs11.Service, unknown, Scope.Scope>
  /** What a child process needs in its environment to see this token (SoftHSM2's configuration). */
  readonly env: Readonly<Record<string, string>>
  /**
   * A token initialized under `label` with the test token's SO PIN and no user PIN: in a free slot, or (on
   * openCryptoki, which has one token) the test token itself, re-initialized.
   */
  readonly blank: (label: string) => Effect.Effect<{ readonly serialNumber: string }, unknown, Pkcs11.Pkcs11>
  /** What the token can do, as hsmkey reads it. */
  readonly capabilities: Capabilities.Capabilities
  readonly features: ReadonlySet<Feature>
}>() {}

export interface Backend {
  readonly name: BackendName
  readonly available: boolean
  readonly layer: Layer.Layer<Pkcs11.Pkcs11 | TestToken, unknown>
}

/** Per-file settings of the backends: the emulator can be told to behave like another token. */
export interface BackendOptions {
  readonly memory?: Partial<MemoryPkcs11.TokenOptions> | undefined
}

const userPin = Redacted.make("conformance-user-1234")
const soPin = Redacted.make("conformance-so-5678")

const testToken = (
  fields: Omit<TestToken["Type"], "capabilities" | "blank">,
  blankSlot: Effect.Effect<Pkcs11.SlotId, unknown, Pkcs11.Pkcs11> = freeSlot
): Effect.Effect<TestToken["Type"], unknown, Pkcs11.Pkcs11> =>
  Effect.map(Capabilities.ofToken({ tokenSerial: fields.serialNumber }), (capabilities) => ({
    ...fields,
    capabilities,
    blank: (label) =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* blankSlot
        yield* pkcs11.initToken(slot, { soPin: fields.soPin, label })
        return { serialNumber: (yield* pkcs11.tokenInfo(slot)).serialNumber }
      })
  }))

/** A slot whose token is not initialized, or was made blank before. */
const freeSlot: Effect.Effect<Pkcs11.SlotId, unknown, Pkcs11.Pkcs11> = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  for (const slot of yield* pkcs11.slots()) {
    const info = yield* pkcs11.tokenInfo(slot)
    if (!info.initialized || info.label.startsWith("blank-")) return slot
  }
  return yield* Effect.dieMessage("no free slot")
})

const memoryLayer = (label: string, options: BackendOptions): Layer.Layer<Pkcs11.Pkcs11 | TestToken, unknown> => {
  const serialNumber = Crypto.randomBytes(8).toString("hex")
  const token = { label, serialNumber, userPin, soPin, pinRetries: 1000, ...options.memory }
  // Layer memoization gives every use of this value the same emulator; `reopen` builds a second service on it.
  const memory = MemoryPkcs11.layer({ tokens: [token], emptySlots: 1 })
  const features: ReadonlySet<Feature> = new Set<Feature>([
    "free-slot",
    "control",
    "settable-so-pin",
    "several-tokens",
    "reuses-handles",
    ...((token.pinRetries ?? 3) < 10 ? ["pin-lockout" as const] : []),
    ...(token.createdSecretValueLen === "zero" ? ["zero-secret-length" as const] : [])
  ])
  return Layer.merge(
    memory,
    Layer.effect(
      TestToken,
      Effect.flatMap(MemoryPkcs11.Control, (control) =>
        testToken({
          backend: "MemoryPkcs11",
          modulePath: undefined,
          label,
          serialNumber,
          userPin: token.userPin ?? userPin,
          soPin: token.soPin ?? soPin,
          reopen: control.reopen,
          env: {},
          features
        }))
    ).pipe(Layer.provide(memory))
  )
}

const softHsmLayer = (label: string): Layer.Layer<Pkcs11.Pkcs11 | TestToken, unknown> => {
  const softhsm = SoftHsm.layer({ tokenLabel: label, userPin, soPin })
  return Layer.merge(
    softhsm,
    Layer.effect(
      TestToken,
      Effect.flatMap(SoftHsm.Token, (token) =>
        testToken({
          backend: "SoftHSM2",
          modulePath: token.modulePath,
          label: token.label,
          serialNumber: token.serialNumber,
          userPin: token.userPin,
          soPin: token.soPin,
          reopen: NodePkcs11.make({ modulePath: token.modulePath }),
          env: token.env,
          features: new Set(["free-slot", "native", "settable-so-pin", "several-tokens"])
        }))
    ).pipe(Layer.provide(softhsm))
  )
}

const openCryptokiLayer = (label: string): Layer.Layer<Pkcs11.Pkcs11 | TestToken, unknown> =>
  Layer.scopedContext(Effect.gen(function*() {
    // openCryptoki's labels are its own: the file's label, prefixed so that the next run may wipe it.
    const tokenLabel = `hsmkey-${label}`.slice(0, 32)
    const { pkcs11, serialNumber, slot } = yield* OpenCryptoki.provision(tokenLabel)
    // Its one token is the test token: re-initialized, it has no user PIN until the SO sets one.
    const itself = Effect.flatMap(Pkcs11.Pkcs11, (p) => Effect.as(p.closeAllSessions(slot), slot))
    const token = yield* Effect.provideService(
      testToken({
        backend: "openCryptoki",
        modulePath: OpenCryptoki.openCryptokiModule,
        label: tokenLabel,
        serialNumber,
        userPin: OpenCryptoki.userPin,
        soPin: OpenCryptoki.soPin,
        reopen: NodePkcs11.make({ modulePath: OpenCryptoki.openCryptokiModule }),
        env: {},
        features: new Set(["native", "pin-lockout", "reuses-handles", "zero-secret-length", "unsafe-in-parallel"])
      }, itself),
      Pkcs11.Pkcs11,
      pkcs11
    )
    return Context.make(Pkcs11.Pkcs11, pkcs11).pipe(Context.add(TestToken, token))
  }))

/**
 * The emulator told to behave as openCryptoki 3.8's software token does, where hsmkey must cope: no EC
 * and no EdDSA, RS* only through CKM_RSA_PKCS, CKA_VALUE_LEN 0 for created secrets, CKR_FUNCTION_FAILED for
 * an OAEP block that does not decrypt, PINs of 4 to 8 characters, FINAL_TRY after two wrong PINs.
 */
export const openCryptokiLike: Partial<MemoryPkcs11.TokenOptions> = {
  mechanisms: [
    CKM.RSA_PKCS_KEY_PAIR_GEN,
    CKM.RSA_PKCS,
    CKM.RSA_PKCS_OAEP,
    CKM.SHA256_RSA_PKCS_PSS,
    CKM.SHA384_RSA_PKCS_PSS,
    CKM.SHA512_RSA_PKCS_PSS,
    CKM.GENERIC_SECRET_KEY_GEN,
    CKM.SHA256_HMAC,
    CKM.SHA384_HMAC,
    CKM.SHA512_HMAC
  ],
  createdSecretValueLen: "zero",
  undecryptable: Constants.CKR.FUNCTION_FAILED,
  maxPinLength: 8,
  userPin: Redacted.make("emu-1234"),
  soPin: Redacted.make("emu-so-1"),
  pinRetries: 3
}

export const backends = (label: string, options: BackendOptions = {}): ReadonlyArray<Backend> => [
  { name: "MemoryPkcs11", available: true, layer: memoryLayer(label, options) },
  { name: "SoftHSM2", available: softHsmAvailable, layer: softHsmLayer(label) },
  { name: "openCryptoki", available: OpenCryptoki.openCryptokiAvailable, layer: openCryptokiLayer(label) }
]

/**
 * The slot holding the test token, by label.
 */
export const tokenSlot = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const token = yield* TestToken
  for (const slot of yield* pkcs11.slots()) {
    const info = yield* pkcs11.tokenInfo(slot)
    if (info.label === token.label) return slot
  }
  return yield* Effect.dieMessage(`no token labelled ${token.label}`)
})

/**
 * A session on the test token, logged in as the user (or already), closed with the scope.
 */
export const userSession = (options: { readonly rw?: boolean } = {}) =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    const token = yield* TestToken
    const slot = yield* tokenSlot
    const session = yield* Effect.acquireRelease(
      pkcs11.openSession(slot, { rw: options.rw ?? true }),
      (session) => Effect.ignore(pkcs11.closeSession(session))
    )
    yield* pkcs11.login(session, token.userPin)
    return session
  })

export type KeyType = "RSA-2048" | "P-256" | "P-384" | "P-521" | "Ed25519"

/**
 * Generates a session key pair (gone when its session closes) of a key type.
 */
export const generateKeyPair = (
  session: Pkcs11.SessionHandle,
  type: KeyType,
  extra: { readonly label?: string; readonly id?: Uint8Array; readonly token?: boolean } = {}
) =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    const common = { token: extra.token ?? false, label: extra.label ?? type, id: extra.id ?? new Uint8Array([1]) }
    const privateKey = { ...common, private: true, sensitive: true, extractable: false, sign: true }
    const publicKey = { ...common, verify: true }
    if (type === "RSA-2048") {
      return yield* pkcs11.generateKeyPair(session, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
        publicKey: { ...publicKey, modulusBits: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
        privateKey
      })
    }
    const curve: Curve.Curve = type
    const mechanism = Curve.specs[curve].family === "edwards" ? CKM.EC_EDWARDS_KEY_PAIR_GEN : CKM.EC_KEY_PAIR_GEN
    return yield* pkcs11.generateKeyPair(session, { type: mechanism }, {
      publicKey: { ...publicKey, ecParams: Curve.ecParams(curve) },
      privateKey
    })
  })

/**
 * The public key of a public key object, as node:crypto holds it.
 */
export const publicKeyObject = (session: Pkcs11.SessionHandle, handle: Pkcs11.ObjectHandle) =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    const jwk = PublicKey.toJwk(yield* pkcs11.getAttributes(session, handle, PublicKey.attributeNames))
    if (jwk === undefined) return yield* Effect.dieMessage("not a supported public key")
    return Crypto.createPublicKey({ key: jwk, format: "jwk" })
  })

/**
 * The emulator's `Control`, for tests that need the feature `"control"` (only the emulator offers it).
 */
export const emulatorControl: Effect.Effect<MemoryPkcs11.Control.Service> = Effect.flatMap(
  Effect.serviceOption(MemoryPkcs11.Control),
  (control) =>
    control._tag === "Some"
      ? Effect.succeed(control.value)
      : Effect.dieMessage("this test needs the emulator's Control")
)
