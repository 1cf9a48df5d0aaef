/**
 * HMAC with secrets held in the token, JWE decrypted with RSA keys held in the token, and Ed448: the
 * same tests on the emulator, SoftHSM2 and openCryptoki. Where tokens differ (SoftHSM2 2.6.1 has no
 * RSA-OAEP with SHA-256, openCryptoki no Ed448), the tests say what each must do.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Constants } from "@hsmkey/pkcs11"
import { Effect } from "effect"
import { HsmJwk, HsmSecret, Jwe, Jwks, Jws, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import { backends, TestToken } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { quickType, rawSession, typedFailure, unique, withPool } from "./support/pool.js"

const { CKO } = Constants

// RFC 7515 Appendix A.1: HMAC SHA-256, with its exact header and payload bytes.
const rfc7515 = {
  k: "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
  header: "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
  payload: "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}",
  jws: "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
}

// RFC 7516 Appendix A.1: RSAES-OAEP and AES GCM.
const rfc7516 = {
  jwk: {
    kty: "RSA",
    n: "oahUIoWw0K0usKNuOR6H4wkf4oBUXHTxRvgb48E-BVvxkeDNjbC4he8rUWcJoZmds2h7M70imEVhRU5djINXtqllXI4DFqcI1DgjT9LewND8MW2Krf3Spsk_ZkoFnilakGygTwpZ3uesH-PFABNIUYpOiN15dsQRkgr0vEhxN92i2asbOenSZeyaxziK72UwxrrKoExv6kc5twXTq4h-QChLOln0_mtUZwfsRaMStPs6mS6XrgxnxbWhojf663tuEQueGC-FCMfra36C9knDFGzKsNa7LZK2djYgyD3JR_MB_4NUJW_TqOQtwHYbxevoJArm-L5StowjzGy-_bq6Gw",
    e: "AQAB",
    d: "kLdtIj6GbDks_ApCSTYQtelcNttlKiOyPzMrXHeI-yk1F7-kpDxY4-WY5NWV5KntaEeXS1j82E375xxhWMHXyvjYecPT9fpwR_M9gV8n9Hrh2anTpTD93Dt62ypW3yDsJzBnTnrYu1iwWRgBKrEYY46qAZIrA2xAwnm2X7uGR1hghkqDp0Vqj3kbSCz1XyfCs6_LehBwtxHIyh8Ripy40p24moOAbgxVw3rxT_vlt3UVe4WO3JkJOzlpUf-KTVI2Ptgm-dARxTEtE-id-4OJr0h-K-VFs3VSndVTIznSxfyrj8ILL6MG_Uv8YAu7VILSB3lOW085-4qE3DzgrTjgyQ",
    p: "1r52Xk46c-LsfB5P442p7atdPUrxQSy4mti_tZI3Mgf2EuFVbUoDBvaRQ-SWxkbkmoEzL7JXroSBjSrK3YIQgYdMgyAEPTPjXv_hI2_1eTSPVZfzL0lffNn03IXqWF5MDFuoUYE0hzb2vhrlN_rKrbfDIwUbTrjjgieRbwC6Cl0",
    q: "wLb35x7hmQWZsWJmB_vle87ihgZ19S8lBEROLIsZG4ayZVe9Hi9gDVCOBmUDdaDYVTSNx_8Fyw1YYa9XGrGnDew00J28cRUoeBB_jKI1oma0Orv1T9aXIWxKwd4gvxFImOWr3QRL9KEBRzk2RatUBnmDZJTIAfwTs0g68UZHvtc",
    dp:
      "ZK-YwE7diUh0qR1tR7w8WHtolDx3MZ_OTowiFvgfeQ3SiresXjm9gZ5KLhMXvo-uz-KUJWDxS5pFQ_M0evdo1dKiRTjVw_x4NyqyXPM5nULPkcpU827rnpZzAJKpdhWAgqrXGKAECQH0Xt4taznjnd_zVpAmZZq60WPMBMfKcuE",
    dq:
      "Dq0gfgJ1DdFGXiLvQEZnuKEN0UUmsJBxkjydc3j4ZYdBiMRAy86x0vHCjywcMlYYg4yoC4YZa9hNVcsjqA3FeiL19rk8g6Qn29Tt0cj8qqyFpz9vNDBUfCAiJVeESOjJDZPYHdHY8v1b-o-Z2X5tvLx-TCekf7oxyeKDUqKWjis",
    qi:
      "VIMpMYbPf47dT1w_zDUXfPimsSegnMOA1zTaX7aGk_8urY6R8-ZW1FxU7AlWAyLWybqq6t16VFd7hQd0y6flUK4SlOydB61gwanOsXGOAOv82cHq0E3eL4HrtZkUuKvnPrMnsUUFlfUdybVzxyjz9JF_XyaY14ardLSjf4L_FNY"
  },
  jwe: "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ." +
    "OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg." +
    "48V1_ALb6US04U3b." +
    "5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A." +
    "XFBoMYUZodetZdvTiFvSkQ",
  plaintext: "The true sign of intelligence is not knowledge but imagination."
}

const encs: ReadonlyArray<Jwe.ContentEncryption> = [
  "A128GCM",
  "A192GCM",
  "A256GCM",
  "A128CBC-HS256",
  "A192CBC-HS384",
  "A256CBC-HS512"
]

for (const backend of backends("hsmkey-beyond")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(withPool(backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)
      test(
        "RFC 7515 A.1 (HS256) is reproduced byte for byte after importing its secret",
        { sign: ["HS256"] },
        () =>
          Effect.gen(function*() {
            const key = yield* HsmSecret.importSecret({
              alg: "HS256",
              key: { kty: "oct", k: rfc7515.k },
              label: unique("rfc7515")
            })
            const jws = yield* Jws.signEncoded(rfc7515.header, rfc7515.payload, key)
            assert.strictEqual(jws, rfc7515.jws)
            const verified = yield* Jws.verify(rfc7515.jws, key)
            assert.strictEqual(new TextDecoder().decode(verified.payload), rfc7515.payload)
          })
      )

      for (const alg of ["HS256", "HS384", "HS512"] as const) {
        test(`${alg} signs in the token; jose verifies with the secret, the token verifies alone`, {
          sign: [alg],
          secrets: true
        }, () =>
          Effect.gen(function*() {
            {
              const secret = Crypto.randomBytes(Number(alg.slice(2)) / 8)
              const imported = yield* HsmSecret.importSecret({ alg, key: secret, label: unique(alg) })
              const jws = yield* Jws.sign(`payload ${alg}`, imported)
              const verified = yield* Effect.promise(() => jose.compactVerify(jws, secret))
              assert.strictEqual(verified.protectedHeader.alg, alg)
              assert.strictEqual(verified.protectedHeader.kid, imported.kid)
              assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(jws, imported)).payload), `payload ${alg}`)

              const jwt = yield* Jwt.sign({ sub: "hmac" }, imported, { expiresIn: "1 hour" })
              assert.strictEqual(jose.decodeJwt(jwt).sub, "hmac")
              yield* Effect.promise(() => jose.jwtVerify(jwt, secret, { currentDate: new Date(0) }))

              const generated = yield* HsmSecret.generate({ alg, label: unique(`gen-${alg}`) })
              assert.strictEqual(generated.bits, Number(alg.slice(2)))
              const flattened = yield* Jws.signFlattened("generated", generated)
              yield* Jws.verify(flattened, generated)
              const loaded = yield* HsmSecret.fromHsm({ id: generated.id, alg })
              yield* Jws.verify(yield* Jws.sign("loaded", loaded), generated)

              const [h, p, sig] = jws.split(".")
              const bytes = Buffer.from(sig, "base64url")
              bytes[3] ^= 0x40
              const tampered = yield* typedFailure(Jws.verify(`${h}.${p}.${bytes.toString("base64url")}`, imported))
              assert.strictEqual(tampered._tag, "VerificationFailed")
              const otherPayload = Buffer.from("{\"forged\":true}").toString("base64url")
              const forged = yield* typedFailure(Jws.verify(`${h}.${otherPayload}.${sig}`, imported))
              assert.strictEqual(forged._tag, "VerificationFailed")
            }
          }))
      }

      test("secrets stay in the token: sensitive, unextractable, never in a JWKS or JSON", {
        sign: ["HS256", "HS512"],
        secrets: true
      }, () =>
        Effect.gen(function*() {
          const key = yield* HsmSecret.generate({ alg: "HS512", label: unique("hidden") })
          const attributes = yield* Effect.scoped(Effect.gen(function*() {
            const session = yield* rawSession()
            const [handle] = yield* session.pkcs11.findObjects(session.handle, { class: CKO.SECRET_KEY, id: key.id })
            return yield* session.pkcs11.getAttributes(session.handle, handle, [
              "sensitive",
              "extractable",
              "value",
              "sign",
              "decrypt"
            ])
          }))
          assert.deepStrictEqual(attributes, { sensitive: true, extractable: false, sign: true, decrypt: false })
          assert.deepStrictEqual(JSON.parse(JSON.stringify(key)), {
            kty: "oct",
            kid: key.kid,
            alg: "HS512",
            use: "sig"
          })
          const jwks = yield* Jwks.fromToken()
          assert.isTrue(jwks.keys.every((jwk) => (jwk as { kty: string }).kty !== "oct" && jwk.kid !== key.kid))
          const short = yield* typedFailure(
            HsmSecret.importSecret({ alg: "HS256", key: Crypto.randomBytes(31), label: unique("short") })
          )
          assert.strictEqual(short._tag, "InvalidKeyMaterial")
          const weak = yield* HsmSecret.importSecret({
            alg: "HS256",
            key: Crypto.randomBytes(32),
            label: unique("weak")
          })
          const mismatch = yield* typedFailure(Jws.sign("x", weak, { alg: "HS512" }))
          assert.strictEqual(mismatch._tag, "AlgorithmMismatch")
        }))

      for (const alg of ["RSA-OAEP", "RSA-OAEP-256"] as const) {
        test(
          `${alg} JWEs made by jose decrypt in every content encryption, compact and flattened`,
          { decrypt: [alg] },
          () =>
            Effect.gen(function*() {
              const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("jwe"), use: "enc" })
              assert.strictEqual(key.use, "enc")
              assert.strictEqual(key.publicJwk.use, "enc")
              {
                for (const enc of encs) {
                  const plaintext = `${alg} ${enc} ${Crypto.randomBytes(8).toString("hex")}`
                  const compact = yield* Effect.promise(() =>
                    new jose.CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({ alg, enc })
                      .encrypt(
                        key.publicKey
                      )
                  )
                  const flattened = yield* Effect.promise(() =>
                    new jose.FlattenedEncrypt(new TextEncoder().encode(plaintext))
                      .setProtectedHeader({ enc })
                      .setUnprotectedHeader({ alg })
                      .setAdditionalAuthenticatedData(new TextEncoder().encode("aad"))
                      .encrypt(key.publicKey)
                  )
                  const fromCompact = yield* Jwe.decrypt(compact, key)
                  assert.strictEqual(new TextDecoder().decode(fromCompact.plaintext), plaintext, `${alg} ${enc}`)
                  const fromFlattened = yield* Jwe.decrypt(flattened as Jwe.FlattenedJwe, key)
                  assert.strictEqual(new TextDecoder().decode(fromFlattened.plaintext), plaintext)
                  assert.strictEqual(new TextDecoder().decode(fromFlattened.additionalAuthenticatedData), "aad")
                }
              }
              const roundTrip = yield* Jwe.encrypt("round trip", key, { alg, enc: "A256GCM" })
              assert.strictEqual(new TextDecoder().decode((yield* Jwe.decrypt(roundTrip, key)).plaintext), "round trip")
            })
        )
      }

      test(
        "a token that cannot decrypt RSA-OAEP-256 says so before any C_Decrypt: MechanismUnsupported",
        { decrypt: ["RSA-OAEP"], lacksDecrypt: ["RSA-OAEP-256"] },
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("oaep256"), use: "enc" })
            const compact = yield* Effect.promise(() =>
              new jose.CompactEncrypt(new TextEncoder().encode("x")).setProtectedHeader({
                alg: "RSA-OAEP-256",
                enc: "A128GCM"
              }).encrypt(key.publicKey)
            )
            const error = yield* typedFailure(Jwe.decrypt(compact, key))
            assert.strictEqual(error._tag, "MechanismUnsupported")
            assert.include(error.message, "SHA-256")
          })
      )

      test(
        "a general JWE goes past a recipient whose algorithm the token lacks to one it has",
        { decrypt: ["RSA-OAEP"], lacksDecrypt: ["RSA-OAEP-256"] },
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("both"), use: "enc" })
            const general = yield* Effect.promise(() =>
              new jose.GeneralEncrypt(new TextEncoder().encode("through the second"))
                .setProtectedHeader({ enc: "A128GCM" })
                .addRecipient(key.publicKey)
                .setUnprotectedHeader({ alg: "RSA-OAEP-256" })
                .addRecipient(key.publicKey)
                .setUnprotectedHeader({ alg: "RSA-OAEP" })
                .encrypt()
            )
            const decrypted = yield* Jwe.decrypt(general as Jwe.GeneralJwe, key)
            assert.strictEqual(new TextDecoder().decode(decrypted.plaintext), "through the second")
            assert.strictEqual(decrypted.header.alg, "RSA-OAEP")
          })
      )

      test("a general JWE for several parties decrypts with this key, whichever recipient it is", {
        decrypt: ["RSA-OAEP"]
      }, () =>
        Effect.gen(function*() {
          const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("party"), use: "enc" })
          const stranger = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
          const general = yield* Effect.promise(() =>
            new jose.GeneralEncrypt(new TextEncoder().encode("for two parties"))
              .setProtectedHeader({ enc: "A128CBC-HS256" })
              .addRecipient(stranger.publicKey)
              .setUnprotectedHeader({ alg: "RSA-OAEP", kid: "stranger" })
              .addRecipient(key.publicKey)
              .setUnprotectedHeader({ alg: "RSA-OAEP", kid: key.kid })
              .encrypt()
          )
          const decrypted = yield* Jwe.decrypt(general as Jwe.GeneralJwe, key)
          assert.strictEqual(new TextDecoder().decode(decrypted.plaintext), "for two parties")
          // Without kids, every recipient is tried.
          const anonymous = yield* Effect.promise(() =>
            new jose.GeneralEncrypt(new TextEncoder().encode("no kids"))
              .setProtectedHeader({ enc: "A256GCM" })
              .addRecipient(stranger.publicKey)
              .setUnprotectedHeader({ alg: "RSA-OAEP" })
              .addRecipient(key.publicKey)
              .setUnprotectedHeader({ alg: "RSA-OAEP" })
              .encrypt()
          )
          assert.strictEqual(
            new TextDecoder().decode((yield* Jwe.decrypt(anonymous as Jwe.GeneralJwe, key)).plaintext),
            "no kids"
          )
          const notOurs = yield* Effect.promise(() =>
            new jose.GeneralEncrypt(new TextEncoder().encode("not ours"))
              .setProtectedHeader({ enc: "A256GCM" })
              .addRecipient(stranger.publicKey)
              .setUnprotectedHeader({ alg: "RSA-OAEP" })
              .encrypt()
          )
          assert.strictEqual(
            (yield* typedFailure(Jwe.decrypt(notOurs as Jwe.GeneralJwe, key)))._tag,
            "DecryptionFailed"
          )
        }))

      test("RFC 7516 A.1 (RSA-OAEP + A256GCM) decrypts to its published plaintext after importing its key", {
        decrypt: ["RSA-OAEP"]
      }, () =>
        Effect.gen(function*() {
          const key = yield* HsmJwk.importPrivate({
            key: rfc7516.jwk,
            label: unique("rfc7516"),
            use: "enc",
            alg: "RSA-OAEP"
          })
          const decrypted = yield* Jwe.decrypt(rfc7516.jwe, key)
          assert.strictEqual(new TextDecoder().decode(decrypted.plaintext), rfc7516.plaintext)
          assert.deepStrictEqual(decrypted.header, { alg: "RSA-OAEP", enc: "A256GCM" })
        }))

      test(
        "a wrong key and every tampered part fail alike, with one DecryptionFailed",
        { decrypt: ["RSA-OAEP"] },
        () =>
          Effect.gen(function*() {
            const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("victim"), use: "enc" })
            const other = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("other"), use: "enc" })
            for (const enc of ["A256GCM", "A128CBC-HS256"] as const) {
              const jwe = yield* Jwe.encrypt("secret content", key, { alg: "RSA-OAEP", enc })
              const parts = jwe.split(".")
              const flip = (index: number) => {
                const bytes = Buffer.from(parts[index], "base64url")
                bytes[bytes.length >> 1] ^= 1
                return parts.map((part, i) => (i === index ? bytes.toString("base64url") : part)).join(".")
              }
              const header = Buffer.from(
                JSON.stringify({ ...JSON.parse(Buffer.from(parts[0], "base64url").toString()), kid: "swapped" })
              ).toString("base64url")
              const cases = [
                Jwe.decrypt(jwe, other),
                Jwe.decrypt([header, ...parts.slice(1)].join("."), key),
                Jwe.decrypt(flip(1), key),
                Jwe.decrypt(flip(2), key),
                Jwe.decrypt(flip(3), key),
                Jwe.decrypt(flip(4), key),
                Jwe.decrypt(parts.slice(0, 4).join("."), key)
              ]
              const messages = new Set<string>()
              for (const decryption of cases) {
                const error = yield* typedFailure(decryption)
                assert.strictEqual(error._tag, "DecryptionFailed", `${enc}: ${error.message}`)
                messages.add(JSON.stringify(error) + error.message)
              }
              assert.strictEqual(messages.size, 1)
            }
          })
      )

      test("an encrypted key of the wrong size fails like any other, and leaves the session healthy", {
        decrypt: ["RSA-OAEP"]
      }, () =>
        Effect.gen(function*() {
          const token = yield* TestToken
          const key = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("short"), use: "enc" })
          const type = yield* quickType
          const signer = yield* HsmJwk.generate({ type, label: unique("after") })
          // One session only: a stuck operation would show on the next use.
          yield* Effect.scoped(Effect.gen(function*() {
            const pool = yield* SessionPool.make({ tokenLabel: token.label, userPin: token.userPin, maxSessions: 1 })
            const inPool = <A, E>(effect: Effect.Effect<A, E, SessionPool.SessionPool>) =>
              Effect.provideService(effect, SessionPool.SessionPool, pool)
            const good = yield* Jwe.encrypt("still fine", key, { alg: "RSA-OAEP", enc: "A128GCM" })
            const parts = good.split(".")
            for (const encryptedKey of ["", "AAAA", Buffer.alloc(255, 1).toString("base64url")]) {
              const bad = [parts[0], encryptedKey, ...parts.slice(2)].join(".")
              assert.strictEqual((yield* typedFailure(inPool(Jwe.decrypt(bad, key))))._tag, "DecryptionFailed")
            }
            assert.strictEqual(
              new TextDecoder().decode((yield* inPool(Jwe.decrypt(good, key))).plaintext),
              "still fine"
            )
            yield* Jws.verify(yield* inPool(Jws.sign("still signs", signer)), signer)
          }))
        }))

      test(
        "RSA1_5 is refused; signing keys do not decrypt and decryption keys do not sign",
        { decrypt: ["RSA-OAEP"] },
        () =>
          Effect.gen(function*() {
            const enc = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("enc"), use: "enc" })
            const sig = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("sig") })
            const rsa15 = `${
              Buffer.from("{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\"}").toString("base64url")
            }.AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA`
            assert.strictEqual((yield* typedFailure(Jwe.decrypt(rsa15, enc)))._tag, "UnsupportedAlgorithm")
            const jwe = yield* Jwe.encrypt("x", enc, { alg: "RSA-OAEP", enc: "A128GCM" })
            assert.strictEqual((yield* typedFailure(Jwe.decrypt(jwe, sig)))._tag, "AlgorithmMismatch")
            assert.strictEqual((yield* typedFailure(Jws.sign("x", enc)))._tag, "AlgorithmMismatch")
            const signedBySig = yield* Jws.sign("x", sig)
            const refused = yield* typedFailure(Jws.verify(signedBySig, enc))
            assert.strictEqual(refused._tag === "VerificationFailed" ? refused.code : refused._tag, "ERR_JWK_INVALID")
            assert.strictEqual(
              (yield* typedFailure(HsmJwk.generate({ type: "P-256", label: unique("ec-enc"), use: "enc" })))._tag,
              "UnsupportedKey"
            )
          })
      )

      test("Ed448 keys sign JWS that node:crypto verifies, with an RFC 8037 JWK and thumbprint", {
        generate: ["Ed448"],
        import: ["Ed448"]
      }, () =>
        Effect.gen(function*() {
          const key = yield* HsmJwk.generate({ type: "Ed448", label: unique("ed448") })
          assert.strictEqual(key.publicJwk.kty, "OKP")
          assert.strictEqual(key.publicJwk.kty === "OKP" ? key.publicJwk.crv : "", "Ed448")
          assert.strictEqual(key.alg, "EdDSA")
          // RFC 8037 §2 and RFC 7638: the thumbprint of {"crv","kty","x"} in that order.
          const x = key.publicJwk.kty === "OKP" ? key.publicJwk.x : ""
          assert.strictEqual(Buffer.from(x, "base64url").length, 57)
          const thumbprint = Crypto.createHash("sha256")
            .update(JSON.stringify({ crv: "Ed448", kty: "OKP", x }))
            .digest("base64url")
          assert.strictEqual(key.kid, thumbprint)
          assert.strictEqual(yield* Effect.promise(() => jose.calculateJwkThumbprint(key.publicJwk)), thumbprint)

          const jws = yield* Jws.sign("Ed448 in the token", key)
          const [h, p, signature] = jws.split(".")
          assert.strictEqual(Buffer.from(signature, "base64url").length, 114)
          assert.isTrue(
            Crypto.verify(null, Buffer.from(`${h}.${p}`), key.publicKey, Buffer.from(signature, "base64url"))
          )
          assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(jws, key)).payload), "Ed448 in the token")

          const loaded = yield* HsmJwk.fromHsm({ id: key.id })
          assert.deepStrictEqual(loaded.publicJwk, key.publicJwk)

          const pair = Crypto.generateKeyPairSync("ed448")
          const imported = yield* HsmJwk.importPrivate({ key: pair.privateKey, label: unique("ed448-in") })
          const signed = (yield* Jws.sign("imported Ed448", imported)).split(".")
          assert.isTrue(
            Crypto.verify(
              null,
              Buffer.from(`${signed[0]}.${signed[1]}`),
              pair.publicKey,
              Buffer.from(signed[2], "base64url")
            )
          )
        }))

      test("Ed448 verifies with an HsmJwk, a KeyObject, a JWK and a mixed JWK set; Jwt.verify says it cannot", {
        generate: ["Ed448", "P-256"]
      }, () =>
        Effect.gen(function*() {
          const ed448 = yield* HsmJwk.generate({ type: "Ed448", label: unique("ed448-v") })
          const ec = yield* HsmJwk.generate({ type: "P-256", label: unique("ec-v") })
          const set = Jwks.fromKeys([ec, ed448])
          const jws = yield* Jws.sign("by Ed448", ed448)
          const text = (verified: Jws.Verified) => new TextDecoder().decode(verified.payload)
          for (const key of [ed448, ed448.publicKey, ed448.publicJwk, set]) {
            assert.strictEqual(text(yield* Jws.verify(jws, key)), "by Ed448")
          }
          // The set picks by kid: the EC key's JWS still verifies through jose, the Ed448 one only by its kid.
          assert.strictEqual(text(yield* Jws.verify(yield* Jws.sign("by EC", ec), set)), "by EC")
          const otherKid = yield* Jws.sign("by Ed448", ed448, { protectedHeader: { kid: ec.kid } })
          assert.strictEqual((yield* typedFailure(Jws.verify(otherKid, set)))._tag, "VerificationFailed")
          // The caller's algorithms hold for Ed448 as for the rest.
          const notAllowed = yield* typedFailure(Jws.verify(jws, ed448.publicJwk, { algorithms: ["ES256"] }))
          assert.strictEqual(notAllowed._tag, "VerificationFailed")
          // RFC 7515 §7.2.1 as jose holds it: the headers share no name, and crit is protected.
          const flattened = yield* Jws.signFlattened("by Ed448", ed448)
          for (const header of [{ alg: "EdDSA" }, { kid: "x", crit: ["kid"] }]) {
            const error = yield* typedFailure(Jws.verify({ ...flattened, header }, ed448))
            assert.strictEqual(error._tag === "VerificationFailed" ? error.code : error._tag, "ERR_JWS_INVALID")
          }
          assert.strictEqual(text(yield* Jws.verify({ ...flattened, header: { note: "x" } }, ed448)), "by Ed448")
          const tampered = `${jws.slice(0, -4)}AAAA`
          assert.strictEqual((yield* typedFailure(Jws.verify(tampered, ed448)))._tag, "VerificationFailed")

          const jwt = yield* Jwt.sign({ sub: "ed448" }, ed448)
          for (const key of [ed448, set]) {
            const error = yield* typedFailure(Jwt.verify(jwt, key))
            assert.strictEqual(error._tag === "VerificationFailed" ? error.code : error._tag, "ERR_JOSE_NOT_SUPPORTED")
          }
          const ecJwt = yield* Jwt.sign({ sub: "ec" }, ec)
          assert.strictEqual((yield* Jwt.verify(ecJwt, set)).payload.sub, "ec")
        }))
    })
  })
}
