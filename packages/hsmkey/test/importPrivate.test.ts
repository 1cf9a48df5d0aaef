/**
 * Private keys from outside are checked before any of them reaches node:crypto or the token: shape and
 * sizes per key type, the pair's halves belonging together, and key types hsmkey signs with. Node 20
 * aborts the process (SIGABRT) exporting a P-256 JWK whose `d` is 33 or 64 bytes: such a key must be a
 * typed error, and this file's process must live on.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Cause, Effect, Exit, FastCheck, Layer, Redacted } from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import * as Crypto from "node:crypto"

const userPin = Redacted.make("import-user-pin")

const live = SessionPool.layer({ tokenLabel: "emu", userPin }).pipe(
  Layer.provideMerge(MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin }] }))
)

const b64 = (bytes: Uint8Array | Buffer) => Buffer.from(bytes).toString("base64url")

let n = 0
const importKey = (key: HsmJwk.PrivateKeyInput) => HsmJwk.importPrivate({ key, label: `k-${++n}` })

/** The tag of a typed failure; a success or a defect fails the test. */
const failureTag = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return "succeeded"
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None") throw new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
    return failure.value._tag
  })

/** How many objects the token holds, all of them, seen through a session of the test's own (logged in by the pool). */
const objectCount = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const [slot] = yield* pkcs11.slots({ tokenPresent: true })
  if (slot === undefined) return yield* Effect.dieMessage("no token")
  const session = yield* Effect.acquireRelease(
    pkcs11.openSession(slot),
    (session) => Effect.ignore(pkcs11.closeSession(session))
  )
  return (yield* pkcs11.findObjects(session, {})).length
}).pipe(Effect.scoped)

const p256 = () => Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ format: "jwk" })

describe("importPrivate checks what it is given", () => {
  it.effect("a P-256 JWK with a 33- or 64-byte d is InvalidKeyMaterial (node:crypto aborted on it)", () =>
    Effect.gen(function*() {
      for (const size of [31, 33, 64, 4096]) {
        const jwk = { ...p256(), d: b64(Crypto.randomBytes(size)) }
        const error = yield* Effect.flip(importKey(jwk))
        assert.strictEqual(error._tag, "InvalidKeyMaterial", `d of ${size} bytes`)
        assert.include(error.message, `${size} bytes`)
      }
      assert.strictEqual(yield* objectCount, 0)
    }).pipe(Effect.provide(live)))

  it.effect("a private half that is not the public half's is refused, for every key type", () =>
    Effect.gen(function*() {
      const other = (type: "ec" | "ed25519" | "ed448", options = {}) =>
        Crypto.generateKeyPairSync(type as "ec", options as { namedCurve: string }).privateKey.export({
          format: "jwk"
        })
      const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" })
      const rsa2 = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" })
      const mismatched = [
        // Garbage d of the right size: it imported, and then signed what its own JWK did not verify.
        { ...p256(), d: b64(Crypto.randomBytes(32)) },
        { ...p256(), d: p256().d },
        { ...other("ec", { namedCurve: "secp384r1" }), d: other("ec", { namedCurve: "secp384r1" }).d },
        { ...other("ed25519"), d: other("ed25519").d },
        { ...other("ed448"), d: other("ed448").d },
        { ...rsa, d: rsa2.d },
        { ...rsa, qi: rsa2.qi },
        { ...rsa, e: "AQAD" },
        // The curve order: not a private key at all.
        { ...p256(), d: b64(Buffer.from("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", "hex")) }
      ]
      for (const jwk of mismatched) {
        const tag = yield* failureTag(importKey(jwk as HsmJwk.PrivateKeyInput))
        assert.strictEqual(tag, "InvalidKeyMaterial", JSON.stringify(jwk).slice(0, 60))
      }
      assert.strictEqual(yield* objectCount, 0)
    }).pipe(Effect.provide(live)))

  it.effect("DSA, RSA-PSS, X25519, X448 and other curves are UnsupportedKey, whatever their form", () =>
    Effect.gen(function*() {
      const keys = [
        Crypto.generateKeyPairSync("dsa", { modulusLength: 2048, divisorLength: 256 }).privateKey,
        Crypto.generateKeyPairSync("rsa-pss", { modulusLength: 2048 }).privateKey,
        Crypto.generateKeyPairSync("x25519").privateKey,
        Crypto.generateKeyPairSync("x448").privateKey,
        Crypto.generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey
      ]
      for (const key of keys) {
        for (const form of [key, key.export({ format: "pem", type: "pkcs8" }).toString()]) {
          assert.strictEqual(yield* failureTag(importKey(form)), "UnsupportedKey", String(key.asymmetricKeyType))
        }
      }
      const jwks = [
        { ...Crypto.generateKeyPairSync("x25519").privateKey.export({ format: "jwk" }) },
        { ...Crypto.generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey.export({ format: "jwk" }) },
        { kty: "oct", k: b64(Crypto.randomBytes(32)), d: "x" },
        { ...Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" }), oth: [] },
        { kty: "DSA", d: "AA" },
        // Names an object's own properties: must not be looked up on a prototype.
        { ...p256(), crv: "constructor" },
        { ...Crypto.generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" }), crv: "toString" }
      ]
      for (const jwk of jwks) assert.strictEqual(yield* failureTag(importKey(jwk)), "UnsupportedKey")
      assert.strictEqual(yield* objectCount, 0)
    }).pipe(Effect.provide(live)))

  it.effect("what does belong together imports and signs what its JWK verifies", () =>
    Effect.gen(function*() {
      for (
        const pair of [
          Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }),
          Crypto.generateKeyPairSync("ec", { namedCurve: "secp521r1" }),
          Crypto.generateKeyPairSync("ed448")
        ]
      ) {
        const key = yield* importKey(pair.privateKey.export({ format: "jwk" }))
        const verified = yield* Jws.verify(yield* Jws.sign("checked", key), pair.publicKey)
        assert.strictEqual(new TextDecoder().decode(verified.payload), "checked")
      }
    }).pipe(Effect.provide(live)))

  // Random JWK-shaped values: every one is refused with a typed error or imported, never a defect or an
  // abort of the process; and nothing stays on the token from a refusal.
  const base64url = FastCheck.uint8Array({ maxLength: 140 }).map(b64)
  const member = FastCheck.oneof(base64url, FastCheck.constant(""), FastCheck.string(), FastCheck.integer())
  const jwk = FastCheck.record(
    {
      kty: FastCheck.oneof(
        FastCheck.constantFrom("EC", "OKP", "RSA", "oct", "DSA", 7, "constructor"),
        FastCheck.string()
      ),
      crv: FastCheck.oneof(
        FastCheck.constantFrom("P-256", "P-384", "P-521", "Ed25519", "Ed448", "X25519", "secp256k1"),
        FastCheck.constantFrom("constructor", "toString", "__proto__", "hasOwnProperty"),
        FastCheck.string()
      ),
      x: member,
      y: member,
      d: member,
      n: member,
      e: member,
      p: member,
      q: member,
      dp: member,
      dq: member,
      qi: member
    },
    { requiredKeys: ["kty"] }
  )
  it.effect.prop("random JWKs are typed errors, never defects", [jwk], ([input]) =>
    Effect.gen(function*() {
      const tag = yield* failureTag(importKey(input as HsmJwk.PrivateKeyInput))
      assert.oneOf(tag, ["InvalidKeyMaterial", "UnsupportedKey"])
      assert.strictEqual(yield* objectCount, 0)
    }).pipe(Effect.provide(live)), { fastCheck: { numRuns: 300 } })
})
