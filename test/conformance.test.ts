/**
 * One behavioural suite for the Cryptoki boundary, run unchanged against the in-memory emulator, a
 * throwaway SoftHSM2 token and openCryptoki's software token: what passes on one must pass on the others.
 * A test that needs what a token lacks (openCryptoki has no EC) says so in the backend matrix.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Constants, Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Redacted } from "effect"
import * as Crypto from "node:crypto"
import { backends, generateKeyPair, publicKeyObject, TestToken, tokenSlot, userSession } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { mechanismsOf, quickCase, signatureCases, toBeSigned } from "./support/signatures.js"

const { CKK, CKM, CKO } = Constants

const message = new TextEncoder().encode("hsmkey conformance: the same bytes on every backend")

for (const backend of backends("hsmkey-conformance")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(backend.layer, { timeout: 600_000 })((it) => {
      const test = offered(it)
      /** The cheapest signing key type of the token, and how it signs. */
      const quick = Effect.map(TestToken, (token) => quickCase(token.capabilities.mechanisms))

      test("finds the token by label and by serial number", {}, () =>
        Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const token = yield* TestToken
          const infos = yield* Effect.forEach(yield* pkcs11.slots(), (slot) => pkcs11.tokenInfo(slot))
          const byLabel = infos.filter((info) => info.label === token.label)
          const bySerial = infos.filter((info) => info.serialNumber === token.serialNumber)
          assert.strictEqual(byLabel.length, 1)
          assert.strictEqual(bySerial.length, 1)
          assert.strictEqual(byLabel[0].slotId, bySerial[0].slotId)
          assert.isTrue(byLabel[0].initialized)
          assert.isTrue(byLabel[0].userPinInitialized)
          assert.isTrue(byLabel[0].loginRequired)
        }))

      test(
        "shares one module: a second service sees the first one's sessions and login",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const token = yield* TestToken
            const other = yield* token.reopen
            assert.strictEqual(other.moduleId, pkcs11.moduleId)
            const session = yield* userSession()
            const seen = yield* other.sessionInfo(session)
            assert.strictEqual(seen.state, "rw-user")
            const second = yield* Effect.acquireRelease(
              other.openSession(yield* tokenSlot),
              (s) => Effect.ignore(other.closeSession(s))
            )
            assert.strictEqual(yield* other.login(second, token.userPin), "already-logged-in")
          }))
      )

      test(
        "login belongs to the token: a second login is already-logged-in, logout ends every session's",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const token = yield* TestToken
            const slot = yield* tokenSlot
            const open = (rw: boolean) =>
              Effect.acquireRelease(pkcs11.openSession(slot, { rw }), (s) => Effect.ignore(pkcs11.closeSession(s)))
            const first = yield* open(true)
            const second = yield* open(false)
            assert.strictEqual((yield* pkcs11.sessionInfo(second)).state, "ro-public")
            assert.strictEqual(yield* pkcs11.login(first, token.userPin), "logged-in")
            assert.strictEqual(yield* pkcs11.login(second, token.userPin), "already-logged-in")
            assert.strictEqual((yield* pkcs11.sessionInfo(first)).state, "rw-user")
            assert.strictEqual((yield* pkcs11.sessionInfo(second)).state, "ro-user")
            yield* pkcs11.logout(second)
            assert.strictEqual((yield* pkcs11.sessionInfo(first)).state, "rw-public")
            assert.strictEqual((yield* pkcs11.sessionInfo(second)).state, "ro-public")
          }))
      )

      test("closing the last session logs the token out", {}, () =>
        Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const token = yield* TestToken
          const slot = yield* tokenSlot
          const session = yield* pkcs11.openSession(slot)
          yield* pkcs11.login(session, token.userPin)
          yield* pkcs11.closeSession(session)
          const next = yield* pkcs11.openSession(slot)
          assert.strictEqual((yield* pkcs11.sessionInfo(next)).state, "ro-public")
          yield* pkcs11.closeSession(next)
        }))

      test(
        "private handles die at logout; after a re-login the key is found again and signs",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const token = yield* TestToken
            const c = yield* quick
            const slot = yield* tokenSlot
            const keeper = yield* Effect.acquireRelease(
              pkcs11.openSession(slot, { rw: true }),
              (s) => Effect.ignore(pkcs11.closeSession(s))
            )
            yield* pkcs11.login(keeper, token.userPin)
            const id = Crypto.randomBytes(8)
            const pair = yield* Effect.acquireRelease(
              generateKeyPair(keeper, c.keyType, { label: "handles", id, token: true }),
              (pair) =>
                Effect.ignore(Effect.zipRight(
                  pkcs11.destroyObject(keeper, pair.publicKey),
                  Effect.flatMap(
                    pkcs11.findObjects(keeper, { class: CKO.PRIVATE_KEY, id }),
                    Effect.forEach((handle) => pkcs11.destroyObject(keeper, handle))
                  )
                ))
            )
            const hash = toBeSigned(c, message)
            yield* pkcs11.sign(keeper, c.mechanism, pair.privateKey, hash)
            yield* pkcs11.logout(keeper)
            const stale = yield* Effect.flip(pkcs11.sign(keeper, c.mechanism, pair.privateKey, hash))
            assert.strictEqual(stale._tag, "ObjectHandleInvalid")
            assert.deepStrictEqual(yield* pkcs11.findObjects(keeper, { class: CKO.PRIVATE_KEY, id }), [])
            yield* pkcs11.login(keeper, token.userPin)
            const [again] = yield* pkcs11.findObjects(keeper, { class: CKO.PRIVATE_KEY, id })
            assert.isDefined(again)
            const signature = yield* pkcs11.sign(keeper, c.mechanism, again, hash)
            const publicKey = yield* publicKeyObject(keeper, pair.publicKey)
            assert.isTrue(c.verify(publicKey, message, signature))
          }))
      )

      test(
        "logout destroys private session objects and keeps public ones",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const token = yield* TestToken
            const session = yield* userSession()
            const id = Crypto.randomBytes(8)
            const pair = yield* generateKeyPair(session, (yield* quick).keyType, { id })
            yield* pkcs11.logout(session)
            yield* pkcs11.login(session, token.userPin)
            const found = yield* pkcs11.findObjects(session, { id })
            assert.strictEqual(found.length, 1)
            const read = yield* pkcs11.getAttributes(session, found[0], ["class"])
            assert.strictEqual(read.class, CKO.PUBLIC_KEY)
            assert.strictEqual(found[0], pair.publicKey)
          }))
      )

      test("a wrong PIN is PinIncorrect and its message holds no PIN", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const token = yield* TestToken
          const slot = yield* tokenSlot
          const session = yield* Effect.acquireRelease(pkcs11.openSession(slot), (s) =>
            Effect.ignore(pkcs11.closeSession(s)))
          const wrong = "wrong-pin-7d1f0c"
          const error = yield* Effect.flip(pkcs11.login(session, Redacted.make(wrong)))
          assert.strictEqual(error._tag, "PinIncorrect")
          assert.strictEqual(error._tag === "PinIncorrect" ? error.token : undefined, token.label)
          for (const text of [error.message, JSON.stringify(error), String(error)]) {
            assert.notInclude(text, wrong)
            assert.notInclude(text, Redacted.value(token.userPin))
          }
          assert.strictEqual((yield* pkcs11.sessionInfo(session)).state, "ro-public")
          // Tokens such as openCryptoki count wrong PINs across logins: the right one resets the count.
          yield* pkcs11.login(session, token.userPin)
          yield* pkcs11.logout(session)
        })))

      for (const c of signatureCases) {
        test(
          `generates ${c.keyType} and signs ${c.alg} with ${
            Constants.mechanismName(c.mechanism.type)
          }; node:crypto verifies`,
          { mechanisms: mechanismsOf(c) },
          () =>
            Effect.scoped(Effect.gen(function*() {
              const pkcs11 = yield* Pkcs11.Pkcs11
              const session = yield* userSession()
              const pair = yield* generateKeyPair(session, c.keyType)
              const publicKey = yield* publicKeyObject(session, pair.publicKey)
              const signature = yield* pkcs11.sign(session, c.mechanism, pair.privateKey, toBeSigned(c, message))
              if (c.signatureLength !== undefined) assert.strictEqual(signature.length, c.signatureLength, c.alg)
              assert.isTrue(c.verify(publicKey, message, signature), `${c.alg} verifies`)
              assert.isFalse(c.verify(publicKey, new TextEncoder().encode("other"), signature), `${c.alg} binds`)
              assert.isTrue(
                yield* pkcs11.verify(session, c.mechanism, pair.publicKey, toBeSigned(c, message), signature),
                `${c.alg} verifies in the token`
              )
              const tampered = Uint8Array.from(signature)
              tampered[tampered.length - 1] ^= 1
              assert.isFalse(
                yield* pkcs11.verify(session, c.mechanism, pair.publicKey, toBeSigned(c, message), tampered)
              )
            }))
        )
      }

      test(
        "generated RSA private keys are sensitive: their secret values are never read back",
        { mechanisms: [CKM.RSA_PKCS_KEY_PAIR_GEN] },
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const session = yield* userSession()
            const rsa = yield* generateKeyPair(session, "RSA-2048")
            const rsaRead = yield* pkcs11.getAttributes(session, rsa.privateKey, [
              "class",
              "keyType",
              "sensitive",
              "extractable",
              "privateExponent",
              "prime1",
              "modulus"
            ])
            assert.strictEqual(rsaRead.class, CKO.PRIVATE_KEY)
            assert.strictEqual(rsaRead.keyType, CKK.RSA)
            assert.isTrue(rsaRead.sensitive)
            assert.isFalse(rsaRead.extractable)
            assert.isUndefined(rsaRead.privateExponent)
            assert.isUndefined(rsaRead.prime1)
            assert.strictEqual(rsaRead.modulus?.length, 256)
          }))
      )

      test(
        "generated EC private keys are sensitive: their secret value is never read back",
        { mechanisms: [CKM.EC_KEY_PAIR_GEN] },
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const session = yield* userSession()
            const ec = yield* generateKeyPair(session, "P-256")
            const ecRead = yield* pkcs11.getAttributes(session, ec.privateKey, [
              "keyType",
              "value",
              "ecParams",
              "label"
            ])
            assert.strictEqual(ecRead.keyType, CKK.EC)
            assert.isUndefined(ecRead.value)
            assert.strictEqual(ecRead.label, "P-256")
          }))
      )

      test("finds objects by label, by CKA_ID, and by both", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const session = yield* userSession()
          const label = `search-${Crypto.randomBytes(4).toString("hex")}`
          const idA = Crypto.randomBytes(8)
          const idB = Crypto.randomBytes(8)
          const type = (yield* quick).keyType
          const a = yield* generateKeyPair(session, type, { label, id: idA })
          const b = yield* generateKeyPair(session, type, { label, id: idB })
          const sorted = (handles: ReadonlyArray<number>) => [...handles].sort((x, y) => x - y)
          assert.deepStrictEqual(
            sorted(yield* pkcs11.findObjects(session, { label, class: CKO.PRIVATE_KEY })),
            sorted([a.privateKey, b.privateKey])
          )
          assert.deepStrictEqual(
            sorted(yield* pkcs11.findObjects(session, { id: idA })),
            sorted([a.privateKey, a.publicKey])
          )
          assert.deepStrictEqual(yield* pkcs11.findObjects(session, { label, id: idB, class: CKO.PUBLIC_KEY }), [
            b.publicKey
          ])
          assert.deepStrictEqual(yield* pkcs11.findObjects(session, { label, id: Crypto.randomBytes(8) }), [])
          assert.deepStrictEqual(yield* pkcs11.findObjects(session, { label: `${label}-missing` }), [])
        })))

      test("maps return values to typed errors", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          const pkcs11 = yield* Pkcs11.Pkcs11
          const session = yield* userSession()
          const c = yield* quick
          const pair = yield* generateKeyPair(session, c.keyType)
          const hash = toBeSigned(c, message)

          const mechanism = yield* Effect.flip(pkcs11.sign(session, { type: 0x7fff_0001 }, pair.privateKey, hash))
          assert.strictEqual(mechanism._tag, "MechanismInvalid")

          // A public key has no CKA_SIGN.
          const usage = yield* Effect.flip(pkcs11.sign(session, c.mechanism, pair.publicKey, hash))
          assert.strictEqual(usage._tag, "Pkcs11Error")
          assert.strictEqual(usage._tag === "Pkcs11Error" ? usage.returnValue : "", "CKR_KEY_FUNCTION_NOT_PERMITTED")
          assert.strictEqual(usage._tag === "Pkcs11Error" ? usage.method : "", "C_SignInit")

          const slot = yield* tokenSlot
          const readOnly = yield* Effect.acquireRelease(pkcs11.openSession(slot), (s) =>
            Effect.ignore(pkcs11.closeSession(s)))
          const write = yield* Effect.flip(
            pkcs11.createObject(readOnly, { class: CKO.DATA, token: true, private: false, label: "ro" })
          )
          assert.strictEqual(write._tag, "SessionFailed")
          assert.strictEqual(write._tag === "SessionFailed" ? write.reason : "", "read-only")

          const closed = yield* pkcs11.openSession(slot)
          yield* pkcs11.closeSession(closed)
          const gone = yield* Effect.flip(pkcs11.sessionInfo(closed))
          assert.strictEqual(gone._tag, "SessionFailed")
          assert.strictEqual(gone._tag === "SessionFailed" ? gone.reason : "", "closed")

          const noSlot = yield* Effect.flip(pkcs11.tokenInfo(0x7fff_fff0 as Pkcs11.SlotId))
          assert.strictEqual(noSlot._tag, "TokenNotPresent")

          // Empty input is refused before any operation starts: the session stays usable.
          const empty = yield* Effect.flip(pkcs11.sign(session, c.mechanism, pair.privateKey, new Uint8Array(0)))
          assert.strictEqual(empty._tag === "Pkcs11Error" ? empty.returnValue : empty._tag, "CKR_ARGUMENTS_BAD")
          yield* pkcs11.sign(session, c.mechanism, pair.privateKey, hash)

          const stale = yield* Effect.flip(
            pkcs11.sign(session, c.mechanism, 0x7fff_fff0 as Pkcs11.ObjectHandle, hash)
          )
          assert.strictEqual(stale._tag, "ObjectHandleInvalid")
        })))

      test(
        "initializes a token and its user PIN through PKCS#11 alone",
        { features: ["free-slot"] },
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const slots = yield* pkcs11.slots()
            const infos = yield* Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot))
            const free = infos.find((info) => !info.initialized)
            assert.isDefined(free)
            const label = `init-${Crypto.randomBytes(4).toString("hex")}`
            const soPin = Redacted.make("fresh-so-pin")
            const userPin = Redacted.make("fresh-user-pin")
            yield* pkcs11.initToken(free!.slotId, { soPin, label })
            const open = Effect.acquireRelease(
              pkcs11.openSession(free!.slotId, { rw: true }),
              (s) => Effect.ignore(pkcs11.closeSession(s))
            )
            const session = yield* open
            assert.strictEqual(yield* pkcs11.login(session, soPin, "so"), "logged-in")
            assert.strictEqual((yield* pkcs11.sessionInfo(session)).state, "rw-so")
            yield* pkcs11.initPin(session, userPin)
            yield* pkcs11.logout(session)
            assert.strictEqual(yield* pkcs11.login(session, userPin), "logged-in")
            const info = yield* pkcs11.tokenInfo(free!.slotId)
            assert.strictEqual(info.label, label)
            assert.isTrue(info.userPinInitialized)
            const tooLong = yield* Effect.flip(pkcs11.initToken(free!.slotId, { soPin, label: "x".repeat(33) }))
            assert.strictEqual(tooLong._tag, "Pkcs11Error")
          }))
      )

      test(
        "signs 2,000 times concurrently over 4 sessions on the threadpool; every signature verifies",
        {},
        () =>
          Effect.scoped(Effect.gen(function*() {
            const pkcs11 = yield* Pkcs11.Pkcs11
            const token = yield* TestToken
            const sessions = yield* Effect.all(Array.from({ length: 4 }, () => userSession()))
            // Every kind of key the token signs with, among ES256, EdDSA and RSA.
            const kinds = ["ES256", "EdDSA", "PS256"].map((alg) => signatureCases.find((c) => c.alg === alg)!)
              .filter((c) =>
                mechanismsOf(c).every((m) => token.capabilities.mechanisms.includes(Constants.mechanismName(m)))
              )
            assert.isAbove(kinds.length, 0)
            const keys = yield* Effect.forEach(
              kinds,
              (c) =>
                Effect.gen(function*() {
                  const pair = yield* generateKeyPair(sessions[0], c.keyType, {
                    token: true,
                    label: `load-${c.keyType}`
                  })
                  const publicKey = yield* publicKeyObject(sessions[0], pair.publicKey)
                  return { pair, publicKey, c }
                })
            )
            const results = yield* Effect.forEach(
              Array.from({ length: 2000 }, (_, i) => i),
              (i) => {
                const key = keys[i % keys.length]
                const data = new TextEncoder().encode(`message ${i}`)
                return Effect.map(
                  pkcs11.sign(
                    sessions[i % sessions.length],
                    key.c.mechanism,
                    key.pair.privateKey,
                    toBeSigned(key.c, data)
                  ),
                  (signature) => key.c.verify(key.publicKey, data, signature)
                )
              },
              { concurrency: "unbounded" }
            )
            assert.strictEqual(results.length, 2000)
            assert.strictEqual(results.filter((ok) => ok).length, 2000)
            for (const key of keys) {
              yield* pkcs11.destroyObject(sessions[0], key.pair.privateKey)
              yield* pkcs11.destroyObject(sessions[0], key.pair.publicKey)
            }
          }))
      )
    })
  })
}
