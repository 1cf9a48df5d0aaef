/**
 * The main job: provision a throwaway SoftHSM2 token, generate keys inside it, sign with each, verify
 * the signatures outside the token with node:crypto, and clean everything up.
 *
 *   pnpm demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Constants, Curve, Pkcs11, PublicKey } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Console, Effect } from "effect"
import * as Crypto from "node:crypto"

const { CKG, CKM, CKO } = Constants

/** The signing keys of the demo, and how each JOSE algorithm signs with them (DESIGN fact 11). */
const algorithms = [
  {
    alg: "ES256",
    generate: { type: CKM.EC_KEY_PAIR_GEN, publicKey: { ecParams: Curve.ecParams("P-256") } },
    mechanism: { type: CKM.ECDSA },
    toBeSigned: (message: Uint8Array) => Crypto.createHash("sha256").update(message).digest(),
    verify: (key: Crypto.KeyObject, message: Uint8Array, signature: Uint8Array) =>
      Crypto.verify("sha256", message, { key, dsaEncoding: "ieee-p1363" }, signature)
  },
  {
    alg: "EdDSA",
    generate: { type: CKM.EC_EDWARDS_KEY_PAIR_GEN, publicKey: { ecParams: Curve.ecParams("Ed25519") } },
    mechanism: { type: CKM.EDDSA },
    toBeSigned: (message: Uint8Array) => message,
    verify: (key: Crypto.KeyObject, message: Uint8Array, signature: Uint8Array) =>
      Crypto.verify(null, message, key, signature)
  },
  {
    alg: "PS256",
    generate: { type: CKM.RSA_PKCS_KEY_PAIR_GEN, publicKey: { modulusBits: 2048 } },
    mechanism: {
      type: CKM.SHA256_RSA_PKCS_PSS,
      parameter: { _tag: "RsaPss" as const, hashAlg: CKM.SHA256, mgf: CKG.MGF1_SHA256, saltLength: 32 }
    },
    toBeSigned: (message: Uint8Array) => message,
    verify: (key: Crypto.KeyObject, message: Uint8Array, signature: Uint8Array) =>
      Crypto.verify(
        "sha256",
        message,
        { key, padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
        signature
      )
  }
] as const

/** The public half as node:crypto holds it, read from the token's public key object. */
const publicKeyOf = (pkcs11: Pkcs11.Pkcs11.Service, session: Pkcs11.SessionHandle, handle: Pkcs11.ObjectHandle) =>
  Effect.gen(function*() {
    const jwk = PublicKey.toJwk(yield* pkcs11.getAttributes(session, handle, PublicKey.attributeNames))
    if (jwk === undefined) return yield* Effect.dieMessage("the token returned an unsupported public key")
    return Crypto.createPublicKey({ key: jwk, format: "jwk" })
  })

const program = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const token = yield* SoftHsm.Token
  const library = yield* pkcs11.info
  yield* Console.log(`${library.manufacturerId} ${library.libraryVersion}, Cryptoki ${library.cryptokiVersion}`)
  yield* Console.log(`throwaway token "${token.label}" (serial ${token.serialNumber}) under ${token.configPath}`)

  // Tokens are found by label or serial number, never by a remembered slot id.
  const slots = yield* pkcs11.slots()
  const infos = yield* Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot))
  const slot = infos.find((info) => info.serialNumber === token.serialNumber)!.slotId

  const session = yield* Effect.acquireRelease(
    pkcs11.openSession(slot, { rw: true }),
    (session) => Effect.orDie(pkcs11.closeSession(session))
  )
  yield* pkcs11.login(session, token.userPin)

  const message = new TextEncoder().encode("signed inside the token, verified outside it")
  for (const { alg, generate, mechanism, toBeSigned, verify } of algorithms) {
    const id = Crypto.randomBytes(8)
    const pair = yield* pkcs11.generateKeyPair(session, { type: generate.type }, {
      publicKey: { ...generate.publicKey, class: CKO.PUBLIC_KEY, token: true, label: alg, id, verify: true },
      // The private key never leaves the token: sensitive, not extractable, sign only.
      privateKey: {
        class: CKO.PRIVATE_KEY,
        token: true,
        private: true,
        label: alg,
        id,
        sensitive: true,
        extractable: false,
        sign: true,
        decrypt: false,
        unwrap: false,
        derive: false
      }
    })
    const signature = yield* pkcs11.sign(session, mechanism, pair.privateKey, toBeSigned(message))
    const publicKey = yield* publicKeyOf(pkcs11, session, pair.publicKey)
    if (!verify(publicKey, message, signature)) return yield* Effect.dieMessage(`${alg} signature did not verify`)
    yield* Console.log(`${alg.padEnd(6)} signed in the token (${signature.length} bytes), verified by node:crypto`)
  }
  yield* Console.log("done; the token and its directory are deleted as the program ends")
})

NodeRuntime.runMain(program.pipe(Effect.scoped, Effect.provide(SoftHsm.layer({ tokenLabel: "hsmkey-demo" }))))
