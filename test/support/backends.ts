import { Constants, Curve, MemoryPkcs11, NodePkcs11, Pkcs11, PublicKey } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import * as Crypto from "node:crypto"
import { softHsmAvailable } from "./softhsm.js"

const { CKM } = Constants

/**
 * The token a conformance test runs against, whichever backend provides it.
 */
export class TestToken extends Context.Tag("test/TestToken")<TestToken, {
  readonly backend: "MemoryPkcs11" | "SoftHSM2"
  readonly label: string
  readonly serialNumber: string
  readonly userPin: Redacted.Redacted<string>
  readonly soPin: Redacted.Redacted<string>
  /** The native library, for a backend that has one. */
  readonly modulePath: string | undefined
  /** A second, independently built `Pkcs11` service on the same module, in the caller's scope. */
  readonly reopen: Effect.Effect<Pkcs11.Pkcs11.Service, unknown, Scope.Scope>
}>() {}

export interface Backend {
  readonly name: "MemoryPkcs11" | "SoftHSM2"
  readonly available: boolean
  readonly layer: Layer.Layer<Pkcs11.Pkcs11 | TestToken, unknown>
}

const userPin = Redacted.make("conformance-user-1234")
const soPin = Redacted.make("conformance-so-5678")

const memoryLayer = (label: string): Layer.Layer<Pkcs11.Pkcs11 | TestToken> => {
  const serialNumber = Crypto.randomBytes(8).toString("hex")
  // Layer memoization gives every use of this value the same emulator: reopening shares its state.
  const memory = MemoryPkcs11.layer({
    tokens: [{ label, serialNumber, userPin, soPin, pinRetries: 1000 }],
    emptySlots: 1
  })
  return Layer.merge(
    memory,
    Layer.effect(
      TestToken,
      Effect.map(Pkcs11.Pkcs11, (pkcs11) => ({
        backend: "MemoryPkcs11" as const,
        modulePath: undefined,
        label,
        serialNumber,
        userPin,
        soPin,
        reopen: Effect.succeed(pkcs11)
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
      Effect.map(SoftHsm.Token, (token) => ({
        backend: "SoftHSM2" as const,
        modulePath: token.modulePath,
        label: token.label,
        serialNumber: token.serialNumber,
        userPin: token.userPin,
        soPin: token.soPin,
        reopen: NodePkcs11.make({ modulePath: token.modulePath })
      }))
    ).pipe(Layer.provide(softhsm))
  )
}

export const backends = (label: string): ReadonlyArray<Backend> => [
  { name: "MemoryPkcs11", available: true, layer: memoryLayer(label) },
  { name: "SoftHSM2", available: softHsmAvailable, layer: softHsmLayer(label) }
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
