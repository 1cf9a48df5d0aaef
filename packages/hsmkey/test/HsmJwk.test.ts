/**
 * HsmJwk and signing where only the emulator can stage it: tokens without some mechanisms, keys without
 * a public object, duplicate labels, handles that change behind a cache.
 */
import { assert, describe, it } from "@effect/vitest"
import { Constants, Curve, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Layer, Redacted } from "effect"
import { Algorithm, HsmJwk, type HsmSession, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import * as Algorithms from "../src/internal/algorithms.js"

const { CKM } = Constants

const userPin = Redacted.make("jwk-user-pin")

const live = (token: Partial<MemoryPkcs11.TokenOptions> = {}) =>
  SessionPool.layer({ tokenLabel: "emu", userPin }).pipe(
    Layer.provideMerge(MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin, ...token }] }))
  )

/**
 * Runs `f` in a read/write Cryptoki session of the test's own on a token, beside hsmkey's: to stage or
 * look at objects behind its back. It is logged in when a pool with the PIN is up (login belongs to the
 * token).
 */
const withRawSession = <A, E>(
  f: (pkcs11: Pkcs11.Pkcs11.Service, session: Pkcs11.SessionHandle) => Effect.Effect<A, E>,
  tokenLabel = "emu"
) =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    let slot: Pkcs11.SlotId | undefined
    for (const candidate of yield* pkcs11.slots({ tokenPresent: true })) {
      if ((yield* pkcs11.tokenInfo(candidate)).label === tokenLabel) slot = candidate
    }
    if (slot === undefined) return yield* Effect.dieMessage(`no token "${tokenLabel}"`)
    const session = yield* Effect.acquireRelease(
      pkcs11.openSession(slot, { rw: true }),
      (session) => Effect.ignore(pkcs11.closeSession(session))
    )
    return yield* f(pkcs11, session)
  }).pipe(Effect.scoped)

/** A `SessionPool` that must not be used: whatever runs with it runs in the session in context alone. */
const unusablePool = (token: HsmSession.TokenRef): SessionPool.SessionPool.Service => ({
  token,
  capabilities: Effect.dieMessage("the pool in context was used"),
  session: () => Effect.dieMessage("the pool in context lent a session"),
  withSession: () => Effect.dieMessage("the pool in context lent a session"),
  stats: Effect.dieMessage("the pool in context was used")
})

describe("HsmJwk on tokens that differ", () => {
  it.effect("RS256 on a token without CKM_SHA256_RSA_PKCS signs the DigestInfo with CKM_RSA_PKCS", () =>
    Effect.gen(function*() {
      const key = yield* HsmJwk.generate({ type: "RSA-2048", label: "rsa" })
      const jws = yield* Jws.sign("like openCryptoki", key)
      yield* Effect.promise(() => jose.compactVerify(jws, key.publicKey))
      const pss = yield* Effect.flip(Jws.sign("no PSS here", key, { alg: "PS256" }))
      assert.strictEqual(pss._tag, "MechanismUnsupported")
      assert.include(pss.message, "CKM_SHA256_RSA_PKCS_PSS")
    }).pipe(Effect.provide(live({ mechanisms: [CKM.RSA_PKCS_KEY_PAIR_GEN, CKM.RSA_PKCS] }))))

  it.effect("a token that could generate a key but never sign with it refuses to make it: MechanismUnsupported", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(HsmJwk.generate({ type: "P-256", label: "ec" }))
      assert.strictEqual(error._tag, "MechanismUnsupported")
      if (error._tag !== "MechanismUnsupported") return
      assert.strictEqual(error.operation, "generate")
      assert.strictEqual(error.keyType, "P-256")
      assert.deepStrictEqual(error.mechanisms, ["CKM_ECDSA", "CKM_ECDSA_SHA256"])
      const objects = yield* withRawSession((pkcs11, session) => pkcs11.findObjects(session, {}))
      assert.deepStrictEqual(objects, [])
    }).pipe(Effect.provide(live({ mechanisms: [CKM.EC_KEY_PAIR_GEN] }))))
})

describe("HsmJwk loading", () => {
  const makePair = (label: string, id: Uint8Array, withPublic = true) =>
    withRawSession((pkcs11, session) =>
      Effect.gen(function*() {
        const pair = yield* pkcs11.generateKeyPair(session, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
          publicKey: { modulusBits: 2048, token: true, label, id },
          privateKey: { sign: true, token: true, private: true, label, id }
        })
        if (!withPublic) yield* pkcs11.destroyObject(session, pair.publicKey)
        return pair
      })
    )

  /** A P-256 pair made behind hsmkey's back, so that labels may repeat (hsmkey refuses that). */
  const makeEcPair = (label: string, id: Uint8Array) =>
    withRawSession((pkcs11, session) =>
      pkcs11.generateKeyPair(session, { type: CKM.EC_KEY_PAIR_GEN }, {
        publicKey: { ecParams: Curve.ecParams("P-256"), token: true, label, id },
        privateKey: { sign: true, token: true, private: true, label, id }
      })
    )

  it.effect("two private keys with one label are KeyAmbiguous; the CKA_ID tells them apart", () =>
    Effect.gen(function*() {
      yield* makePair("twin", new Uint8Array([1]))
      yield* makePair("twin", new Uint8Array([2]))
      const error = yield* Effect.flip(HsmJwk.fromHsm({ label: "twin" }))
      assert.strictEqual(error._tag, "KeyAmbiguous")
      assert.strictEqual(error._tag === "KeyAmbiguous" ? error.count : 0, 2)
      const one = yield* HsmJwk.fromHsm({ label: "twin", id: "02" })
      assert.deepStrictEqual(one.id, new Uint8Array([2]))
      const none = yield* Effect.flip(HsmJwk.fromHsm({ label: "twin", id: "03" }))
      assert.strictEqual(none._tag, "KeyNotFound")
      assert.include(none.message, "label \"twin\" and id 03")
      // The two keys' one label is listed once.
      assert.deepStrictEqual(none._tag === "KeyNotFound" ? none.present : undefined, ["twin"])
    }).pipe(Effect.provide(live())))

  it.effect("KeyNotFound for a label not on the token lists the labels of the private keys present", () =>
    Effect.gen(function*() {
      const empty = yield* Effect.flip(HsmJwk.fromHsm({ label: "gamma" }))
      assert.strictEqual(empty._tag, "KeyNotFound")
      if (empty._tag !== "KeyNotFound") return
      assert.strictEqual(empty.reason, "absent")
      assert.deepStrictEqual(empty.present, [])
      assert.include(empty.message, "label \"gamma\"")
      assert.include(empty.message, "private keys present: none")

      yield* HsmJwk.generate({ type: "P-256", label: "beta" })
      yield* HsmJwk.generate({ type: "P-256", label: "alpha" })
      const error = yield* Effect.flip(HsmJwk.fromHsm({ label: "gamma" }))
      assert.strictEqual(error._tag, "KeyNotFound")
      if (error._tag !== "KeyNotFound") return
      assert.strictEqual(error.reason, "absent")
      assert.strictEqual(error.query, "label \"gamma\"")
      assert.strictEqual(error.token, "emu")
      assert.deepStrictEqual(error.present, ["alpha", "beta"])
      assert.include(error.message, "No private key with label \"gamma\" on token \"emu\"")
      assert.include(error.message, "private keys present: \"alpha\", \"beta\"")
    }).pipe(Effect.provide(live())))

  it.effect("without a PIN a private key is hidden: KeyNotFound(not-logged-in) says to log in", () =>
    Effect.gen(function*() {
      // Made by a pool with the PIN, which logs out when it closes.
      yield* HsmJwk.generate({ type: "P-256", label: "hidden" }).pipe(
        Effect.provide(SessionPool.layer({ tokenLabel: "emu", userPin }))
      )
      const error = yield* Effect.flip(
        HsmJwk.fromHsm({ label: "hidden" }).pipe(Effect.provide(SessionPool.layer({ tokenLabel: "emu" })))
      )
      assert.strictEqual(error._tag, "KeyNotFound", error.message)
      if (error._tag !== "KeyNotFound") return
      assert.strictEqual(error.reason, "not-logged-in")
      assert.include(error.message, "label \"hidden\"")
      assert.include(error.message, "\"emu\"")
      assert.include(
        error.message,
        "private keys and secrets are hidden until the pool logs in; give the SessionPool a userPin"
      )
      // The key is there: with the PIN it loads.
      const key = yield* HsmJwk.fromHsm({ label: "hidden" }).pipe(
        Effect.provide(SessionPool.layer({ tokenLabel: "emu", userPin }))
      )
      assert.strictEqual(key.label, "hidden")
    }).pipe(Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin }] }))))

  it.effect("an RSA key without a public object is read from the private object's public attributes", () =>
    Effect.gen(function*() {
      yield* makePair("lonely", new Uint8Array([9]), false)
      const key = yield* HsmJwk.fromHsm({ label: "lonely" })
      assert.strictEqual(key.keyType, "RSA")
      assert.strictEqual(key.bits, 2048)
      const jws = yield* Jws.sign("public half from the private object", key)
      yield* Jws.verify(jws, key)
    }).pipe(Effect.provide(live())))

  it.effect("an EC private key with no public half anywhere is KeyNotFound(no-public-key)", () =>
    Effect.gen(function*() {
      yield* withRawSession((pkcs11, session) =>
        Effect.gen(function*() {
          const pair = yield* pkcs11.generateKeyPair(session, { type: CKM.EC_KEY_PAIR_GEN }, {
            publicKey: { ecParams: Curve.ecParams("P-256"), token: true, label: "half" },
            privateKey: { sign: true, token: true, private: true, label: "half", id: new Uint8Array([5]) }
          })
          yield* pkcs11.destroyObject(session, pair.publicKey)
        })
      )
      const error = yield* Effect.flip(HsmJwk.fromHsm({ label: "half" }))
      assert.strictEqual(error._tag === "KeyNotFound" ? error.reason : error._tag, "no-public-key")
      const listed = yield* HsmJwk.list()
      assert.deepStrictEqual(listed, [])
    }).pipe(Effect.provide(live())))

  it.effect("list orders keys by label, then CKA_ID, and in the same order every time", () =>
    Effect.gen(function*() {
      // Made out of order; "alpha" three times, with ids whose hex sorts otherwise than their creation.
      const made: ReadonlyArray<readonly [string, string]> = [
        ["zeta", "01"],
        ["alpha", "0b"],
        ["mid", "10"],
        ["alpha", "02"],
        ["Beta", "07"],
        ["alpha", "0102"]
      ]
      for (const [label, id] of made) yield* makeEcPair(label, Buffer.from(id, "hex"))
      const expected = [["Beta", "07"], ["alpha", "0102"], ["alpha", "02"], ["alpha", "0b"], ["mid", "10"], [
        "zeta",
        "01"
      ]]
      const order = (keys: ReadonlyArray<HsmJwk.HsmJwk>) =>
        keys.map((key) => [key.label, Buffer.from(key.id).toString("hex")])
      const first = yield* HsmJwk.list()
      assert.deepStrictEqual(order(first), expected)
      const second = yield* HsmJwk.list()
      assert.deepStrictEqual(order(second), expected)
      assert.deepStrictEqual(second.map((key) => key.kid), first.map((key) => key.kid))
    }).pipe(Effect.provide(live())))
})

describe("HsmJwk signing", () => {
  it.effect("a cached handle that the token no longer knows is found again", () =>
    Effect.gen(function*() {
      const material = Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" })
      const key = yield* HsmJwk.importPrivate({ key: material.privateKey, label: "moving", id: "77" })
      yield* Jws.sign("cached", key)
      // Another application replaces the key: same CKA_ID, new object, new handle.
      yield* withRawSession((pkcs11, session) =>
        Effect.gen(function*() {
          for (const handle of yield* pkcs11.findObjects(session, { id: key.id })) {
            yield* pkcs11.destroyObject(session, handle)
          }
        })
      )
      yield* HsmJwk.importPrivate({ key: material.privateKey, label: "moving", id: "77" })
      const jws = yield* Jws.sign("found again", key)
      assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(jws, material.publicKey)).payload), "found again")
    }).pipe(Effect.provide(live())))

  it.effect("a key keeps signing after the token loses its login (forced logout, emulator)", () =>
    Effect.gen(function*() {
      const control = yield* MemoryPkcs11.Control
      const key = yield* HsmJwk.generate({ type: "P-521", label: "survivor" })
      yield* Jws.sign("before", key)
      yield* control.forceLogout("emu")
      const jws = yield* Jws.sign("after", key)
      assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(jws, key)).payload), "after")
      assert.strictEqual((yield* control.stats("emu")).loginCalls, 2)
    }).pipe(Effect.provide(live())))

  it.effect("signs in the session at hand, never in the pool in context", () =>
    Effect.gen(function*() {
      const pool = yield* SessionPool.make({ tokenLabel: "emu", userPin })
      // The pool in context may lend nothing: generating and signing use the session in context.
      const inHand = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        pool.withSession(effect, { rw: true }).pipe(
          Effect.provideService(SessionPool.SessionPool, unusablePool(pool.token))
        )
      const key = yield* inHand(HsmJwk.generate({ type: "Ed25519", label: "in-hand" }))
      const jws = yield* inHand(Jws.sign("no pool needed", key))
      yield* Jws.verify(jws, key)
    }).pipe(Effect.scoped, Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin }] }))))

  it.effect("refuses to sign with a key of another token", () =>
    Effect.gen(function*() {
      const other = yield* SessionPool.make({ tokenLabel: "other", userPin })
      const key = yield* HsmJwk.generate({ type: "P-256", label: "elsewhere" }).pipe(
        Effect.provideService(SessionPool.SessionPool, other)
      )
      const pool = yield* SessionPool.make({ tokenLabel: "emu", userPin })
      // Neither a session in context on another token nor a pool on another token signs with it.
      const inSession = yield* Effect.flip(
        pool.withSession(Jws.sign("x", key)).pipe(Effect.provideService(SessionPool.SessionPool, pool))
      )
      const inPool = yield* Effect.flip(Jws.sign("x", key).pipe(Effect.provideService(SessionPool.SessionPool, pool)))
      for (const error of [inSession, inPool]) {
        assert.strictEqual(error._tag, "InvalidOptions")
        assert.include(error.message, "\"other\"")
      }
    }).pipe(
      Effect.scoped,
      Effect.provide(MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin }, { label: "other", userPin }] }))
    ))

  it.effect("an RSA key below 2048 bits does not sign RS* or PS*", () =>
    Effect.gen(function*() {
      const small = Crypto.generateKeyPairSync("rsa", { modulusLength: 1024 })
      const key = yield* HsmJwk.importPrivate({ key: small.privateKey, label: "small" })
      const error = yield* Effect.flip(Jws.sign("x", key))
      assert.strictEqual(error._tag, "AlgorithmMismatch")
      assert.include(error.message, "RSA-1024")
    }).pipe(Effect.provide(live())))
})

describe("ECDSA signatures", () => {
  it("DER signatures from a token convert to r ‖ s, and anything else is refused", () => {
    for (
      const [curve, hash, size] of [["prime256v1", "sha256", 64], ["secp384r1", "sha384", 96], [
        "secp521r1",
        "sha512",
        132
      ]] as const
    ) {
      const { privateKey, publicKey } = Crypto.generateKeyPairSync("ec", { namedCurve: curve })
      for (let i = 0; i < 20; i++) {
        const data = Crypto.randomBytes(16)
        const der = Crypto.sign(hash, data, { key: privateKey, dsaEncoding: "der" })
        const raw = Algorithms.rawEcdsa(der, size)
        assert.isDefined(raw)
        assert.strictEqual(raw!.length, size)
        assert.isTrue(Crypto.verify(hash, data, { key: publicKey, dsaEncoding: "ieee-p1363" }, raw!))
      }
    }
    assert.isUndefined(Algorithms.rawEcdsa(new Uint8Array(70), 64))
    assert.isUndefined(Algorithms.rawEcdsa(Uint8Array.from([0x30, 0x02, 0x02, 0x00]), 64))
  })
})

describe("HsmJwk values", () => {
  it.effect("a key serializes as its public JWK and holds no session", () =>
    Effect.gen(function*() {
      const key = yield* HsmJwk.generate({ type: "P-384", label: "value" })
      assert.isTrue(HsmJwk.isHsmJwk(key))
      assert.isFalse(HsmJwk.isHsmJwk(key.publicJwk))
      assert.notProperty(key, "session")
      const renamed = yield* HsmJwk.withAlgorithm(key, "ES384")
      assert.strictEqual(renamed.publicJwk.alg, "ES384")
      const wrong = yield* Effect.flip(HsmJwk.withAlgorithm(key, "ES256"))
      assert.strictEqual(wrong._tag, "AlgorithmMismatch")
      assert.deepStrictEqual(JSON.parse(JSON.stringify(key)), key.publicJwk)
      assert.deepStrictEqual(JSON.parse(JSON.stringify(renamed)), renamed.publicJwk)
      assert.isTrue(HsmJwk.isHsmJwk(renamed))
    }).pipe(Effect.provide(live())))
})

describe("HsmJwk messages", () => {
  it.effect("AlgorithmMismatch names the key once, with what it is for", () =>
    Effect.gen(function*() {
      const enc = yield* HsmJwk.generate({ type: "RSA-2048", label: "enc", use: "enc" })
      const sig = yield* HsmJwk.generate({ type: "RSA-2048", label: "sig" })
      const signing = yield* Effect.flip(Algorithm.check(enc, "RS256"))
      const decrypting = yield* Effect.flip(Algorithm.checkKeyManagement(sig, "RSA-OAEP"))
      const fitting = yield* Effect.flip(Algorithm.check(sig, "ES256"))
      assert.strictEqual(signing.message, "Algorithm RS256 does not fit the RSA-2048 decryption key")
      assert.strictEqual(decrypting.message, "Algorithm RSA-OAEP does not fit the RSA-2048 signing key")
      assert.strictEqual(fitting.message, "Algorithm ES256 does not fit the RSA-2048 key")
    }).pipe(Effect.provide(live())))
})

describe("HsmJwk trust on the emulator, which hands out freed handles again", () => {
  const destroyAll = (id: Uint8Array) =>
    withRawSession((pkcs11, session) =>
      Effect.gen(function*() {
        const objects = yield* pkcs11.findObjects(session, { id })
        // The private key first: its number goes out first to the next key.
        for (const object of [...objects].reverse()) yield* pkcs11.destroyObject(session, object)
      })
    )

  it.effect("an EC key replaced under its CKA_ID by another EC key is proven by a signature: KeyNotFound(changed)", () =>
    Effect.gen(function*() {
      const a = yield* HsmJwk.generate({ type: "P-256", label: "ec-a", id: "e1" })
      yield* Jws.sign("A signs", a)
      yield* destroyAll(a.id)
      const b = yield* HsmJwk.generate({ type: "P-256", label: "ec-a", id: "e1" })
      const error = yield* Effect.flip(Jws.sign("must not be signed by B", a))
      assert.strictEqual(error._tag === "KeyNotFound" ? error.reason : error._tag, "changed")
      yield* Jws.verify(yield* Jws.sign("B signs as itself", b), b)
    }).pipe(Effect.provide(live())))

  it.effect("a key with neither CKA_ID nor label is refused at load, not signed with by chance", () =>
    Effect.gen(function*() {
      yield* withRawSession((pkcs11, session) =>
        // RSA: its public half reads from the private object, so nothing but the missing reference refuses it.
        pkcs11.generateKeyPair(session, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
          publicKey: { modulusBits: 2048, token: true },
          privateKey: { sign: true, token: true, private: true }
        })
      )
      const listed = yield* HsmJwk.list()
      assert.deepStrictEqual(listed, [])
      const [handle] = yield* withRawSession((pkcs11, session) =>
        pkcs11.findObjects(session, { class: Constants.CKO.PRIVATE_KEY })
      )
      assert.isDefined(handle, "the key is there, only unlisted")
    }).pipe(Effect.provide(live())))
})
