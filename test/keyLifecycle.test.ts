/**
 * Signing bytes for formats other than JOSE (`HsmJwk.sign`), and destroying a key (`HsmJwk.destroy`), on
 * every backend: the signature verifies under the key with node:crypto, a destroyed key's objects are
 * gone and it signs no more, and a key that another took the place of is never destroyed in its name.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Constants } from "@hsmkey/pkcs11"
import { Effect } from "effect"
import { HsmJwk, Jws } from "hsmkey"
import * as Crypto from "node:crypto"
import { backends, TestToken } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { assertFailure, quickType, rawSession, rw, typedFailure, unique, withPool } from "./support/pool.js"

const { CKO } = Constants

const objectsWithId = (id: Uint8Array) =>
  Effect.scoped(Effect.gen(function*() {
    const raw = yield* rawSession()
    const objects = yield* raw.pkcs11.findObjects(raw.handle, { id })
    return yield* Effect.forEach(objects, (o) => raw.pkcs11.getAttributes(raw.handle, o, ["class"]))
  }))

/** Whether `signature` over `data` verifies under the key's public half, as X.509 and WebCrypto check it. */
const verifies = (key: HsmJwk.HsmJwk, alg: string, data: Uint8Array, signature: Uint8Array): boolean => {
  if (alg === "EdDSA") return Crypto.verify(null, data, key.publicKey, signature)
  const hash = `sha${alg.slice(2)}`
  if (alg.startsWith("ES")) {
    return Crypto.verify(hash, data, { key: key.publicKey, dsaEncoding: "ieee-p1363" }, signature)
  }
  if (alg.startsWith("PS")) {
    const padding = Crypto.constants.RSA_PKCS1_PSS_PADDING
    return Crypto.verify(hash, data, { key: key.publicKey, padding, saltLength: Number(alg.slice(2)) / 8 }, signature)
  }
  return Crypto.verify(hash, data, key.publicKey, signature)
}

for (const backend of backends("hsmkey-lifecycle")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(withPool(backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)

      for (
        const [type, algs] of [
          ["P-256", ["ES256"]],
          ["Ed25519", ["EdDSA"]],
          ["RSA-2048", ["RS256", "PS384"]]
        ] as const
      ) {
        test(`HsmJwk.sign: ${type} signs bytes in the token with ${algs.join(", ")}`, {
          generate: [type],
          sign: algs
        }, () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type, label: unique("bytes") })
            const data = Crypto.randomBytes(300)
            for (const alg of algs) {
              const signature = yield* HsmJwk.sign(key, data, { alg })
              assert.isTrue(verifies(key, alg, data, signature), alg)
              assert.isFalse(verifies(key, alg, Buffer.concat([data, Buffer.from([0])]), signature), alg)
            }
            if (algs[0] !== "RS256") {
              assert.isTrue(verifies(key, key.alg, data, yield* HsmJwk.sign(key, data)), "the key's own alg")
            }
          }))
      }

      test(
        "HsmJwk.sign refuses what is not bytes, an algorithm that does not fit, and an enc key",
        {},
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: yield* quickType, label: unique("refuse") })
            assertFailure(yield* typedFailure(HsmJwk.sign(key, "text" as never)), { _tag: "InvalidOptions" })
            assertFailure(yield* typedFailure(HsmJwk.sign(key, new Uint8Array(1), { alg: "HS256" })), {
              _tag: "AlgorithmMismatch"
            })
            assertFailure(yield* typedFailure(HsmJwk.sign(key, new Uint8Array(1), { alg: "none" })), {
              _tag: "UnsupportedAlgorithm"
            })
            assertFailure(yield* typedFailure(HsmJwk.sign({ kid: "x" } as never, new Uint8Array(1))), {
              _tag: "InvalidOptions"
            })
          })
      )

      test(
        "HsmJwk.destroy removes the private and public objects; the key signs no more",
        {},
        () =>
          Effect.gen(function*() {
            const type = yield* quickType
            const key = yield* HsmJwk.generate({ type, label: unique("doomed") })
            const kept = yield* HsmJwk.generate({ type, label: unique("kept") })
            yield* Jws.sign("known", key)
            const classes = (yield* objectsWithId(key.id)).map((o) => o.class).sort()
            assert.deepStrictEqual(classes, [CKO.PUBLIC_KEY, CKO.PRIVATE_KEY].sort())
            yield* rw(HsmJwk.destroy(key))
            assert.deepStrictEqual(yield* objectsWithId(key.id), [])
            assertFailure(yield* typedFailure(Jws.sign("gone", key)), { _tag: "KeyNotFound" })
            assertFailure(yield* typedFailure(HsmJwk.destroy(key)), { _tag: "KeyNotFound" })
            // The other key is untouched.
            yield* Jws.verify(yield* Jws.sign("still here", kept), kept)
            assert.deepStrictEqual((yield* HsmJwk.list()).filter((k) => k.kid === key.kid), [])
          })
      )

      test("HsmJwk.destroy never destroys another key that took the key's CKA_ID", {}, () =>
        Effect.gen(function*() {
          const token = yield* TestToken
          const type = yield* quickType
          const id = Crypto.randomBytes(8)
          const original = yield* HsmJwk.generate({ type, label: unique("original"), id })
          // Replaced behind hsmkey's back: the original's objects go, another key pair takes its CKA_ID.
          yield* Effect.scoped(Effect.gen(function*() {
            const raw = yield* rawSession({ rw: true })
            for (const object of yield* raw.pkcs11.findObjects(raw.handle, { id })) {
              yield* raw.pkcs11.destroyObject(raw.handle, object)
            }
          }))
          const impostor = yield* HsmJwk.generate({ type, label: unique("impostor"), id })
          const error = yield* typedFailure(HsmJwk.destroy(original))
          assertFailure(error, { _tag: "KeyNotFound" })
          if (error._tag === "KeyNotFound") assert.strictEqual(error.reason, "changed", token.backend)
          assert.strictEqual((yield* objectsWithId(id)).length, 2, "the impostor's objects stay")
          yield* Jws.verify(yield* Jws.sign("the impostor signs as itself", impostor), impostor)
        }))
    })
  })
}
