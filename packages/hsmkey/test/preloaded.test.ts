/**
 * Emulated tokens that start with keys, as a token provisioned beforehand would: hsmkey finds them by
 * label or CKA_ID and uses them, and what signs is the key given, never a copy that leaves the token.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Cause, Effect, Exit, Layer, Redacted } from "effect"
import { HsmJwk, HsmSecret, Jwe, Jws, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"

const { CKO } = Constants

const userPin = Redacted.make("preloaded-pin")

const ec = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
const ed = Crypto.generateKeyPairSync("ed25519")
const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
const secret = Crypto.randomBytes(32)

const token = (keys: ReadonlyArray<MemoryPkcs11.KeyOptions>) =>
  SessionPool.layer({ tokenLabel: "preloaded", userPin }).pipe(
    Layer.provideMerge(MemoryPkcs11.layer({ tokens: [{ label: "preloaded", userPin, keys }] }))
  )

// Not in label order: `HsmJwk.list` orders them.
const Preloaded = token([
  { label: "rsa-enc", id: "04", key: rsa.privateKey, use: "enc" },
  { label: "ed-pem", key: ed.privateKey.export({ format: "pem", type: "pkcs8" }).toString() },
  { label: "hmac", id: "05", key: { kty: "oct", k: secret.toString("base64url") } },
  { label: "rsa-der", id: "03", key: new Uint8Array(rsa.privateKey.export({ format: "der", type: "pkcs8" })) },
  { label: "ec-jwk", id: "01", key: ec.privateKey.export({ format: "jwk" }) }
])

describe("MemoryPkcs11 tokens that start with keys", () => {
  it.effect("key pairs given as JWK, PKCS#8 PEM and DER load by label or CKA_ID and sign as themselves", () =>
    Effect.gen(function*() {
      const byId = yield* HsmJwk.fromHsm({ id: "01" })
      assert.strictEqual(byId.label, "ec-jwk")
      assert.strictEqual(
        byId.kid,
        yield* Effect.promise(() => jose.calculateJwkThumbprint(ec.publicKey.export({ format: "jwk" }) as jose.JWK))
      )
      const jwt = yield* Jwt.sign({ sub: "preloaded" }, byId)
      assert.strictEqual((yield* Effect.promise(() => jose.jwtVerify(jwt, ec.publicKey))).payload.sub, "preloaded")

      const edKey = yield* HsmJwk.fromHsm({ label: "ed-pem" })
      assert.strictEqual(edKey.alg, "EdDSA")
      // Given no CKA_ID, a pair gets OpenSC's (and hsmkey's): the SHA-1 of its public key.
      const edId = Crypto.createHash("sha1").update(
        Buffer.from(edKey.publicJwk.kty === "OKP" ? edKey.publicJwk.x : "", "base64url")
      ).digest()
      assert.deepStrictEqual(Buffer.from(edKey.id), edId)
      assert.deepStrictEqual(edKey.id, HsmJwk.defaultId(edKey.publicJwk))
      assert.strictEqual((yield* HsmJwk.fromHsm({ id: edId.toString("hex") })).label, "ed-pem")
      const edJws = yield* Jws.sign("ed", edKey)
      yield* Effect.promise(() => jose.compactVerify(edJws, ed.publicKey))

      const rsaKey = yield* HsmJwk.fromHsm({ label: "rsa-der" })
      assert.strictEqual(rsaKey.bits, 2048)
      const rsaJws = yield* Jws.sign("rsa", rsaKey)
      yield* Effect.promise(() => jose.compactVerify(rsaJws, rsa.publicKey))

      assert.deepStrictEqual(
        (yield* HsmJwk.list()).map((key) => [key.label, key.use]),
        [["ec-jwk", "sig"], ["ed-pem", "sig"], ["rsa-der", "sig"], ["rsa-enc", "enc"]]
      )
    }).pipe(Effect.provide(Preloaded)))

  it.effect("a key for encryption decrypts JWEs and never signs; a secret MACs in the token", () =>
    Effect.gen(function*() {
      const enc = yield* HsmJwk.fromHsm({ label: "rsa-enc" })
      assert.strictEqual(enc.use, "enc")
      const jwe = yield* Effect.promise(() =>
        new jose.CompactEncrypt(new TextEncoder().encode("to the token"))
          .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
          .encrypt(rsa.publicKey)
      )
      assert.strictEqual(new TextDecoder().decode((yield* Jwe.decrypt(jwe, enc)).plaintext), "to the token")
      assert.strictEqual((yield* Effect.flip(Jws.sign("no", enc)))._tag, "AlgorithmMismatch")

      const hmac = yield* HsmSecret.fromHsm({ label: "hmac", alg: "HS256" })
      const jws = yield* Jws.sign("mac", hmac)
      yield* Effect.promise(() => jose.compactVerify(jws, new Uint8Array(secret)))
      yield* Jws.verify(jws, hmac)
    }).pipe(Effect.provide(Preloaded)))

  it.effect("its private objects are sensitive token objects, hidden until the token is logged in", () =>
    Effect.gen(function*() {
      const pkcs11 = yield* Pkcs11.Pkcs11
      const [slot] = yield* pkcs11.slots({ tokenPresent: true })
      const session = yield* Effect.acquireRelease(
        pkcs11.openSession(slot),
        (s) => Effect.ignore(pkcs11.closeSession(s))
      )
      const template = { class: CKO.PRIVATE_KEY, label: "ec-jwk" }
      assert.lengthOf(yield* pkcs11.findObjects(session, template), 0)
      const publicKeys = yield* pkcs11.findObjects(session, { class: CKO.PUBLIC_KEY, label: "ec-jwk" })
      assert.lengthOf(publicKeys, 1)
      yield* pkcs11.login(session, userPin)
      const [privateKey] = yield* pkcs11.findObjects(session, template)
      const attributes = yield* pkcs11.getAttributes(session, privateKey, [
        "token",
        "private",
        "sensitive",
        "extractable",
        "value"
      ])
      assert.deepInclude(attributes, { token: true, private: true, sensitive: true, extractable: false })
      assert.isUndefined(attributes.value)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        MemoryPkcs11.layer({ tokens: [{ label: "raw", userPin, keys: [{ label: "ec-jwk", key: ec.privateKey }] }] })
      )
    ))

  it.effect("a key the emulator cannot hold is a defect of the test that says which key and why", () =>
    Effect.gen(function*() {
      const dsa = Crypto.generateKeyPairSync("dsa", { modulusLength: 2048, divisorLength: 256 })
      for (
        const [key, expected] of [
          [{ label: "bad", key: "not a key" }, "is not a private key"],
          [{ label: "bad", key: ec.publicKey }, "is a public key, not a private one"],
          [{ label: "bad", key: dsa.privateKey }, "type or curve the emulator does not hold"],
          [{ label: "bad", key: ec.privateKey, use: "enc" }, "only RSA keys decrypt"]
        ] as const
      ) {
        const exit = yield* Effect.exit(MemoryPkcs11.make({ tokens: [{ label: "t", keys: [key] }] }))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), expected)
        if (Exit.isFailure(exit)) {
          const pretty = Cause.pretty(exit.cause)
          assert.include(pretty, "key \"bad\"")
          assert.include(pretty, expected)
        }
      }
    }))
})
