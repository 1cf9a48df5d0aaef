/**
 * JOSE signed inside the token, on the emulator, SoftHSM2 and openCryptoki, verified by jose and
 * node:crypto. Where any signing key will do, the test uses the cheapest the token offers.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Constants } from "@hsmkey/pkcs11"
import { Clock, Effect, TestClock } from "effect"
import { type Algorithm, type HsmError, HsmJwk, Jwks, Jws, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import { backends } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { quickType, rawSession, typedFailure, unique, withPool } from "./support/pool.js"

const { CKO } = Constants

const generate = (type: HsmJwk.GenerateType, label = unique(type)) => HsmJwk.generate({ type, label })

/** A key of the cheapest type the token signs with. */
const quickKey = (label?: string) => Effect.flatMap(quickType, (type) => generate(type, label))

const algsOf: Record<string, ReadonlyArray<Algorithm.Algorithm>> = {
  "RSA-2048": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
  "P-256": ["ES256"],
  "P-384": ["ES384"],
  "P-521": ["ES512"],
  "Ed25519": ["EdDSA"]
}

const nodeVerify = (alg: Algorithm.Algorithm, key: Crypto.KeyObject, input: string, signature: Uint8Array) => {
  const data = Buffer.from(input)
  const hash = `sha${alg.slice(2)}`
  if (alg === "EdDSA") return Crypto.verify(null, data, key, signature)
  if (alg.startsWith("ES")) return Crypto.verify(hash, data, { key, dsaEncoding: "ieee-p1363" }, signature)
  if (alg.startsWith("PS")) {
    const saltLength = Number(alg.slice(2)) / 8
    return Crypto.verify(hash, data, { key, padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature)
  }
  return Crypto.verify(hash, data, key, signature)
}

for (const backend of backends("hsmkey-jose")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(withPool(backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)
      for (
        const [type, algs] of Object.entries(algsOf) as ReadonlyArray<
          [HsmJwk.GenerateType, ReadonlyArray<Algorithm.Algorithm>]
        >
      ) {
        test(`${type} signs ${algs.join(", ")}; jose (compact, flattened, general, JWT) and node:crypto verify`, {
          generate: [type],
          sign: algs
        }, () =>
          Effect.gen(function*() {
            // Jwt.sign reads Effect's Clock (a TestClock here): jose is told the same time.
            const currentDate = new Date(yield* Clock.currentTimeMillis)
            const payload = `{"n":"${Crypto.randomBytes(6).toString("hex")}"}`
            {
              const key = yield* generate(type)
              for (const alg of algs) {
                const keyForAlg = yield* HsmJwk.withAlgorithm(key, alg)
                const compact = yield* Jws.sign(payload, keyForAlg)
                const verified = yield* Effect.promise(() => jose.compactVerify(compact, key.publicKey))
                assert.strictEqual(new TextDecoder().decode(verified.payload), payload, alg)
                assert.deepStrictEqual(verified.protectedHeader, { alg, kid: key.kid })
                const [header, body, signature] = compact.split(".")
                assert.isTrue(
                  nodeVerify(alg, key.publicKey, `${header}.${body}`, Buffer.from(signature, "base64url")),
                  alg
                )

                const flattened = yield* Jws.signFlattened(payload, keyForAlg, { unprotectedHeader: { note: "x" } })
                const flat = yield* Effect.promise(() => jose.flattenedVerify(flattened, key.publicKey))
                assert.deepStrictEqual(flat.unprotectedHeader, { note: "x" })

                const general = yield* Jws.signGeneral(payload, [{ key: keyForAlg }])
                yield* Effect.promise(() => jose.generalVerify(general, key.publicKey))

                const jwt = yield* Jwt.sign({ sub: "user-1", scope: ["read"] }, keyForAlg, { expiresIn: "5 minutes" })
                const claims = yield* Effect.promise(() =>
                  jose.jwtVerify(jwt, jose.createLocalJWKSet(Jwks.fromKeys([keyForAlg])), {
                    algorithms: [alg],
                    currentDate
                  })
                )
                assert.strictEqual(claims.payload.sub, "user-1")
                assert.strictEqual(claims.protectedHeader.typ, "JWT")
              }
            }
          }))
      }

      test(
        "a general JWS with an RSA and an EC signature verifies with each key",
        { generate: ["RSA-2048", "P-256"] },
        () =>
          Effect.gen(function*() {
            const rsa = yield* generate("RSA-2048")
            const ec = yield* generate("P-256")
            const general = yield* Jws.signGeneral("two signers", [
              { key: rsa, alg: "PS256" },
              { key: ec, unprotectedHeader: { role: "second" } }
            ])
            assert.strictEqual(general.signatures.length, 2)
            // An HsmJwk verifies its own alg only: the RSA key's is RS256, this signature PS256.
            const rsaPs256 = yield* HsmJwk.withAlgorithm(rsa, "PS256")
            for (const key of [rsaPs256, ec]) {
              const verified = yield* Effect.promise(() => jose.generalVerify(general, key.publicKey))
              assert.strictEqual(new TextDecoder().decode(verified.payload), "two signers")
              const ours = yield* Jws.verify(general, key)
              assert.strictEqual(ours.protectedHeader.kid, key.kid)
            }
            assert.strictEqual((yield* typedFailure(Jws.verify(general, rsa)))._tag, "VerificationFailed")
            yield* Jws.verify(general, rsa, { algorithms: ["PS256"] })
            // Each key its own alg by default: a JWK set of both verifies it.
            const both = yield* Jws.signGeneral("both", [{ key: rsa }, { key: ec }])
            assert.strictEqual(both.signatures.length, 2)
            const byJwks = yield* Jws.verify(both, Jwks.fromKeys([rsa, ec]))
            assert.strictEqual(new TextDecoder().decode(byJwks.payload), "both")
            // One key may sign twice, each signature under its own protected header.
            const twice = yield* Jws.signGeneral("twice", [{ key: ec }, { key: ec, protectedHeader: { n: 2 } }])
            assert.strictEqual(twice.signatures.length, 2)
            assert.deepStrictEqual(
              twice.signatures.map((s) => JSON.parse(Buffer.from(s.protected, "base64url").toString())),
              [{ alg: ec.alg, kid: ec.kid }, { alg: ec.alg, kid: ec.kid, n: 2 }]
            )
            yield* Jws.verify(twice, ec)
            // A general JWS needs a signer; one signer makes a general JWS of one signature.
            assert.strictEqual((yield* typedFailure(Jws.signGeneral("x", [])))._tag, "InvalidOptions")
            const one = yield* Jws.signGeneral("one", [{ key: ec }])
            assert.strictEqual(one.signatures.length, 1)
            assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(one, ec)).payload), "one")
          })
      )

      test(
        "a kid in the unprotected header keeps the protected one out; crit extensions are signed as given",
        {},
        () =>
          Effect.gen(function*() {
            const ec = yield* quickKey()
            const flattened = yield* Jws.signFlattened("x", ec, { unprotectedHeader: { kid: "chosen" } })
            const verified = yield* Effect.promise(() => jose.flattenedVerify(flattened, ec.publicKey))
            assert.deepStrictEqual(verified.protectedHeader, { alg: ec.alg })
            assert.deepStrictEqual(verified.unprotectedHeader, { kid: "chosen" })

            const critical = yield* Jws.sign("x", ec, {
              protectedHeader: { crit: ["urn:example:x"], "urn:example:x": 1 }
            })
            const refused = yield* Effect.promise(() =>
              jose.compactVerify(critical, ec.publicKey).then(() => "", (e) => e.code)
            )
            assert.strictEqual(refused, "ERR_JOSE_NOT_SUPPORTED")
            const accepted = yield* Effect.promise(() =>
              jose.compactVerify(critical, ec.publicKey, { crit: { "urn:example:x": true } })
            )
            assert.deepStrictEqual(accepted.protectedHeader.crit, ["urn:example:x"])
          })
      )

      for (const type of ["RSA-2048", "RSA-3072", "RSA-4096", "P-256", "P-384", "P-521", "Ed25519"] as const) {
        test(`${type} loads back by label, by id and by both, as the same JWK with jose's thumbprint`, {
          generate: [type]
        }, () =>
          Effect.gen(function*() {
            {
              const label = unique(type)
              const key = yield* generate(type, label)
              const thumbprint = yield* Effect.promise(() => jose.calculateJwkThumbprint(key.publicJwk, "sha256"))
              assert.strictEqual(key.kid, thumbprint, type)
              assert.strictEqual(key.publicJwk.use, "sig")
              assert.notProperty(key.publicJwk, "d")
              const id = Buffer.from(key.id).toString("hex")
              for (const options of [{ label }, { id }, { label, id }, { id: key.id }]) {
                const loaded = yield* HsmJwk.fromHsm(options)
                assert.deepStrictEqual(
                  loaded.publicJwk,
                  key.publicJwk,
                  `${type} ${JSON.stringify(Object.keys(options))}`
                )
              }
              const imported = yield* Effect.promise(() => jose.importJWK(key.publicJwk, key.alg))
              assert.isDefined(imported)
              assert.include(HsmJwk.toPem(key), "-----BEGIN PUBLIC KEY-----")
              assert.isDefined(yield* HsmJwk.toCryptoKey(key))
              // The default CKA_ID is the SHA-1 of the public key material.
              assert.deepStrictEqual(key.id, HsmJwk.defaultId(key.publicJwk))
            }
          }))
      }

      test("kid from CKA_ID or label on request", {}, () =>
        Effect.gen(function*() {
          const label = unique("kid")
          const type = yield* quickType
          const key = yield* HsmJwk.generate({ type, label, id: "0a0b0c", kid: "id" })
          assert.strictEqual(key.kid, "0a0b0c")
          const byLabel = yield* HsmJwk.fromHsm({ label, kid: "label" })
          assert.strictEqual(byLabel.kid, label)
        }))

      const inputs = [
        ["jwk", "RSA-2048", () => Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })],
        ["pem", "P-256", () => Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" })],
        ["der", "P-384", () => Crypto.generateKeyPairSync("ec", { namedCurve: "secp384r1" })],
        ["keyobject", "Ed25519", () => Crypto.generateKeyPairSync("ed25519")]
      ] as const
      for (const [form, type, make] of inputs) {
        test(
          `imports a private ${type} key as ${form} that signs, sensitive and never extractable`,
          { import: [type] },
          () =>
            Effect.gen(function*() {
              {
                const pair = make()
                const material = form === "jwk"
                  ? pair.privateKey.export({ format: "jwk" }) as jose.JWK
                  : form === "pem"
                  ? pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString()
                  : form === "der"
                  ? new Uint8Array(pair.privateKey.export({ format: "der", type: "pkcs8" }))
                  : pair.privateKey
                const key = yield* HsmJwk.importPrivate({ key: material, label: unique(`import-${form}`) })
                const jws = yield* Jws.sign("imported", key)
                const verified = yield* Effect.promise(() => jose.compactVerify(jws, pair.publicKey))
                assert.strictEqual(new TextDecoder().decode(verified.payload), "imported", form)
                // What the token itself says of the private object, in a Cryptoki session of the test's own.
                const attributes = yield* Effect.scoped(
                  Effect.gen(function*() {
                    const { handle: session, pkcs11 } = yield* rawSession()
                    const handles = yield* pkcs11.findObjects(session, { class: CKO.PRIVATE_KEY, id: key.id })
                    assert.strictEqual(handles.length, 1, form)
                    return yield* pkcs11.getAttributes(session, handles[0], [
                      "sensitive",
                      "extractable",
                      "sign",
                      "decrypt",
                      "value",
                      "privateExponent"
                    ])
                  })
                )
                assert.isTrue(attributes.sensitive, form)
                assert.isFalse(attributes.extractable, form)
                assert.isTrue(attributes.sign)
                assert.isFalse(attributes.decrypt)
                assert.isUndefined(attributes.value)
                assert.isUndefined(attributes.privateExponent)
              }
            })
        )
      }

      test("a key outlives the session it was loaded in, and a re-login", {}, () =>
        Effect.gen(function*() {
          const label = unique("outlives")
          yield* quickKey(label)
          // Loaded in a session lent for the load only.
          const key = yield* SessionPool.withSession(HsmJwk.fromHsm({ label }))
          yield* Jws.verify(yield* Jws.sign("after the session", key), key)
          // Something logs the token out behind hsmkey's back: handles die, the pool logs in again, the key
          // is found again.
          const state = yield* Effect.scoped(Effect.gen(function*() {
            const { handle, pkcs11 } = yield* rawSession()
            yield* pkcs11.logout(handle)
            return (yield* pkcs11.sessionInfo(handle)).state
          }))
          assert.strictEqual(state, "ro-public")
          const again = yield* Jws.sign("after a re-login", key)
          assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(again, key)).payload), "after a re-login")
          const many = yield* Jws.signMany(Array.from({ length: 50 }, (_, i) => `payload ${i}`), key, {
            concurrency: 8
          })
          assert.strictEqual(many.length, 50)
          for (const jws of many) yield* Jws.verify(jws, key)
        }))

      test("malformed input gives a named typed error, never a defect", {}, () =>
        Effect.scoped(Effect.gen(function*() {
          // The test's own session holds the public-only session object below: it goes when the session closes.
          const raw = yield* rawSession({ rw: true })
          const rsa = yield* generate("RSA-2048")
          const ec = yield* quickKey()
          const type = yield* quickType
          const label = unique("exists")
          yield* quickKey(label)
          const publicOnly = unique("public-only")
          const { e, n } = rsa.publicKey.export({ format: "jwk" })
          yield* raw.pkcs11.createObject(raw.handle, {
            class: CKO.PUBLIC_KEY,
            keyType: Constants.CKK.RSA,
            token: false,
            private: false,
            label: publicOnly,
            modulus: Buffer.from(n!, "base64url"),
            publicExponent: Buffer.from(e!, "base64url")
          })
          const cases: ReadonlyArray<
            readonly [string, Effect.Effect<unknown, HsmError.HsmError, SessionPool.SessionPool>]
          > = [
            ["UnsupportedAlgorithm", Jws.sign("x", rsa, { alg: "HS1024" })],
            ["UnsupportedAlgorithm", Jws.sign("x", rsa, { alg: "none" })],
            ["AlgorithmMismatch", Jws.sign("x", rsa, { alg: "ES256" })],
            ["AlgorithmMismatch", Jws.sign("x", ec, { alg: "ES384" })],
            ["InvalidKeyReference", HsmJwk.fromHsm({ id: "xyz" })],
            ["InvalidKeyReference", HsmJwk.fromHsm({ id: "abc" })],
            ["InvalidKeyReference", HsmJwk.fromHsm({ label: "" })],
            ["InvalidKeyReference", HsmJwk.fromHsm({})],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: [1, 2] as unknown as Jws.Header })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: "typ" as unknown as Jws.Header })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: { alg: "HS256" } })],
            [
              "InvalidHeader",
              Jws.signFlattened("x", ec, { protectedHeader: { cty: "a" }, unprotectedHeader: { cty: "b" } })
            ],
            ["InvalidHeader", Jws.sign("x", ec, { unprotectedHeader: { note: "compact has none" } })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: { big: 1n } })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: { b64: false, crit: ["b64"] } })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: { crit: ["exp"] } })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: { crit: ["kid"] } })],
            ["InvalidHeader", Jws.sign("x", ec, { protectedHeader: { crit: [] } })],
            [
              "InvalidHeader",
              Jws.signFlattened("x", ec, { protectedHeader: { ext: 1 }, unprotectedHeader: { crit: ["ext"] } })
            ],
            [
              "InvalidHeader",
              Jws.signEncoded(jose.base64url.encode(JSON.stringify({ alg: "ES256", b64: false })), "x", ec)
            ],
            ["KeyNotFound", HsmJwk.fromHsm({ label: publicOnly })],
            ["KeyNotFound", HsmJwk.fromHsm({ label: unique("absent") })],
            ["InvalidClaims", Jwt.sign({ when: new Date() }, ec)],
            ["InvalidClaims", Jwt.sign({ n: Number.NaN }, ec)],
            ["InvalidClaims", Jwt.sign({ f: () => 1 }, ec)],
            ["InvalidClaims", Jwt.sign(["not", "an", "object"], ec)],
            ["InvalidClaims", Jwt.sign({ deep: { big: 10n } }, ec)],
            ["KeyExists", HsmJwk.generate({ type, label })],
            ["InvalidOptions", Jws.signGeneral("x", [])],
            ["InvalidKeyMaterial", HsmJwk.importPrivate({ key: "not a key", label: unique("bad") })],
            ["InvalidKeyMaterial", HsmJwk.importPrivate({ key: ec.publicJwk, label: unique("bad") })],
            ["VerificationFailed", Jws.verify("not.a.jws", ec)]
          ]
          for (const [tag, effect] of cases) {
            const error = yield* typedFailure(effect)
            assert.strictEqual(error._tag, tag, `${tag}: got ${error._tag} (${error.message})`)
          }
          // Only the public half matched, and hsmkey says so.
          const publicOnlyFailure = yield* typedFailure(HsmJwk.fromHsm({ label: publicOnly }))
          assert.strictEqual(publicOnlyFailure._tag === "KeyNotFound" ? publicOnlyFailure.reason : "", "public-only")
          // A read-only session in context is no longer InvalidOptions for generation: it borrows a
          // read/write session of the pool itself, and the key is on the token.
          const roLabel = unique("ro")
          const made = yield* SessionPool.withSession(HsmJwk.generate({ type, label: roLabel }))
          assert.deepStrictEqual((yield* HsmJwk.fromHsm({ label: roLabel })).publicJwk, made.publicJwk)
          // Flip a bit in the middle of the signature (the last base64url character may be only padding bits).
          const [h, p, sig] = (yield* Jws.sign("x", ec)).split(".")
          const bytes = Buffer.from(sig, "base64url")
          bytes[10] ^= 1
          const tampered = `${h}.${p}.${bytes.toString("base64url")}`
          const failed = yield* typedFailure(Jws.verify(tampered, ec))
          assert.strictEqual(
            failed._tag === "VerificationFailed" ? failed.code : "",
            "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
          )
        })))

      test("JWT times come from the Clock, so TestClock moves them", {}, () =>
        Effect.gen(function*() {
          const key = yield* quickKey()
          // Small steps: the pool's idle check wakes on the Clock every idleTimeToLive.
          yield* TestClock.adjust("3 hours")
          const jwt = yield* Jwt.sign({ role: "admin" }, key, {
            expiresIn: "10 minutes",
            notBefore: "1 minute",
            issuer: "hsmkey",
            audience: ["api"],
            subject: "alice",
            jti: "j-1"
          })
          const claims = jose.decodeJwt(jwt)
          const now = 3 * 3600
          assert.deepStrictEqual(
            { ...claims },
            {
              role: "admin",
              iat: now,
              exp: now + 600,
              nbf: now + 60,
              iss: "hsmkey",
              aud: ["api"],
              sub: "alice",
              jti: "j-1"
            }
          )
          const early = yield* typedFailure(Jwt.verify(jwt, key))
          assert.strictEqual(early._tag === "VerificationFailed" ? early.code : "", "ERR_JWT_CLAIM_VALIDATION_FAILED")
          yield* TestClock.adjust("2 minutes")
          const ok = yield* Jwt.verify(jwt, key, { issuer: "hsmkey", audience: "api" })
          assert.strictEqual(ok.payload.sub, "alice")
          yield* TestClock.adjust("20 minutes")
          const late = yield* typedFailure(Jwt.verify(jwt, key))
          assert.strictEqual(late._tag === "VerificationFailed" ? late.code : "", "ERR_JWT_EXPIRED")
        }))

      test("a JWKS of the token holds every key pair, public halves only", {}, () =>
        Effect.gen(function*() {
          const keys = [yield* generate("RSA-2048"), yield* quickKey()]
          const jwks = yield* Jwks.fromToken()
          for (const key of keys) {
            const published = jwks.keys.find((jwk) => jwk.kid === key.kid)
            assert.deepStrictEqual(published, key.publicJwk)
          }
          for (const jwk of jwks.keys) {
            for (const secret of ["d", "p", "q", "dp", "dq", "qi"]) assert.notProperty(jwk, secret)
          }
          const jwt = yield* Jwt.sign({ ok: true }, keys[1])
          yield* Jwt.verify(jwt, jwks)
        }))
    })
  })
}
