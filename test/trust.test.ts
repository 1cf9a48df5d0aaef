/**
 * Trust on any token: the defects a second token (openCryptoki) and hostile input exposed, on every
 * backend that can stage them. Here the emulator behaves as openCryptoki does where hsmkey must cope (no
 * EC, handle numbers reused, CKA_VALUE_LEN 0 for created secrets, CKR_FUNCTION_FAILED for an OAEP block
 * that does not decrypt), so that each defect is also tested with no native token at all.
 */
import { assert, describe, layer } from "@effect/vitest"
import { NodePkcs11 } from "@hsmkey/node"
import { Constants, Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, Fiber, Option, Redacted, TestServices } from "effect"
import { type Algorithm, HsmJwk, HsmSecret, Jwe, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import { backends, emulatorControl, openCryptokiLike, TestToken } from "./support/backends.js"
import { runTs } from "./support/child.js"
import { offered } from "./support/matrix.js"
import { assertFailure, quickType, rawSession, typedFailure, unique, withPool } from "./support/pool.js"

const { CKO, CKR } = Constants

/**
 * The handle of a key's private object, as this process sees it now: found in a session of the test's own,
 * as handle numbers belong to the token and library, not to one session.
 */
const privateHandle = (key: Algorithm.SigningKey) =>
  Effect.scoped(Effect.gen(function*() {
    const raw = yield* rawSession()
    const handles = yield* raw.pkcs11.findObjects(raw.handle, {
      class: key.keyType === "oct" ? CKO.SECRET_KEY : CKO.PRIVATE_KEY,
      id: key.id
    })
    return handles[0]
  }))

/**
 * Destroys a key's objects behind hsmkey's back, the private one first (openCryptoki then hands its number
 * out first).
 */
const destroy = (key: Algorithm.SigningKey) =>
  Effect.scoped(Effect.gen(function*() {
    const raw = yield* rawSession({ rw: true })
    const objects = yield* raw.pkcs11.findObjects(raw.handle, { id: key.id })
    const classes = yield* Effect.forEach(objects, (o) => raw.pkcs11.getAttributes(raw.handle, o, ["class"]))
    const order = objects.map((object, i) => ({ object, private: classes[i].class !== CKO.PUBLIC_KEY }))
      .sort((a, b) => Number(b.private) - Number(a.private))
    for (const { object } of order) yield* raw.pkcs11.destroyObject(raw.handle, object)
  }))

const objectsLabelled = (label: string) =>
  Effect.scoped(Effect.flatMap(rawSession(), (raw) => raw.pkcs11.findObjects(raw.handle, { label })))

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** What a child process needs to reach the test token as another application would: library, token, PIN. */
const childEnv = (token: TestToken["Type"]) => ({
  ...token.env,
  HSM_MODULE: token.modulePath,
  HSM_TOKEN_SERIAL: token.serialNumber,
  HSM_PIN: Redacted.value(token.userPin)
})

for (const backend of backends("hsmkey-trust", { memory: openCryptokiLike })) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(withPool(backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)

      test("a destroyed key's handle, handed to the next key, never signs for it", {}, () =>
        Effect.gen(function*() {
          const token = yield* TestToken
          const type = yield* quickType
          const a = yield* HsmJwk.generate({ type, label: unique("a") })
          yield* Jws.verify(yield* Jws.sign("A signs, its handle is known", a), a)
          const handleOfA = yield* privateHandle(a)
          yield* destroy(a)
          const b = yield* HsmJwk.generate({ type, label: unique("b") })
          if (token.features.has("reuses-handles")) {
            assert.strictEqual(yield* privateHandle(b), handleOfA, "the token gave A's handle number to B")
          }
          const error = yield* typedFailure(Jws.sign("must not be signed by B", a))
          assert.strictEqual(error._tag, "KeyNotFound")
          assert.strictEqual(error._tag === "KeyNotFound" ? error.reason : "", "absent")
          yield* Jws.verify(yield* Jws.sign("B signs as itself", b), b)
        }))

      test(
        "keys used in turn are proven once, not searched for again at every signature",
        {},
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const inner = yield* Pkcs11.Pkcs11
            const counts = { find: 0, attributes: 0 }
            const counted: Pkcs11.Pkcs11.Service = {
              ...inner,
              findObjects: (session, template) =>
                Effect.suspend(() => (counts.find++, inner.findObjects(session, template))),
              getAttributes: (session, object, names) =>
                Effect.suspend(() => (counts.attributes++, inner.getAttributes(session, object, names)))
            }
            const pool = yield* Effect.provideService(
              SessionPool.make({ tokenSerial: token.serialNumber, userPin: token.userPin }),
              Pkcs11.Pkcs11,
              counted
            )
            const inPool = <X, E>(effect: Effect.Effect<X, E, SessionPool.SessionPool>) =>
              Effect.provideService(effect, SessionPool.SessionPool, pool)
            const type = yield* quickType
            const keys = yield* Effect.forEach(
              ["first", "second"],
              (label) => inPool(HsmJwk.generate({ type, label: unique(label) }))
            )
            // The second key's search moves the generation once: the first is proven again, once, by its attributes.
            for (const key of [...keys, ...keys]) yield* inPool(Jws.sign("each key in turn", key))
            const before = { ...counts }
            for (let i = 0; i < 20; i++) {
              const key = keys[i % 2]
              yield* Jws.verify(yield* inPool(Jws.sign(`turn ${i}`, key)), key)
            }
            assert.deepStrictEqual(
              { find: counts.find - before.find, attributes: counts.attributes - before.attributes },
              { find: 0, attributes: 0 }
            )
          }).pipe(Effect.scoped)
      )

      test(
        "a key replaced under its own CKA_ID and label is not signed with: KeyNotFound(changed)",
        {},
        () =>
          Effect.gen(function*() {
            const type = yield* quickType
            const label = unique("replaced")
            const id = Crypto.randomBytes(8).toString("hex")
            const a = yield* HsmJwk.generate({ type, label, id })
            yield* Jws.sign("A signs", a)
            yield* destroy(a)
            const b = yield* HsmJwk.generate({ type, label, id })
            assert.notStrictEqual(b.kid, a.kid)
            const error = yield* typedFailure(Jws.sign("must not be signed by B", a))
            assert.strictEqual(error._tag === "KeyNotFound" ? error.reason : error._tag, "changed")
            assert.include(error.message, "nothing was signed")
            yield* Jws.verify(yield* Jws.sign("B signs as itself", b), b)
          })
      )

      test(
        "a key destroyed and replaced by another process is not signed with",
        { features: ["native"] },
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const type = yield* quickType
            const a = yield* HsmJwk.generate({ type, label: unique("other-process") })
            yield* Jws.sign("A signs, its handle is known", a)
            const handleOfA = yield* privateHandle(a)
            const label = unique("from-elsewhere")
            const child = yield* runTs("test/fixtures/replace-key.ts", {
              ...childEnv(token),
              DESTROY_ID: Buffer.from(a.id).toString("hex"),
              NEW_LABEL: label,
              NEW_TYPE: type
            })
            assert.strictEqual(child.code, 0, child.stderr)
            // Right away, before this process searches for anything: A's handle is gone.
            assert.strictEqual((yield* typedFailure(Jws.sign("must not be signed", a)))._tag, "KeyNotFound")
            // This process finds the other one's key: openCryptoki hands it A's old handle number here.
            const b = yield* HsmJwk.fromHsm({ label })
            assert.strictEqual(b.kid, child.stdout.trim())
            if (token.features.has("reuses-handles")) assert.strictEqual(yield* privateHandle(b), handleOfA)
            const error = yield* typedFailure(Jws.sign("must not be signed by B", a))
            assert.strictEqual(error._tag, "KeyNotFound")
          })
      )

      test(
        "closing the library's scope under a pool signing RSA-4096 crashes nothing: a clean exit, typed failures only",
        { features: ["native"], generate: ["RSA-4096"], sign: ["PS256"] },
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            // Twice: the crash it replaces happened in 5 runs of 5.
            for (let run = 0; run < 2; run++) {
              const child = yield* runTs("test/fixtures/close-under-load.ts", {
                ...childEnv(token)
              })
              assert.strictEqual(child.signal, null, `killed by ${child.signal}: ${child.stderr}`)
              assert.strictEqual(child.code, 0, child.stderr)
              const report = JSON.parse(child.stdout.trim().split("\n").at(-1)!)
              assert.deepStrictEqual(report.defects, [])
              assert.isAbove(report.signedBeforeClose, 0)
              // The pool holds the library: closing the scope that loaded it finalized nothing under it.
              assert.isTrue(report.loadedAfterModuleClose)
              assert.isAbove(report.signed, report.signedBeforeClose, "signing went on after that scope closed")
              assert.deepStrictEqual(report.failures, {})
              assert.isTrue(report.poolClosed)
              assert.isFalse(report.loadedAfterPoolClose, "finalized with its last holder")
              assert.match(report.afterRelease, /^Pkcs11Error:.*CKR_CRYPTOKI_NOT_INITIALIZED/)
            }
          })
      )

      test(
        "signing on several sessions while another process changes the key's objects crashes nothing",
        { features: ["native"] },
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const type = yield* quickType
            const key = yield* HsmJwk.generate({ type, label: unique("relabelled") })
            const child = yield* Effect.fork(runTs("test/fixtures/relabel-key.ts", {
              ...childEnv(token),
              KEY_ID: Buffer.from(key.id).toString("hex"),
              TIMES: "25"
            }))
            let signed = 0
            const failures: Array<string> = []
            while (child.unsafePoll() === null) {
              const batch = yield* Effect.either(
                Jws.signMany(Array.from({ length: 16 }, (_, i) => `while relabelled ${i}`), key, { concurrency: 4 })
              )
              if (batch._tag === "Left") failures.push(batch.left.message)
              else {
                for (const jws of batch.right) yield* Jws.verify(jws, key)
                signed += batch.right.length
              }
            }
            const relabelled = yield* Fiber.join(child)
            assert.strictEqual(relabelled.code, 0, relabelled.stderr)
            const status = yield* NodePkcs11.moduleStatus(token.modulePath!)
            assert.strictEqual(status.serialized, token.features.has("unsafe-in-parallel"))
            // Every signature made verified; a batch may fail while the other process rewrites the object
            // (openCryptoki answers CKR_FUNCTION_FAILED, SoftHSM2 may not find it for a moment), typed.
            assert.isAbove(signed / 16, failures.length, `most batches sign: ${failures.join(", ")}`)
          })
      )

      test(
        "after a logout, signing on several sessions with a key whose objects changed crashes nothing",
        {},
        () =>
          Effect.gen(function*() {
            const type = yield* quickType
            // generate sets the key's CKA_ID after the fact (C_SetAttributeValue): its objects changed.
            const key = yield* HsmJwk.generate({ type, label: unique("logout") })
            for (let round = 0; round < 10; round++) {
              // Behind the pool's back, on a session of the test's own: login belongs to the token.
              yield* Effect.scoped(Effect.flatMap(rawSession(), (raw) => raw.pkcs11.logout(raw.handle)))
              const many = yield* Jws.signMany(Array.from({ length: 24 }, (_, i) => `round ${round} ${i}`), key, {
                concurrency: 8
              })
              for (const jws of many) yield* Jws.verify(jws, key)
            }
          })
      )

      test(
        "a JWE for another key, or with a tampered encrypted key, fails as a bad tag does: DecryptionFailed",
        { decrypt: ["RSA-OAEP"] },
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("jwe"), use: "enc" })
            const stranger = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
            const forStranger = yield* Effect.promise(() =>
              new jose.CompactEncrypt(new TextEncoder().encode("not for this key"))
                .setProtectedHeader({ alg: "RSA-OAEP", enc: "A256GCM" })
                .encrypt(stranger.publicKey)
            )
            const ours = yield* Jwe.encrypt("for this key", key, { alg: "RSA-OAEP", enc: "A256GCM" })
            const parts = ours.split(".")
            const flipped = (index: number) => {
              const bytes = Buffer.from(parts[index], "base64url")
              bytes[bytes.length >> 1] ^= 1
              return parts.map((part, i) => (i === index ? bytes.toString("base64url") : part)).join(".")
            }
            const failures = new Set<string>()
            for (const jwe of [forStranger, flipped(1), flipped(4)]) {
              const error = yield* typedFailure(Jwe.decrypt(jwe, key))
              assert.strictEqual(error._tag, "DecryptionFailed", error.message)
              failures.add(`${error._tag}:${error.message}:${JSON.stringify(error)}`)
            }
            assert.strictEqual(failures.size, 1, "every failure looks the same")
            assert.strictEqual(text((yield* Jwe.decrypt(ours, key)).plaintext), "for this key")
          })
      )

      test(
        "a general JWE without kids goes on past a recipient the token cannot decrypt",
        { decrypt: ["RSA-OAEP"] },
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("party"), use: "enc" })
            const stranger = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
            const general = yield* Effect.promise(() =>
              new jose.GeneralEncrypt(new TextEncoder().encode("second recipient"))
                .setProtectedHeader({ enc: "A128GCM" })
                .addRecipient(stranger.publicKey)
                .setUnprotectedHeader({ alg: "RSA-OAEP" })
                .addRecipient(key.publicKey)
                .setUnprotectedHeader({ alg: "RSA-OAEP" })
                .encrypt()
            )
            assert.strictEqual(text((yield* Jwe.decrypt(general as Jwe.GeneralJwe, key)).plaintext), "second recipient")
          })
      )

      test(
        "of C_Decrypt's answers only a lost session, a removed token or a lost login keep their own error",
        { decrypt: ["RSA-OAEP"], features: ["control"] },
        () =>
          Effect.gen(function*() {
            const control = yield* emulatorControl
            const token = yield* TestToken
            const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("codes"), use: "enc" })
            const jwe = yield* Jwe.encrypt("fine", key, { alg: "RSA-OAEP", enc: "A128GCM" })
            const cases: ReadonlyArray<readonly [number, string]> = [
              [CKR.FUNCTION_FAILED, "DecryptionFailed"],
              [CKR.GENERAL_ERROR, "DecryptionFailed"],
              [CKR.DEVICE_ERROR, "DecryptionFailed"],
              [CKR.ENCRYPTED_DATA_INVALID, "DecryptionFailed"],
              [CKR.ENCRYPTED_DATA_LEN_RANGE, "DecryptionFailed"],
              [CKR.DATA_INVALID, "DecryptionFailed"],
              [CKR.DATA_LEN_RANGE, "DecryptionFailed"],
              [CKR.ARGUMENTS_BAD, "DecryptionFailed"],
              [CKR.KEY_SIZE_RANGE, "DecryptionFailed"],
              [CKR.SESSION_HANDLE_INVALID, "SessionFailed"],
              [CKR.SESSION_CLOSED, "SessionFailed"],
              [CKR.USER_NOT_LOGGED_IN, "SessionFailed"],
              [CKR.DEVICE_REMOVED, "TokenNotPresent"]
            ]
            for (const [code, tag] of cases) {
              yield* control.failNext({ method: "C_Decrypt", code, token: token.label })
              const error = yield* typedFailure(Jwe.decrypt(jwe, key))
              assert.strictEqual(error._tag, tag, `${Constants.returnValueName(code)}: ${error.message}`)
              // The pool heals: the next decryption works.
              assert.strictEqual(text((yield* Jwe.decrypt(jwe, key)).plaintext), "fine")
            }
          })
      )

      test(
        "a token without EC refuses EC and Edwards keys before creating anything: MechanismUnsupported",
        { lacksGenerate: ["P-256", "Ed25519"] },
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const labels = { generated: unique("no-ec"), imported: unique("no-ec-in"), edwards: unique("no-ed-in") }
            const generated = yield* typedFailure(
              HsmJwk.generate({ type: "P-256", label: labels.generated })
            )
            assertFailure(generated, {
              _tag: "MechanismUnsupported",
              operation: "generate",
              keyType: "P-256",
              token: token.label
            })
            assert.include(generated.message, "CKM_EC_KEY_PAIR_GEN")
            const ec = Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" })
            const imported = yield* typedFailure(
              HsmJwk.importPrivate({ key: ec.privateKey, label: labels.imported })
            )
            assertFailure(imported, { _tag: "MechanismUnsupported", operation: "import", keyType: "P-256" })
            assert.deepStrictEqual(
              imported._tag === "MechanismUnsupported" ? imported.mechanisms : [],
              ["CKM_ECDSA", "CKM_ECDSA_SHA256"]
            )
            const ed = Crypto.generateKeyPairSync("ed25519")
            const edwards = yield* typedFailure(
              HsmJwk.importPrivate({ key: ed.privateKey, label: labels.edwards })
            )
            assertFailure(edwards, { _tag: "MechanismUnsupported", operation: "import", keyType: "Ed25519" })
            assert.deepStrictEqual(edwards._tag === "MechanismUnsupported" ? edwards.mechanisms : [], ["CKM_EDDSA"])
            for (const label of Object.values(labels)) assert.deepStrictEqual(yield* objectsLabelled(label), [])
          })
      )

      test(
        "an interrupted RSA-4096 generation leaves nothing behind, and a retry succeeds",
        { generate: ["RSA-4096"] },
        () =>
          Effect.gen(function*() {
            const label = unique("interrupted")
            const generate = HsmJwk.generate({ type: "RSA-4096", label })
            // A real 5 ms, not the test's clock.
            const outcome = yield* TestServices.provideLive(Effect.timeoutOption(generate, "5 millis"))
            assert.isTrue(Option.isNone(outcome), "RSA-4096 generation takes longer than 5 ms")
            assert.deepStrictEqual(yield* objectsLabelled(label), [])
            const key = yield* generate
            assert.strictEqual(key.bits, 4096)
            yield* Jws.verify(yield* Jws.sign("after a retry", key), key)
          })
      )

      test(
        "a creation that fails after making its objects destroys them again",
        { features: ["control"], secrets: true },
        () =>
          Effect.gen(function*() {
            const control = yield* emulatorControl
            const token = yield* TestToken
            const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
            const creations: ReadonlyArray<
              readonly [string, (label: string) => Effect.Effect<unknown, unknown, SessionPool.SessionPool>]
            > = [
              ["generate", (label) => HsmJwk.generate({ type: "RSA-2048", label })],
              ["importPrivate", (label) => HsmJwk.importPrivate({ key: rsa.privateKey, label })],
              ["generateSecret", (label) => HsmSecret.generate({ alg: "HS256", label })],
              [
                "importSecret",
                (label) => HsmSecret.importSecret({ alg: "HS256", key: Crypto.randomBytes(32), label })
              ]
            ]
            for (const [name, create] of creations) {
              const label = unique(name)
              // The read-back after creation fails: what was made goes again.
              yield* control.failNext({ method: "C_GetAttributeValue", code: CKR.DEVICE_ERROR, token: token.label })
              const error = yield* Effect.flip(create(label))
              assert.strictEqual((error as { _tag: string })._tag, "Pkcs11Error", name)
              assert.deepStrictEqual(yield* objectsLabelled(label), [], name)
              yield* create(label)
            }
          })
      )

      test(
        "a secret imported where CKA_VALUE_LEN reads 0 signs, and loads back",
        { sign: ["HS256"], features: ["zero-secret-length"] },
        () =>
          Effect.gen(function*() {
            const secret = Crypto.randomBytes(32)
            const key = yield* HsmSecret.importSecret({ alg: "HS256", key: secret, label: unique("len0") })
            assert.strictEqual(key.bits, 256)
            const raw = yield* Effect.scoped(Effect.gen(function*() {
              const raw = yield* rawSession()
              const [handle] = yield* raw.pkcs11.findObjects(raw.handle, { class: CKO.SECRET_KEY, id: key.id })
              return yield* raw.pkcs11.getAttributes(raw.handle, handle, ["valueLen"])
            }))
            assert.strictEqual(raw.valueLen, 0, "the token reads the length back as 0")
            const jws = yield* Jws.sign("HS256 in the token", key)
            yield* Effect.promise(() => jose.compactVerify(jws, secret))
            const loaded = yield* HsmSecret.fromHsm({ id: key.id, alg: "HS256" })
            const again = yield* Jws.sign("loaded", loaded)
            yield* Effect.promise(() => jose.compactVerify(again, secret))
            yield* Jws.verify(again, key)
          })
      )
    })
  })
}
