/**
 * The main job: provision a throwaway SoftHSM2 token, pool sessions on it, generate keys inside it,
 * sign with each from many fibers at once, verify the signatures outside the token with node:crypto,
 * and clean everything up.
 *
 *   pnpm demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Constants, Curve, type Pkcs11, PublicKey } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Console, Effect, Layer } from "effect"
import { SessionPool } from "hsmkey"
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

const SIGNATURES = 300

const program = Effect.gen(function*() {
  const pool = yield* SessionPool.SessionPool
  const library = yield* pool.pkcs11.info
  const token = yield* SoftHsm.Token
  yield* Console.log(`${library.manufacturerId} ${library.libraryVersion}, Cryptoki ${library.cryptokiVersion}`)
  yield* Console.log(`throwaway token "${token.label}" (serial ${token.serialNumber}) under ${token.configPath}`)

  // Keys are made in a read/write session; the private halves never leave the token.
  const keys = yield* pool.withSession((session) =>
    Effect.forEach(algorithms, (algorithm) =>
      Effect.gen(function*() {
        const id = Crypto.randomBytes(8)
        const common = { token: true, label: algorithm.alg, id }
        const pair = yield* session.pkcs11.generateKeyPair(session.handle, { type: algorithm.generate.type }, {
          publicKey: { ...algorithm.generate.publicKey, ...common, class: CKO.PUBLIC_KEY, verify: true },
          privateKey: {
            ...common,
            class: CKO.PRIVATE_KEY,
            private: true,
            sensitive: true,
            extractable: false,
            sign: true,
            decrypt: false,
            unwrap: false,
            derive: false
          }
        })
        return { ...algorithm, id, publicKey: yield* publicKeyOf(session.pkcs11, session.handle, pair.publicKey) }
      })), { rw: true })

  // Many concurrent signers share the pool's few sessions and its single login. Handles are found
  // again in each lease by CKA_ID: they do not outlive a login.
  const message = new TextEncoder().encode("signed inside the token, verified outside it")
  for (const { alg, id, mechanism, publicKey, toBeSigned, verify } of keys) {
    const signatures = yield* Effect.forEach(
      Array.from({ length: SIGNATURES }),
      () =>
        pool.withSession((session) =>
          Effect.gen(function*() {
            const [key] = yield* session.pkcs11.findObjects(session.handle, { class: CKO.PRIVATE_KEY, id })
            return yield* session.pkcs11.sign(session.handle, mechanism, key, toBeSigned(message))
          })
        ),
      { concurrency: "unbounded" }
    )
    if (!signatures.every((signature) => verify(publicKey, message, signature))) {
      return yield* Effect.dieMessage(`an ${alg} signature did not verify`)
    }
    yield* Console.log(
      `${alg.padEnd(6)} signed in the token ${SIGNATURES} times (${
        signatures[0].length
      } bytes each), verified by node:crypto`
    )
  }
  const stats = yield* pool.stats
  yield* Console.log(
    `at most ${stats.maxSessions} pooled sessions and one login served ${SIGNATURES * keys.length} signatures`
  )
  yield* Console.log("done; the token and its directory are deleted as the program ends")
})

// A throwaway SoftHSM2 token, and a pool of 4 sessions on it.
const HsmDemo = Layer.unwrapEffect(
  Effect.map(
    SoftHsm.Token,
    (token) => SessionPool.layer({ tokenSerial: token.serialNumber, userPin: token.userPin, maxSessions: 4 })
  )
).pipe(Layer.provideMerge(SoftHsm.layer({ tokenLabel: "hsmkey-demo" })))

NodeRuntime.runMain(program.pipe(Effect.provide(HsmDemo)))
