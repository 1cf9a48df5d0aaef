/**
 * `Capabilities` says what a token can do, and the token does exactly that: every key type it generates
 * signs (or decrypts) with every algorithm listed for it, verified by jose or node:crypto, and everything it
 * leaves out is refused up front with `MechanismUnsupported`, on every backend.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Capabilities, HsmJwk, Jwe, Jws, SessionPool } from "hsmkey"
import { backends, TestToken } from "./support/backends.js"
import { offered } from "./support/matrix.js"
import { assertFailure, typedFailure, unique, withPool } from "./support/pool.js"

const allSigning = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const

/** What each backend is documented (README, "Backends") to lack. */
const documented: Record<string, { readonly lacks: ReadonlyArray<string>; readonly rs256: string }> = {
  MemoryPkcs11: { lacks: [], rs256: "CKM_SHA256_RSA_PKCS" },
  SoftHSM2: { lacks: ["RSA-OAEP-256"], rs256: "CKM_SHA256_RSA_PKCS" },
  openCryptoki: {
    lacks: ["ES256", "ES384", "ES512", "EdDSA", "P-256", "P-384", "P-521", "Ed25519", "Ed448"],
    rs256: "CKM_RSA_PKCS"
  }
}

for (const backend of backends("hsmkey-capabilities")) {
  describe.skipIf(!backend.available)(backend.name, () => {
    layer(withPool(backend.layer), { timeout: 600_000 })((it) => {
      const test = offered(it)

      test("the capabilities are what the backend is documented to offer", {}, () =>
        Effect.gen(function*() {
          const token = yield* TestToken
          const capabilities = yield* Capabilities.ofToken({ tokenLabel: token.label })
          const expected = documented[token.backend]
          const lacking = [
            ...allSigning.filter((alg) => !Capabilities.canSign(capabilities, alg)),
            ...(["RSA-OAEP", "RSA-OAEP-256"] as const).filter((alg) => !Capabilities.canDecrypt(capabilities, alg)),
            ...capabilities.keyTypes.filter((k) => k.generate === undefined).map((k) => k.type)
          ]
          assert.sameMembers(lacking, [...expected.lacks])
          assert.strictEqual(capabilities.signing.find((s) => s.alg === "RS256")?.mechanism, expected.rs256)
          assert.sameMembers([...capabilities.secrets.signing], ["HS256", "HS384", "HS512"])
          assert.strictEqual(capabilities.token.serialNumber, token.serialNumber)
          // The pool reads the same.
          const pool = yield* SessionPool.SessionPool
          assert.deepStrictEqual(yield* pool.capabilities, capabilities)
        }))

      test(
        "every key type it generates signs with each algorithm listed; jose or node:crypto verifies",
        {},
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            for (const keyType of token.capabilities.keyTypes.filter((k) => k.generate !== undefined)) {
              const key = yield* HsmJwk.generate({ type: keyType.type, label: unique(keyType.type) })
              for (const alg of keyType.signing) {
                const jws = yield* Jws.sign(`${keyType.type} ${alg}`, key, { alg })
                yield* Jws.verify(jws, key, { algorithms: [alg] })
              }
              if (keyType.decryption.length > 0) {
                const enc = yield* HsmJwk.generate({
                  type: keyType.type,
                  label: unique(`${keyType.type}-enc`),
                  use: "enc"
                })
                for (const alg of keyType.decryption) {
                  const jwe = yield* Jwe.encrypt("decrypts", enc, { alg, enc: "A128GCM" })
                  assert.strictEqual(new TextDecoder().decode((yield* Jwe.decrypt(jwe, enc)).plaintext), "decrypts")
                }
              }
            }
          })
      )

      test(
        "what it leaves out is MechanismUnsupported before the token is asked",
        { lacksGenerate: ["P-256"] },
        () =>
          Effect.gen(function*() {
            const token = yield* TestToken
            const lacking = token.capabilities.keyTypes.filter((k) => k.generate === undefined)
            assert.isAbove(lacking.length, 0)
            for (const keyType of lacking) {
              const error = yield* typedFailure(
                HsmJwk.generate({ type: keyType.type, label: unique(`no-${keyType.type}`) })
              )
              assertFailure(error, { _tag: "MechanismUnsupported", operation: "generate", keyType: keyType.type })
            }
            const rsa = yield* HsmJwk.generate({ type: "RSA-2048", label: unique("rsa") })
            for (const alg of ["PS256", "RS256"].filter((alg) => !Capabilities.canSign(token.capabilities, alg))) {
              const error = yield* typedFailure(Jws.sign("x", rsa, { alg }))
              assertFailure(error, { _tag: "MechanismUnsupported", operation: "sign", alg })
            }
          })
      )
    })
  })
}
