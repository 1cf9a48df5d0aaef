/**
 * What the emulator models beyond SoftHSM2 (session limits, PIN lockout, removal) and its test
 * controls. The behaviour both backends share is in the root conformance suite.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Attribute, Constants, Curve, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Redacted } from "effect"
import * as Crypto from "node:crypto"

const { CKG, CKK, CKM, CKO, CKR } = Constants

const userPin = Redacted.make("1234-user")
const soPin = Redacted.make("5678-so")

const emulator = (token: Partial<MemoryPkcs11.TokenOptions> = {}, emptySlots = 0) =>
  MemoryPkcs11.layer({ tokens: [{ label: "emu", userPin, soPin, ...token }], emptySlots })

const slotOf = (label: string) =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    for (const slot of yield* pkcs11.slots()) {
      if ((yield* pkcs11.tokenInfo(slot)).label === label) return slot
    }
    return yield* Effect.dieMessage(`no token ${label}`)
  })

const session = (options: { readonly rw?: boolean; readonly login?: boolean } = {}) =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    const handle = yield* Effect.acquireRelease(
      pkcs11.openSession(yield* slotOf("emu"), { rw: options.rw ?? true }),
      (s) => Effect.ignore(pkcs11.closeSession(s))
    )
    if (options.login ?? true) yield* pkcs11.login(handle, userPin)
    return handle
  })

/** A P-256 key pair whose private key signs. */
const p256Pair = (handle: Pkcs11.SessionHandle, privateKey: Attribute.Attributes = {}) =>
  Effect.flatMap(Pkcs11.Pkcs11, (pkcs11) =>
    pkcs11.generateKeyPair(handle, { type: CKM.EC_KEY_PAIR_GEN }, {
      publicKey: { ecParams: Curve.ecParams("P-256") },
      privateKey: { sign: true, ...privateKey }
    }))

const b64 = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString("base64url")
const unb64 = (text: string | undefined) => new Uint8Array(Buffer.from(text ?? "", "base64url"))

describe("MemoryPkcs11", () => {
  describe("as other tokens answer", () => {
    it.scoped("hands freed object and session handles out again, lowest first, as openCryptoki does", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        const first = yield* p256Pair(handle)
        const second = yield* p256Pair(handle)
        yield* pkcs11.destroyObject(handle, first.privateKey)
        yield* pkcs11.destroyObject(handle, first.publicKey)
        const third = yield* p256Pair(handle)
        assert.deepStrictEqual(
          [third.publicKey, third.privateKey].sort(),
          [first.publicKey, first.privateKey].sort(),
          "the destroyed pair's numbers, lowest first"
        )
        assert.notInclude([third.publicKey, third.privateKey], second.privateKey)
        const slot = yield* slotOf("emu")
        const closed = yield* pkcs11.openSession(slot)
        yield* pkcs11.closeSession(closed)
        assert.strictEqual(yield* pkcs11.openSession(slot), closed)
      }).pipe(Effect.provide(emulator())))

    it.scoped("can read CKA_VALUE_LEN 0 for a created secret, and answer an undecryptable block as told", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        const secret = yield* pkcs11.createObject(handle, {
          class: CKO.SECRET_KEY,
          keyType: CKK.GENERIC_SECRET,
          value: Crypto.randomBytes(32),
          sign: true
        })
        assert.strictEqual((yield* pkcs11.getAttributes(handle, secret, ["valueLen"])).valueLen, 0)
        const refused = yield* Effect.flip(pkcs11.createObject(handle, {
          class: CKO.SECRET_KEY,
          keyType: CKK.GENERIC_SECRET,
          value: Crypto.randomBytes(32),
          valueLen: 32
        }))
        assert.strictEqual(
          refused._tag === "Pkcs11Error" ? refused.returnValue : refused._tag,
          "CKR_ATTRIBUTE_READ_ONLY"
        )
        const pair = yield* pkcs11.generateKeyPair(handle, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
          publicKey: { modulusBits: 2048 },
          privateKey: { decrypt: true }
        })
        const oaep = {
          type: CKM.RSA_PKCS_OAEP,
          parameter: { _tag: "RsaOaep", hashAlg: CKM.SHA_1, mgf: CKG.MGF1_SHA1 }
        } as const
        const failed = yield* Effect.flip(pkcs11.decrypt(handle, oaep, pair.privateKey, Crypto.randomBytes(256)))
        assert.strictEqual(failed._tag === "Pkcs11Error" ? failed.returnValue : failed._tag, "CKR_FUNCTION_FAILED")
        assert.strictEqual(failed._tag === "Pkcs11Error" ? failed.method : "", "C_Decrypt")
        // Parameters are checked when the operation starts, as SoftHSM2 checks them.
        const sha384 = { ...oaep, parameter: { ...oaep.parameter, hashAlg: CKM.SHA384, mgf: CKG.MGF1_SHA1 } }
        const refusedInit = yield* Effect.flip(pkcs11.decrypt(handle, sha384, pair.privateKey, Crypto.randomBytes(256)))
        assert.strictEqual(
          refusedInit._tag === "MechanismInvalid" ? refusedInit.method : refusedInit._tag,
          "C_DecryptInit"
        )
      }).pipe(Effect.provide(emulator({ createdSecretValueLen: "zero", undecryptable: CKR.FUNCTION_FAILED }))))
  })

  describe("session limits", () => {
    it.scoped("refuses a session beyond the token's maximum with SessionFailed(limit)", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* slotOf("emu")
        yield* pkcs11.openSession(slot)
        yield* pkcs11.openSession(slot, { rw: true })
        const info = yield* pkcs11.tokenInfo(slot)
        assert.strictEqual(info.maxSessions, 2)
        assert.strictEqual(info.openSessions, 2)
        assert.strictEqual(info.openRwSessions, 1)
        const error = yield* Effect.flip(pkcs11.openSession(slot))
        assert.strictEqual(error._tag, "SessionFailed")
        assert.strictEqual(error._tag === "SessionFailed" ? error.reason : "", "limit")
      }).pipe(Effect.provide(emulator({ maxSessions: 2 }))))

    it.scoped("limits read/write sessions separately", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* slotOf("emu")
        yield* pkcs11.openSession(slot, { rw: true })
        const error = yield* Effect.flip(pkcs11.openSession(slot, { rw: true }))
        assert.strictEqual(error._tag, "SessionFailed")
        yield* pkcs11.openSession(slot)
        assert.strictEqual((yield* pkcs11.tokenInfo(slot)).maxRwSessions, 1)
      }).pipe(Effect.provide(emulator({ maxRwSessions: 1 }))))

    it.scoped("reports no limit as unlimited", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const info = yield* pkcs11.tokenInfo(yield* slotOf("emu"))
        assert.strictEqual(info.maxSessions, "unlimited")
        assert.strictEqual(info.openSessions, 0)
      }).pipe(Effect.provide(emulator())))
  })

  describe("PIN retry counter", () => {
    it.scoped("flags COUNT_LOW, then FINAL_TRY, then LOCKED; a locked PIN refuses even the right one", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* slotOf("emu")
        const handle = yield* session({ login: false })
        const wrong = Redacted.make("0000")
        const flags = Effect.map(pkcs11.tokenInfo(slot), (info) => info.userPin)

        assert.deepStrictEqual(yield* flags, { countLow: false, finalTry: false, locked: false, toBeChanged: false })
        assert.strictEqual((yield* Effect.flip(pkcs11.login(handle, wrong)))._tag, "PinIncorrect")
        assert.deepStrictEqual(yield* flags, { countLow: true, finalTry: false, locked: false, toBeChanged: false })
        assert.strictEqual((yield* Effect.flip(pkcs11.login(handle, wrong)))._tag, "PinIncorrect")
        assert.deepStrictEqual(yield* flags, { countLow: true, finalTry: true, locked: false, toBeChanged: false })
        assert.strictEqual((yield* Effect.flip(pkcs11.login(handle, wrong)))._tag, "PinIncorrect")
        assert.isTrue((yield* flags).locked)

        const locked = yield* Effect.flip(pkcs11.login(handle, userPin))
        assert.strictEqual(locked._tag, "PinLocked")
        assert.strictEqual(locked._tag === "PinLocked" ? locked.reason : "", "locked")
        assert.strictEqual(locked._tag === "PinLocked" ? locked.token : "", "emu")
      }).pipe(Effect.provide(emulator({ pinRetries: 3 }))))

    it.scoped("a right PIN resets the counter", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* slotOf("emu")
        const handle = yield* session({ login: false })
        yield* Effect.flip(pkcs11.login(handle, Redacted.make("0000")))
        assert.isTrue((yield* pkcs11.tokenInfo(slot)).userPin.countLow)
        yield* pkcs11.login(handle, userPin)
        assert.isFalse((yield* pkcs11.tokenInfo(slot)).userPin.countLow)
      }).pipe(Effect.provide(emulator())))

    it.scoped("checks the login state before the PIN, as SoftHSM2 does", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        assert.strictEqual(yield* pkcs11.login(handle, Redacted.make("not-the-pin")), "already-logged-in")
        assert.isFalse((yield* pkcs11.tokenInfo(yield* slotOf("emu"))).userPin.countLow)
      }).pipe(Effect.provide(emulator())))

    it.scoped("a PIN to be changed is flagged; private keys refuse to work until C_SetPIN", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* slotOf("emu")
        assert.isTrue((yield* pkcs11.tokenInfo(slot)).userPin.toBeChanged)
        const handle = yield* session()
        const expired = yield* Effect.flip(
          p256Pair(handle)
        )
        assert.strictEqual(expired._tag, "PinExpired")
        const fresh = Redacted.make("a-new-pin")
        yield* pkcs11.setPin(handle, userPin, fresh)
        assert.isFalse((yield* pkcs11.tokenInfo(slot)).userPin.toBeChanged)
        yield* p256Pair(handle)
      }).pipe(Effect.provide(emulator({ userPinToBeChanged: true }))))
  })

  describe("Control", () => {
    it.scoped("failNext makes the next calls of a method return the code, then stops", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const slot = yield* slotOf("emu")
        yield* control.failNext({ method: "C_GetTokenInfo", code: CKR.DEVICE_ERROR, times: 2, token: "emu" })
        for (let i = 0; i < 2; i++) {
          const error = yield* Effect.flip(pkcs11.tokenInfo(slot))
          assert.strictEqual(error._tag, "Pkcs11Error")
          assert.strictEqual(error._tag === "Pkcs11Error" ? error.returnValue : "", "CKR_DEVICE_ERROR")
          assert.strictEqual(error._tag === "Pkcs11Error" ? error.method : "", "C_GetTokenInfo")
        }
        assert.strictEqual((yield* pkcs11.tokenInfo(slot)).label, "emu")
      }).pipe(Effect.provide(emulator())))

    it.scoped("an injected CKR_SESSION_HANDLE_INVALID makes the token forget the session", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const handle = yield* session()
        const pair = yield* p256Pair(handle)
        yield* control.failNext({ method: "C_Sign", code: CKR.SESSION_HANDLE_INVALID })
        const error = yield* Effect.flip(pkcs11.sign(handle, { type: CKM.ECDSA }, pair.privateKey, new Uint8Array(32)))
        assert.strictEqual(error._tag, "SessionFailed")
        assert.strictEqual((yield* Effect.flip(pkcs11.sessionInfo(handle)))._tag, "SessionFailed")
        assert.strictEqual((yield* control.stats("emu")).openSessions, 0)
      }).pipe(Effect.provide(emulator())))

    it.scoped("on C_CloseSession too: an injected session-gone code closes it, any other code leaves it open", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const gone = yield* session()
        const kept = yield* session()
        yield* control.failNext({ method: "C_CloseSession", code: CKR.SESSION_HANDLE_INVALID })
        assert.strictEqual((yield* Effect.flip(pkcs11.closeSession(gone)))._tag, "SessionFailed")
        assert.strictEqual((yield* Effect.flip(pkcs11.sessionInfo(gone)))._tag, "SessionFailed")
        yield* control.failNext({ method: "C_CloseSession", code: CKR.GENERAL_ERROR })
        assert.strictEqual((yield* Effect.flip(pkcs11.closeSession(kept)))._tag, "Pkcs11Error")
        assert.strictEqual((yield* control.stats("emu")).openSessions, 1)
        yield* pkcs11.sessionInfo(kept)
      }).pipe(Effect.provide(emulator())))

    it.live("delayNext slows the next calls of a method: signing waits on a timer, a synchronous call holds the thread", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const handle = yield* session()
        const pair = yield* p256Pair(handle)
        const digest = new Uint8Array(32)
        const timed = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.map(Effect.timed(effect), ([took]) => Duration.toMillis(took))
        yield* control.delayNext({ method: "C_Sign", duration: "150 millis", times: 2 })
        // The event loop turns while the signature waits: a 10 ms timer fires long before it is done.
        const timer = yield* Effect.fork(timed(Effect.promise(() => new Promise((r) => setTimeout(r, 10)))))
        assert.isAtLeast(yield* timed(pkcs11.sign(handle, { type: CKM.ECDSA }, pair.privateKey, digest)), 145)
        assert.isBelow(yield* Fiber.join(timer), 100)
        assert.isAtLeast(yield* timed(pkcs11.sign(handle, { type: CKM.ECDSA }, pair.privateKey, digest)), 145)
        assert.isBelow(yield* timed(pkcs11.sign(handle, { type: CKM.ECDSA }, pair.privateKey, digest)), 100)
        const slot = yield* slotOf("emu")
        yield* control.delayNext({ method: "C_GetTokenInfo", duration: "60 millis", token: "emu" })
        assert.isAtLeast(yield* timed(pkcs11.tokenInfo(slot)), 55)
        const defect = yield* Effect.exit(control.delayNext({ method: "C_Sign", duration: Duration.infinity }))
        assert.isTrue(Exit.isFailure(defect) && Cause.isDie(defect.cause))
      }).pipe(Effect.scoped, Effect.provide(emulator())))

    it.live(
      "signs on a later turn of the event loop: ECDSA under load leaves timers firing on time",
      () =>
        Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const handles = yield* Effect.forEach([1, 2, 3, 4], () => session())
          const pair = yield* p256Pair(handles[0])
          const digest = new Uint8Array(32)
          // Four sessions signing back to back, 200 signatures each, about 1-2 ms of JavaScript apiece.
          const load = yield* Effect.fork(Effect.forEach(
            handles,
            (handle) => Effect.repeatN(pkcs11.sign(handle, { type: CKM.ECDSA }, pair.privateKey, digest), 199),
            { concurrency: "unbounded", discard: true }
          ))
          const delays: Array<number> = []
          for (let i = 0; i < 10; i++) {
            const start = performance.now()
            yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
            delays.push(performance.now() - start)
          }
          yield* Fiber.join(load)
          // Once: the signatures were chained on microtasks, and no timer fired until all 800 were done.
          assert.isBelow(Math.max(...delays), 100, delays.map((d) => d.toFixed(0)).join(" "))
        }).pipe(Effect.scoped, Effect.provide(emulator())),
      60_000
    )

    it.scoped("counts sessions, their peak and every C_Login call", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const slot = yield* slotOf("emu")
        const a = yield* pkcs11.openSession(slot, { rw: true })
        const b = yield* pkcs11.openSession(slot)
        yield* pkcs11.login(a, userPin)
        yield* pkcs11.login(b, userPin)
        assert.strictEqual(yield* pkcs11.login(b, Redacted.make("unchecked")), "already-logged-in")
        yield* pkcs11.closeSession(b)
        const stats = yield* control.stats("emu")
        assert.deepStrictEqual(
          { ...stats, slotId: undefined },
          {
            slotId: undefined,
            present: true,
            openSessions: 1,
            openRwSessions: 1,
            peakSessions: 2,
            loginCalls: 3,
            loggedIn: "user"
          }
        )
        yield* control.resetPeak("emu")
        assert.strictEqual((yield* control.stats("emu")).peakSessions, 1)
        yield* pkcs11.closeSession(a)
        assert.strictEqual((yield* control.stats("emu")).loggedIn, undefined)
      }).pipe(Effect.provide(emulator())))

    it.scoped("a removed token fails its sessions with TokenNotPresent; re-inserted it has a new slot id", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const slot = yield* slotOf("emu")
        const handle = yield* pkcs11.openSession(slot)
        yield* pkcs11.login(handle, userPin)
        yield* control.removeToken("emu")

        const removed = yield* Effect.flip(pkcs11.sessionInfo(handle))
        assert.strictEqual(removed._tag, "TokenNotPresent")
        assert.strictEqual(removed._tag === "TokenNotPresent" ? removed.returnValue : "", "CKR_DEVICE_REMOVED")
        assert.strictEqual((yield* Effect.flip(pkcs11.tokenInfo(slot)))._tag, "TokenNotPresent")
        assert.deepStrictEqual(yield* pkcs11.slots(), [])
        assert.isFalse((yield* control.stats("emu")).present)
        yield* pkcs11.closeSession(handle)

        const newSlot = yield* control.insertToken("emu")
        assert.notStrictEqual(newSlot, slot)
        assert.deepStrictEqual(yield* pkcs11.slots(), [newSlot])
        const stale = yield* Effect.flip(pkcs11.openSession(slot))
        assert.strictEqual(stale._tag, "TokenNotPresent")
        assert.strictEqual(stale._tag === "TokenNotPresent" ? stale.returnValue : "", "CKR_SLOT_ID_INVALID")
        const fresh = yield* pkcs11.openSession(newSlot)
        assert.strictEqual((yield* pkcs11.sessionInfo(fresh)).state, "ro-public")
        assert.strictEqual(yield* pkcs11.login(fresh, userPin), "logged-in")
      }).pipe(Effect.provide(emulator())))

    it.scoped("forceLogout drops the token's login state and private handles", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const control = yield* MemoryPkcs11.Control
        const handle = yield* session()
        const pair = yield* p256Pair(handle, { sign: true, token: true, id: new Uint8Array([7]) })
        yield* control.forceLogout("emu")
        assert.strictEqual((yield* pkcs11.sessionInfo(handle)).state, "rw-public")
        const stale = yield* Effect.flip(pkcs11.sign(handle, { type: CKM.ECDSA }, pair.privateKey, new Uint8Array(32)))
        assert.strictEqual(stale._tag, "ObjectHandleInvalid")
        yield* pkcs11.login(handle, userPin)
        const [again] = yield* pkcs11.findObjects(handle, { id: new Uint8Array([7]), class: CKO.PRIVATE_KEY })
        assert.isDefined(again)
        yield* pkcs11.sign(handle, { type: CKM.ECDSA }, again, new Uint8Array(32))
      }).pipe(Effect.provide(emulator())))

    it.effect("naming an unknown token is a defect of the test", () =>
      Effect.gen(function*() {
        const control = yield* MemoryPkcs11.Control
        const exit = yield* Effect.exit(control.stats("nope"))
        assert.isTrue(exit._tag === "Failure" && exit.cause._tag === "Die")
      }).pipe(Effect.provide(emulator())))
  })

  describe("tokens without every mechanism", () => {
    it.scoped("a mechanism the token does not list is MechanismInvalid", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const slot = yield* slotOf("emu")
        assert.deepStrictEqual(yield* pkcs11.mechanisms(slot), [CKM.RSA_PKCS_KEY_PAIR_GEN, CKM.RSA_PKCS])
        const handle = yield* session()
        const pair = yield* pkcs11.generateKeyPair(handle, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
          publicKey: { modulusBits: 2048 },
          privateKey: { sign: true }
        })
        const error = yield* Effect.flip(
          pkcs11.sign(handle, { type: CKM.SHA256_RSA_PKCS }, pair.privateKey, new Uint8Array(8))
        )
        assert.strictEqual(error._tag, "MechanismInvalid")
        assert.include(error.message, "CKM_SHA256_RSA_PKCS")
        assert.strictEqual((yield* Effect.flip(pkcs11.mechanismInfo(slot, CKM.ECDSA)))._tag, "MechanismInvalid")

        // RS256 as an openCryptoki-like token does it: CKM_RSA_PKCS over the DER DigestInfo of the hash.
        const message = Buffer.from("digest info")
        const digestInfo = Buffer.concat([
          Buffer.from("3031300d060960864801650304020105000420", "hex"),
          Crypto.createHash("sha256").update(message).digest()
        ])
        const signature = yield* pkcs11.sign(handle, { type: CKM.RSA_PKCS }, pair.privateKey, digestInfo)
        const read = yield* pkcs11.getAttributes(handle, pair.publicKey, ["modulus", "publicExponent"])
        const key = Crypto.createPublicKey({
          key: { kty: "RSA", n: b64(read.modulus), e: b64(read.publicExponent) },
          format: "jwk"
        })
        assert.isTrue(Crypto.verify("sha256", message, key, signature))
      }).pipe(Effect.provide(emulator({ mechanisms: [CKM.RSA_PKCS_KEY_PAIR_GEN, CKM.RSA_PKCS] }))))
  })

  it.scoped("generates RSA-3072 and RSA-4096 keys that sign RS* and PS*", () =>
    Effect.gen(function*() {
      const pkcs11 = yield* Pkcs11.Pkcs11
      const handle = yield* session()
      const data = Buffer.from("large moduli")
      for (const bits of [3072, 4096]) {
        const pair = yield* pkcs11.generateKeyPair(handle, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
          publicKey: { modulusBits: bits, publicExponent: new Uint8Array([1, 0, 1]) },
          privateKey: { sign: true }
        })
        const read = yield* pkcs11.getAttributes(handle, pair.publicKey, ["modulus", "publicExponent", "modulusBits"])
        assert.strictEqual(read.modulusBits, bits)
        assert.strictEqual(read.modulus?.length, bits / 8)
        const key = Crypto.createPublicKey({
          key: { kty: "RSA", n: b64(read.modulus), e: b64(read.publicExponent) },
          format: "jwk"
        })
        const rs = yield* pkcs11.sign(handle, { type: CKM.SHA384_RSA_PKCS }, pair.privateKey, data)
        assert.isTrue(Crypto.verify("sha384", data, key, rs))
        const ps = yield* pkcs11.sign(
          handle,
          {
            type: CKM.SHA512_RSA_PKCS_PSS,
            parameter: { _tag: "RsaPss", hashAlg: CKM.SHA512, mgf: CKG.MGF1_SHA512, saltLength: 64 }
          },
          pair.privateKey,
          data
        )
        assert.strictEqual(ps.length, bits / 8)
        assert.isTrue(
          Crypto.verify("sha512", data, { key, padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }, ps)
        )
      }
      const tooSmall = yield* Effect.flip(pkcs11.generateKeyPair(handle, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
        publicKey: { modulusBits: 512 },
        privateKey: { sign: true }
      }))
      assert.strictEqual(tooSmall._tag === "Pkcs11Error" ? tooSmall.returnValue : tooSmall._tag, "CKR_KEY_SIZE_RANGE")
      const mismatched = yield* Effect.flip(pkcs11.sign(
        handle,
        {
          type: CKM.SHA256_RSA_PKCS_PSS,
          parameter: { _tag: "RsaPss", hashAlg: CKM.SHA256, mgf: CKG.MGF1_SHA1, saltLength: 32 }
        },
        (yield* pkcs11.findObjects(handle, { class: CKO.PRIVATE_KEY }))[0],
        data
      ))
      assert.strictEqual(mismatched._tag, "MechanismInvalid")
    }).pipe(Effect.provide(emulator())))

  describe("objects", () => {
    it.scoped("imports private keys from their components and signs with them", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        const data = Buffer.from("imported")

        const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
        const r = rsa.privateKey.export({ format: "jwk" })
        const rsaKey = yield* pkcs11.createObject(handle, {
          class: CKO.PRIVATE_KEY,
          keyType: CKK.RSA,
          sign: true,
          sensitive: true,
          modulus: unb64(r.n),
          publicExponent: unb64(r.e),
          privateExponent: unb64(r.d),
          prime1: unb64(r.p),
          prime2: unb64(r.q),
          exponent1: unb64(r.dp),
          exponent2: unb64(r.dq),
          coefficient: unb64(r.qi)
        })
        const rs = yield* pkcs11.sign(handle, { type: CKM.SHA256_RSA_PKCS }, rsaKey, data)
        assert.isTrue(Crypto.verify("sha256", data, rsa.publicKey, rs))
        const hidden = yield* pkcs11.getAttributes(handle, rsaKey, ["privateExponent", "local", "modulus"])
        assert.isUndefined(hidden.privateExponent)
        assert.isFalse(hidden.local)
        assert.strictEqual(hidden.modulus?.length, 256)

        for (const curve of ["P-256", "P-384", "P-521"] as const) {
          const ec = Crypto.generateKeyPairSync("ec", { namedCurve: Curve.specs[curve].nodeName })
          const ecKey = yield* pkcs11.createObject(handle, {
            class: CKO.PRIVATE_KEY,
            keyType: CKK.EC,
            sign: true,
            ecParams: Curve.ecParams(curve),
            value: unb64(ec.privateKey.export({ format: "jwk" }).d)
          })
          const hash = { "P-256": "sha256", "P-384": "sha384", "P-521": "sha512" }[curve]
          const es = yield* pkcs11.sign(
            handle,
            { type: CKM.ECDSA },
            ecKey,
            Crypto.createHash(hash).update(data).digest()
          )
          assert.strictEqual(es.length, Curve.specs[curve].signatureSize)
          assert.isTrue(Crypto.verify(hash, data, { key: ec.publicKey, dsaEncoding: "ieee-p1363" }, es), curve)
        }

        for (const curve of ["Ed25519", "Ed448"] as const) {
          const ed = curve === "Ed25519" ? Crypto.generateKeyPairSync("ed25519") : Crypto.generateKeyPairSync("ed448")
          const edKey = yield* pkcs11.createObject(handle, {
            class: CKO.PRIVATE_KEY,
            keyType: CKK.EC_EDWARDS,
            sign: true,
            ecParams: Curve.ecParams(curve),
            value: unb64(ed.privateKey.export({ format: "jwk" }).d)
          })
          const sig = yield* pkcs11.sign(handle, { type: CKM.EDDSA }, edKey, data)
          assert.strictEqual(sig.length, Curve.specs[curve].signatureSize)
          assert.isTrue(Crypto.verify(null, data, ed.publicKey, sig), curve)
        }
      }).pipe(Effect.provide(emulator())))

    it.scoped("imports public keys and verifies with them", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        const data = Buffer.from("verify me")
        const ec = Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" })
        const jwk = ec.publicKey.export({ format: "jwk" })
        const point = Uint8Array.from([0x04, ...unb64(jwk.x), ...unb64(jwk.y)])
        const publicKey = yield* pkcs11.createObject(handle, {
          class: CKO.PUBLIC_KEY,
          keyType: CKK.EC,
          verify: true,
          ecParams: Curve.ecParams("P-256"),
          ecPoint: Curve.encodeEcPoint(point)
        })
        const hash = Crypto.createHash("sha256").update(data).digest()
        const signature = Crypto.sign("sha256", data, { key: ec.privateKey, dsaEncoding: "ieee-p1363" })
        assert.isTrue(yield* pkcs11.verify(handle, { type: CKM.ECDSA }, publicKey, hash, signature))
        assert.isFalse(yield* pkcs11.verify(handle, { type: CKM.ECDSA }, publicKey, new Uint8Array(32), signature))
        const read = yield* pkcs11.getAttributes(handle, publicKey, ["private", "ecPoint"])
        assert.isFalse(read.private)
        assert.deepStrictEqual(Curve.decodeEcPoint("P-256", read.ecPoint!), point)
      }).pipe(Effect.provide(emulator())))

    it.scoped("HMAC keys sign and verify in the token; their value stays inside", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        const secret = yield* pkcs11.generateKey(handle, { type: CKM.GENERIC_SECRET_KEY_GEN }, {
          valueLen: 32,
          sign: true,
          verify: true,
          sensitive: true
        })
        const data = Buffer.from("mac me")
        const mac = yield* pkcs11.sign(handle, { type: CKM.SHA256_HMAC }, secret, data)
        assert.strictEqual(mac.length, 32)
        assert.isTrue(yield* pkcs11.verify(handle, { type: CKM.SHA256_HMAC }, secret, data, mac))
        assert.isFalse(yield* pkcs11.verify(handle, { type: CKM.SHA256_HMAC }, secret, Buffer.from("other"), mac))
        const read = yield* pkcs11.getAttributes(handle, secret, ["value", "valueLen", "class"])
        assert.isUndefined(read.value)
        assert.strictEqual(read.valueLen, 32)
        assert.strictEqual(read.class, CKO.SECRET_KEY)

        const known = Crypto.randomBytes(32)
        const imported = yield* pkcs11.createObject(handle, {
          class: CKO.SECRET_KEY,
          keyType: CKK.GENERIC_SECRET,
          value: known,
          sign: true
        })
        const mac512 = yield* pkcs11.sign(handle, { type: CKM.SHA512_HMAC }, imported, data)
        assert.deepStrictEqual(Buffer.from(mac512), Crypto.createHmac("sha512", known).update(data).digest())
      }).pipe(Effect.provide(emulator())))

    it.scoped("decrypts RSA-OAEP with SHA-1 and SHA-256 parameters and a label", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session()
        const pair = yield* pkcs11.generateKeyPair(handle, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
          publicKey: { modulusBits: 2048, encrypt: true },
          privateKey: { decrypt: true, sign: false }
        })
        const read = yield* pkcs11.getAttributes(handle, pair.publicKey, ["modulus", "publicExponent"])
        const key = Crypto.createPublicKey({
          key: { kty: "RSA", n: b64(read.modulus), e: b64(read.publicExponent) },
          format: "jwk"
        })
        const plaintext = Crypto.randomBytes(32)
        for (
          const [oaepHash, hashAlg, mgf] of [["sha1", CKM.SHA_1, CKG.MGF1_SHA1], [
            "sha256",
            CKM.SHA256,
            CKG.MGF1_SHA256
          ]] as const
        ) {
          const label = Buffer.from("label")
          const ciphertext = Crypto.publicEncrypt(
            { key, padding: Crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash, oaepLabel: label },
            plaintext
          )
          const mechanism = { type: CKM.RSA_PKCS_OAEP, parameter: { _tag: "RsaOaep" as const, hashAlg, mgf, label } }
          assert.deepStrictEqual(
            Buffer.from(yield* pkcs11.decrypt(handle, mechanism, pair.privateKey, ciphertext)),
            plaintext
          )
          const tampered = Buffer.from(ciphertext)
          tampered[10] ^= 1
          const error = yield* Effect.flip(pkcs11.decrypt(handle, mechanism, pair.privateKey, tampered))
          assert.strictEqual(
            error._tag === "Pkcs11Error" ? error.returnValue : error._tag,
            "CKR_ENCRYPTED_DATA_INVALID"
          )
        }
        const noSign = yield* Effect.flip(
          pkcs11.sign(handle, { type: CKM.SHA256_RSA_PKCS }, pair.privateKey, plaintext)
        )
        assert.strictEqual(
          noSign._tag === "Pkcs11Error" ? noSign.returnValue : noSign._tag,
          "CKR_KEY_FUNCTION_NOT_PERMITTED"
        )
      }).pipe(Effect.provide(emulator())))

    it.scoped("refuses read-only attributes and private objects without a login", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const handle = yield* session({ login: false })
        const readOnly = yield* Effect.flip(
          pkcs11.createObject(handle, { class: CKO.DATA, private: false, local: true })
        )
        assert.strictEqual(
          readOnly._tag === "Pkcs11Error" ? readOnly.returnValue : readOnly._tag,
          "CKR_ATTRIBUTE_READ_ONLY"
        )
        const notLoggedIn = yield* Effect.flip(pkcs11.createObject(handle, { class: CKO.DATA, private: true }))
        assert.strictEqual(notLoggedIn._tag === "SessionFailed" ? notLoggedIn.reason : "", "not-logged-in")
        const publicData = yield* pkcs11.createObject(handle, { class: CKO.DATA, private: false, label: "public" })
        yield* pkcs11.setAttributes(handle, publicData, { label: "renamed" })
        assert.strictEqual((yield* pkcs11.getAttributes(handle, publicData, ["label"])).label, "renamed")
        yield* pkcs11.destroyObject(handle, publicData)
        assert.deepStrictEqual(yield* pkcs11.findObjects(handle, { label: "renamed" }), [])
      }).pipe(Effect.provide(emulator())))

    it.scoped("session objects die with their session; token objects stay", () =>
      Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const keeper = yield* session()
        const slot = yield* slotOf("emu")
        const short = yield* pkcs11.openSession(slot, { rw: true })
        yield* pkcs11.createObject(short, { class: CKO.DATA, label: "session", private: false })
        yield* pkcs11.createObject(short, { class: CKO.DATA, label: "token", private: false, token: true })
        assert.strictEqual((yield* pkcs11.findObjects(keeper, { class: CKO.DATA })).length, 2)
        yield* pkcs11.closeSession(short)
        const left = yield* pkcs11.findObjects(keeper, { class: CKO.DATA })
        assert.strictEqual(left.length, 1)
        assert.strictEqual((yield* pkcs11.getAttributes(keeper, left[0], ["label"])).label, "token")
      }).pipe(Effect.provide(emulator())))
  })

  it.scoped("re-initializing a token needs its SO PIN and destroys its objects", () =>
    Effect.gen(function*() {
      const pkcs11 = yield* Pkcs11.Pkcs11
      const slot = yield* slotOf("emu")
      const handle = yield* pkcs11.openSession(slot, { rw: true })
      yield* pkcs11.login(handle, userPin)
      yield* pkcs11.createObject(handle, { class: CKO.DATA, label: "doomed", token: true })
      const busy = yield* Effect.flip(pkcs11.initToken(slot, { soPin, label: "emu" }))
      assert.strictEqual(busy._tag, "SessionFailed")
      yield* pkcs11.closeSession(handle)
      const wrong = yield* Effect.flip(pkcs11.initToken(slot, { soPin: Redacted.make("not-so-pin"), label: "emu" }))
      assert.strictEqual(wrong._tag, "PinIncorrect")
      yield* pkcs11.initToken(slot, { soPin, label: "emu2" })
      const info = yield* pkcs11.tokenInfo(slot)
      assert.strictEqual(info.label, "emu2")
      assert.isFalse(info.userPinInitialized)
      const after = yield* pkcs11.openSession(slot)
      assert.deepStrictEqual(yield* pkcs11.findObjects(after, {}), [])
    }).pipe(Effect.provide(emulator())))

  it.effect("two layers are two emulators with distinct module ids", () =>
    Effect.gen(function*() {
      const a = yield* Effect.provide(Pkcs11.Pkcs11, emulator())
      const b = yield* Effect.provide(Pkcs11.Pkcs11, emulator())
      assert.notStrictEqual(a.moduleId, b.moduleId)
      const shared = emulator()
      const both = yield* Effect.provide(
        Effect.all([Pkcs11.Pkcs11, Pkcs11.Pkcs11]),
        Layer.merge(shared, shared)
      )
      assert.strictEqual(both[0].moduleId, both[1].moduleId)
    }))
})
