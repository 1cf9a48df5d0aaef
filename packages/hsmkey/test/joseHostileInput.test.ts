/**
 * Named regressions of hostile input to verification, decryption and claims: each case below once was a
 * defect (a JWK set with `null` in it, circular claims, `alg: 5`), a wrong result (an unprotected
 * `toString` "in both headers", a JWE alg given as an array, a claim named `__proto__` dropped) or a
 * value silently coerced (`audience: [5]`, a string spread into a header). Each is now a typed error or a
 * correct result.
 */
import { assert, describe, layer } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Cause, Context, Effect, Exit, Layer, Redacted } from "effect"
import { HsmJwk, HsmSecret, Jwe, Jwks, Jws, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"

const userPin = Redacted.make("hostile-jose-4711")
const emulator = MemoryPkcs11.layer({ tokens: [{ label: "hostile-jose", userPin }] })
const poolLayer = SessionPool.layer({ tokenLabel: "hostile-jose", userPin, maxSessions: 2 }).pipe(
  Layer.provide(emulator)
)

class Keys extends Context.Tag("test/Keys")<Keys, {
  readonly ec: HsmJwk.HsmJwk
  readonly rsa: HsmJwk.HsmJwk
  readonly hmac: HsmSecret.HsmSecretKey
  /** A key outside the token, to sign what hsmkey refuses to sign. */
  readonly soft: Crypto.KeyPairKeyObjectResult
}>() {}

const keysLayer = Layer.effect(
  Keys,
  Effect.all({
    ec: HsmJwk.generate({ type: "P-256", label: "ec" }),
    rsa: HsmJwk.generate({ type: "RSA-2048", label: "rsa", use: "enc" }),
    hmac: HsmSecret.generate({ alg: "HS256", label: "hmac" }),
    soft: Effect.sync(() => Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }))
  })
).pipe(Layer.provideMerge(poolLayer))

type AnyExit = Exit.Exit<unknown, { readonly _tag: string }>

/** Fails the test unless the effect fails with `tag` (a typed failure: not a defect, not a success). */
const failsWith = <E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<unknown, E, R>,
  tag: string,
  what: string
): Effect.Effect<E, never, R> =>
  Effect.flatMap(Effect.exit(effect), (exit: AnyExit) => {
    if (Exit.isFailure(exit) && Cause.isFailType(exit.cause) && exit.cause.error._tag === tag) {
      return Effect.succeed(exit.cause.error as E)
    }
    return Effect.die(`${what}: expected ${tag}, got ${Exit.isSuccess(exit) ? "a success" : Cause.pretty(exit.cause)}`)
  })

const codeOf = (error: { readonly _tag: string }): string => "code" in error ? String(error.code) : error._tag

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url")

/** A compact ES256 JWS signed by node:crypto under any header, as a peer that obeys no rule can send. */
const softJws = (key: Crypto.KeyObject, header: object, payload: string): string => {
  const input = `${b64(header)}.${Buffer.from(payload).toString("base64url")}`
  const signature = Crypto.sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" })
  return `${input}.${signature.toString("base64url")}`
}

layer(keysLayer, { excludeTestServices: true, timeout: 60_000 })("hostile input to JOSE", (it) => {
  describe("a JWK set with entries that are not JWKs", () => {
    it.effect("null, numbers, strings, arrays and unclonable entries are ERR_JWKS_INVALID, never a defect", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const jws = yield* Jws.sign("payload", ec)
        const jwt = yield* Jwt.sign({ sub: "s" }, ec)
        const good = Jwks.fromKeys([ec]).keys[0]
        const sets: ReadonlyArray<ReadonlyArray<unknown>> = [
          [null],
          [5],
          ["x"],
          [[]],
          [null, good],
          [good, null],
          [{ ...good, x: () => "not cloneable" }]
        ]
        for (const keys of sets) {
          const what = `keys ${String(keys.map((key) => typeof key))}`
          const set = { keys } as unknown as jose.JSONWebKeySet
          assert.strictEqual(
            codeOf(yield* failsWith(Jws.verify(jws, set), "VerificationFailed", what)),
            "ERR_JWKS_INVALID"
          )
          assert.strictEqual(
            codeOf(yield* failsWith(Jwt.verify(jwt, set), "VerificationFailed", what)),
            "ERR_JWKS_INVALID"
          )
        }
        assert.strictEqual(text((yield* Jws.verify(jws, Jwks.fromKeys([ec]))).payload), "payload")
      }))

    it.effect("an Ed448 JWK whose key_ops is not a list takes no part, as jose reads key_ops", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const jws = yield* Jws.sign("payload", ec)
        const set = { keys: [{ kty: "OKP", crv: "Ed448", x: "AA", key_ops: 5 }] } as unknown as jose.JSONWebKeySet
        yield* failsWith(Jws.verify(jws, set), "VerificationFailed", "key_ops: 5")
        yield* failsWith(Jwt.verify(yield* Jwt.sign({}, ec), set), "VerificationFailed", "key_ops: 5")
      }))
  })

  describe("claims and payloads that JSON cannot hold", () => {
    it.effect("circular, deeply nested and __proto__ claims are InvalidClaims, not a RangeError", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const circular: Record<string, unknown> = { a: 1 }
        circular.self = circular
        const inArray: Record<string, unknown> = {}
        inArray.list = [1, inArray]
        let deep: unknown = 1
        for (let i = 0; i < 100_000; i++) deep = { d: deep }
        let deepArray: unknown = 1
        for (let i = 0; i < 100_000; i++) deepArray = [deepArray]
        const cases: ReadonlyArray<readonly [string, unknown]> = [
          ["circular", circular],
          ["circular through an array", inArray],
          ["100,000 objects deep", deep],
          ["100,000 arrays deep", { a: deepArray }],
          // Schema's record decoding assigned it, setting a prototype: the claim vanished from the token.
          ["a claim named __proto__", JSON.parse("{\"__proto__\":{\"admin\":true},\"sub\":\"s\"}")],
          ["a nested __proto__", JSON.parse("{\"a\":{\"__proto__\":5}}")]
        ]
        for (const [what, claims] of cases) yield* failsWith(Jwt.sign(claims, ec), "InvalidClaims", what)
        let fifty: unknown = "leaf"
        for (let i = 0; i < 50; i++) fifty = { d: fifty }
        const { payload } = yield* Jwt.verify(yield* Jwt.sign({ fifty }, ec), ec)
        assert.deepStrictEqual(payload.fifty, fifty)
      }))

    it.effect("claims and headers sharing one object at every level are refused at once (24 levels took 8 s, 100 would be 2^100 visits)", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        let shared: unknown = "leaf"
        for (let i = 0; i < 24; i++) shared = { left: shared, right: shared }
        const started = Date.now()
        const claims = yield* failsWith(Jwt.sign({ shared }, ec), "InvalidClaims", "Jwt.sign")
        assert.include(claims.message, "values")
        yield* failsWith(Jws.sign("x", ec, { protectedHeader: { shared } }), "InvalidHeader", "Jws.sign")
        yield* failsWith(Jws.signFlattened("x", ec, { unprotectedHeader: { shared } }), "InvalidHeader", "unprotected")
        yield* failsWith(Jwe.encrypt("x", rsa, { enc: "A128GCM", protectedHeader: { shared } }), "InvalidHeader", "Jwe")
        assert.isBelow(Date.now() - started, 1000)
        // A shared value is still JSON while the walk is small.
        const small = { a: 1 }
        const { payload } = yield* Jwt.verify(yield* Jwt.sign({ x: small, y: [small, small] }, ec), ec)
        assert.deepStrictEqual(payload.y, [small, small])
      }))

    it.effect("a member whose getter throws is InvalidClaims or InvalidHeader, not a defect of Jwt.sign", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        const throwing = () =>
          Object.defineProperty({ sub: "s" }, "boom", {
            enumerable: true,
            get: () => {
              throw new Error("getter")
            }
          })
        const claims = yield* failsWith(Jwt.sign(throwing(), ec), "InvalidClaims", "claims")
        assert.include(claims.message, "a member that cannot be read")
        yield* failsWith(Jwt.sign({ nested: [throwing()] }, ec), "InvalidClaims", "nested claims")
        yield* failsWith(Jws.sign("x", ec, { protectedHeader: throwing() }), "InvalidHeader", "Jws.sign")
        yield* failsWith(Jwt.sign({}, ec, { protectedHeader: throwing() }), "InvalidHeader", "Jwt.sign header")
        yield* failsWith(
          Jwe.encrypt("x", rsa, { enc: "A128GCM", protectedHeader: throwing() }),
          "InvalidHeader",
          "Jwe.encrypt"
        )
      }))

    it.effect("headers that are not JSON are InvalidHeader, from Jws, Jwt and Jwe alike, not signed otherwise", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        const circular: Record<string, unknown> = {}
        circular.self = circular
        let deep: Record<string, unknown> = {}
        for (let i = 0; i < 100_000; i++) deep = { d: deep }
        const headers: ReadonlyArray<Record<string, unknown>> = [
          circular,
          deep,
          // JSON.stringify dropped ext: the token named a critical extension it did not carry.
          { crit: ["ext"], ext: undefined },
          { ext: Number.NaN },
          { ext: new Date(0) },
          { ext: () => 1 },
          JSON.parse("{\"__proto__\":{\"p\":1}}")
        ]
        for (const header of headers) {
          yield* failsWith(Jws.sign("x", ec, { protectedHeader: header }), "InvalidHeader", "Jws.sign")
          yield* failsWith(Jws.signFlattened("x", ec, { unprotectedHeader: header }), "InvalidHeader", "unprotected")
          yield* failsWith(Jwt.sign({}, ec, { protectedHeader: header }), "InvalidHeader", "Jwt.sign")
          yield* failsWith(Jwe.encrypt("x", rsa, { enc: "A128GCM", protectedHeader: header }), "InvalidHeader", "Jwe")
        }
      }))
  })

  describe("audience and registered claims of the wrong type", () => {
    it.effect("Jwt.sign: an audience that is not a string or strings is InvalidOptions, as from Jwt.verify, not [5]", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const jwt = yield* Jwt.sign({}, ec, { audience: "a" })
        for (const audience of [5, {}, null, [5], ["a", 1], [null], true]) {
          yield* failsWith(
            Jwt.sign({}, ec, { audience: audience as never }),
            "InvalidOptions",
            JSON.stringify(audience)
          )
          yield* failsWith(
            Jwt.verify(jwt, ec, { audience: audience as never }),
            "InvalidOptions",
            JSON.stringify(audience)
          )
        }
        const { payload } = yield* Jwt.verify(yield* Jwt.sign({}, ec, { audience: ["a", "b"] }), ec, { audience: "b" })
        assert.deepStrictEqual(payload.aud, ["a", "b"])
      }))

    it.effect("Jwt.sign: registered claims of the wrong type in the claims are InvalidClaims", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const cases = [{ iss: 5 }, { sub: [] }, { jti: [1] }, { aud: 5 }, { aud: ["a", 5] }, { exp: "tomorrow" }, {
          nbf: {}
        }, { iat: "now" }]
        for (const claims of cases) yield* failsWith(Jwt.sign(claims, ec), "InvalidClaims", JSON.stringify(claims))
      }))

    it.effect("Jwt.verify: options that are not jose's are InvalidOptions, not a claim the token lacks", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const jwt = yield* Jwt.sign({ sub: "s", iss: "i", aud: "a" }, ec)
        const cases: ReadonlyArray<Record<string, unknown>> = [
          { audience: 5 },
          { audience: [5] },
          { audience: {} },
          { audience: null },
          { issuer: 5 },
          { issuer: ["i", 5] },
          { subject: 5 },
          { typ: 5 },
          { requiredClaims: "sub" },
          { requiredClaims: [5] },
          { clockTolerance: {} },
          { clockTolerance: Number.NaN },
          { clockTolerance: -1 },
          { clockTolerance: Infinity },
          { maxTokenAge: {} },
          { maxTokenAge: Number.NaN },
          // jose read these after the signature, and threw a TypeError: VerificationFailed (ERR_INVALID_INPUT).
          { maxTokenAge: "garbage" },
          { maxTokenAge: "-1h" },
          { maxTokenAge: "2 hours ago" },
          { clockTolerance: "1 fortnight" },
          { clockTolerance: "+5s from now" },
          { algorithms: "ES256" },
          { algorithms: 5 },
          { algorithms: [5] },
          { crit: 5 },
          { crit: { ext: "yes" } }
        ]
        for (const options of cases) {
          yield* failsWith(Jwt.verify(jwt, ec, options as never), "InvalidOptions", JSON.stringify(options))
        }
        for (const options of [null, "options", [], 5]) {
          yield* failsWith(Jwt.verify(jwt, ec, options as never), "InvalidOptions", String(options))
        }
        const { payload } = yield* Jwt.verify(jwt, ec, { audience: ["x", "a"], issuer: ["i"], subject: "s" })
        assert.strictEqual(payload.sub, "s")
        yield* Jwt.verify(jwt, ec, { maxTokenAge: "1h", clockTolerance: "+5 seconds" })
        yield* Jwt.verify(jwt, ec, { maxTokenAge: "1 day", clockTolerance: 5 })
      }))

    it.effect("Jws.verify: algorithms and crit that are not jose's are InvalidOptions, not a defect", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const jws = yield* Jws.sign("payload", ec)
        for (
          const options of [
            { algorithms: 5 },
            { algorithms: {} },
            { algorithms: "ES256" },
            { algorithms: null },
            {
              crit: 5
            },
            { crit: "b64" },
            { crit: { ext: 1 } },
            null,
            "options"
          ]
        ) {
          yield* failsWith(Jws.verify(jws, ec, options as never), "InvalidOptions", JSON.stringify(options))
        }
        assert.strictEqual(text((yield* Jws.verify(jws, ec, { algorithms: ["ES256"] })).payload), "payload")
      }))

    it.effect("Jws.verify: a JWS that is neither text nor an object is ERR_JWS_INVALID, as other malformed ones", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        for (const jws of [null, 5, true, undefined]) {
          const error = yield* failsWith(Jws.verify(jws as never, ec), "VerificationFailed", String(jws))
          assert.strictEqual(codeOf(error), "ERR_JWS_INVALID")
        }
      }))
  })

  describe("header checks see a header's own parameters, never its prototype", () => {
    it.effect("crit naming constructor or toString, empty names and duplicate names are InvalidHeader", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        const headers: ReadonlyArray<Jws.Header> = [
          { crit: ["constructor"] },
          { crit: ["toString"] },
          { crit: [""], "": 1 },
          { crit: ["ext", "ext"], ext: 1 },
          { crit: [] },
          { crit: "ext", ext: 1 }
        ]
        for (const protectedHeader of headers) {
          yield* failsWith(Jws.sign("x", ec, { protectedHeader }), "InvalidHeader", JSON.stringify(protectedHeader))
        }
        const signed = yield* Jws.sign("x", ec, { protectedHeader: { crit: ["ext"], ext: 1 } })
        assert.strictEqual(text((yield* Jws.verify(signed, ec, { crit: { ext: true } })).payload), "x")
      }))

    it.effect("a verified JWS or JWT whose crit names an extension twice is ERR_JWS_INVALID (jose accepts it)", () =>
      Effect.gen(function*() {
        const { soft } = yield* Keys
        const header = { alg: "ES256", crit: ["ext", "ext"], ext: 1 }
        const jws = softJws(soft.privateKey, header, "x")
        const jwt = softJws(soft.privateKey, header, JSON.stringify({ sub: "s" }))
        const options = { crit: { ext: true } }
        const error = yield* failsWith(Jws.verify(jws, soft.publicKey, options), "VerificationFailed", "Jws")
        assert.strictEqual(codeOf(error), "ERR_JWS_INVALID")
        const jwtError = yield* failsWith(Jwt.verify(jwt, soft.publicKey, options), "VerificationFailed", "Jwt")
        assert.strictEqual(codeOf(jwtError), "ERR_JWS_INVALID")
        const once = softJws(soft.privateKey, { alg: "ES256", crit: ["ext"], ext: 1 }, "x")
        assert.strictEqual(text((yield* Jws.verify(once, soft.publicKey, options)).payload), "x")
      }))

    it.effect("unprotected toString, constructor and hasOwnProperty are parameters like any other", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        for (const name of ["toString", "constructor", "hasOwnProperty", "valueOf"]) {
          const unprotectedHeader = { [name]: "value" }
          const flattened = yield* Jws.signFlattened("x", ec, { unprotectedHeader })
          const verified = yield* Jws.verify(flattened, ec)
          assert.deepStrictEqual(verified.unprotectedHeader, unprotectedHeader)
        }
      }))

    it.effect("JWE headers with constructor, toString or __proto__ decrypt (they were DecryptionFailed)", () =>
      Effect.gen(function*() {
        const { rsa } = yield* Keys
        // As a peer sends it: hsmkey itself refuses to put __proto__ in a header.
        const protectedHeader = JSON.parse(
          `{"alg":"${rsa.alg}","enc":"A128GCM","kid":"${rsa.kid}","constructor":"c","__proto__":{"p":1}}`
        )
        const compact = yield* Effect.promise(() =>
          new jose.CompactEncrypt(new TextEncoder().encode("secret")).setProtectedHeader(protectedHeader).encrypt(
            rsa.publicKey
          )
        )
        const [protectedText, encryptedKey, iv, ciphertext, tag] = compact.split(".")
        const parts = { protected: protectedText, encrypted_key: encryptedKey, iv, ciphertext, tag }
        const jwes: ReadonlyArray<Jwe.FlattenedJwe | Jwe.GeneralJwe | string> = [
          compact,
          { ...parts, header: { toString: 1 } },
          { ...parts, unprotected: { valueOf: 1 }, header: { hasOwnProperty: 2 } },
          {
            protected: protectedText,
            iv,
            ciphertext,
            tag,
            recipients: [{ header: { toString: 1 }, encrypted_key: encryptedKey }]
          }
        ]
        for (const jwe of jwes) {
          const decrypted = yield* Jwe.decrypt(jwe, rsa)
          assert.strictEqual(text(decrypted.plaintext), "secret", JSON.stringify(jwe).slice(0, 200))
          assert.strictEqual(Object.getOwnPropertyDescriptor(decrypted.header, "constructor")?.value, "c")
        }
        // A parameter in two headers is still refused, like any other malformed JWE.
        for (const header of [{ constructor: "again" }, JSON.parse("{\"__proto__\":1}")]) {
          yield* failsWith(Jwe.decrypt({ ...parts, header }, rsa), "DecryptionFailed", JSON.stringify(header))
        }
      }))

    it.effect("a JWE whose alg or enc is not text is UnsupportedAlgorithm: never a defect, never read as text", () =>
      Effect.gen(function*() {
        const { rsa } = yield* Keys
        // The alg in the recipient's header, outside the tag: ["RSA-OAEP-256"] was read as "RSA-OAEP-256".
        const flattened = yield* Effect.promise(() =>
          new jose.FlattenedEncrypt(new TextEncoder().encode("secret"))
            .setProtectedHeader({ enc: "A128GCM" })
            .setUnprotectedHeader({ alg: "RSA-OAEP-256", kid: rsa.kid })
            .encrypt(rsa.publicKey)
        )
        const decrypted = yield* Jwe.decrypt(flattened as Jwe.FlattenedJwe, rsa)
        assert.strictEqual(text(decrypted.plaintext), "secret")
        for (const alg of [["RSA-OAEP-256"], { toString: 1 }, 5, null]) {
          const jwe = { ...flattened, header: { alg, kid: rsa.kid } } as Jwe.FlattenedJwe
          yield* failsWith(Jwe.decrypt(jwe, rsa), "UnsupportedAlgorithm", JSON.stringify(alg))
        }
        const compact = yield* Jwe.encrypt("secret", rsa, { enc: "A128GCM" })
        const [, ...rest] = compact.split(".")
        const cases: ReadonlyArray<readonly [unknown, Jwe.DecryptOptions]> = [
          [["A128GCM"], {}],
          [{ toString: 1 }, {}],
          // contents[enc] was Object's constructor, then a TypeError in node:crypto.
          ["constructor", { contentEncryptionAlgorithms: ["constructor" as never] }],
          ["__proto__", { contentEncryptionAlgorithms: ["__proto__" as never] }]
        ]
        for (const [enc, options] of cases) {
          const header = b64({ alg: rsa.alg, enc, kid: rsa.kid })
          const what = JSON.stringify(enc)
          yield* failsWith(Jwe.decrypt([header, ...rest].join("."), rsa, options), "UnsupportedAlgorithm", what)
        }
      }))

    it.effect("an alg or enc of a megabyte is UnsupportedAlgorithm naming it cut short, from a peer or a caller", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        const huge = "A".repeat(1 << 20)
        const compact = yield* Jwe.encrypt("secret", rsa, { enc: "A128GCM" })
        const [, ...rest] = compact.split(".")
        const errors = [
          yield* failsWith(
            Jwe.decrypt([b64({ alg: huge, enc: "A128GCM" }), ...rest].join("."), rsa),
            "UnsupportedAlgorithm",
            "alg"
          ),
          yield* failsWith(
            Jwe.decrypt([b64({ alg: rsa.alg, enc: huge }), ...rest].join("."), rsa),
            "UnsupportedAlgorithm",
            "enc"
          ),
          yield* failsWith(Jws.sign("x", ec, { alg: huge }), "UnsupportedAlgorithm", "Jws.sign"),
          yield* failsWith(
            Jwe.encrypt("x", rsa, { alg: huge as never, enc: "A128GCM" }),
            "UnsupportedAlgorithm",
            "alg"
          ),
          yield* failsWith(Jwe.encrypt("x", rsa, { enc: huge as never }), "UnsupportedAlgorithm", "encrypt enc")
        ]
        for (const error of errors) {
          assert.isAtMost(JSON.stringify(error).length, 200)
          assert.isAtMost(error.message.length, 400)
        }
      }))
  })

  describe("a string or an array where a header object belongs", () => {
    it.effect("protectedHeader and unprotectedHeader are JSON objects, never spread from a string", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        for (const header of ["abc", ["a"], 5, null, new Date(0)]) {
          const what = JSON.stringify(header)
          yield* failsWith(Jws.sign("x", ec, { protectedHeader: header as never }), "InvalidHeader", what)
          yield* failsWith(Jws.signFlattened("x", ec, { unprotectedHeader: header as never }), "InvalidHeader", what)
          yield* failsWith(Jwt.sign({}, ec, { protectedHeader: header as never }), "InvalidHeader", what)
          yield* failsWith(
            Jwe.encrypt("x", rsa, { enc: "A128GCM", protectedHeader: header as never }),
            "InvalidHeader",
            what
          )
        }
      }))
  })

  describe("values that only violate the types", () => {
    it.effect("alg that is not text is InvalidOptions; alg named after Object.prototype is UnsupportedAlgorithm", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        for (const alg of [5, {}, null, true, ["ES256"]]) {
          const what = JSON.stringify(alg)
          yield* failsWith(Jws.sign("x", ec, { alg: alg as never }), "InvalidOptions", what)
          yield* failsWith(Jws.signFlattened("x", ec, { alg: alg as never }), "InvalidOptions", what)
          yield* failsWith(Jwt.sign({}, ec, { alg: alg as never }), "InvalidOptions", what)
          yield* failsWith(Jwe.encrypt("x", rsa, { alg: alg as never, enc: "A128GCM" }), "InvalidOptions", what)
          yield* failsWith(Jwe.encrypt("x", rsa, { enc: alg as never }), "InvalidOptions", what)
        }
        for (const alg of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
          yield* failsWith(Jws.sign("x", ec, { alg: alg as never }), "UnsupportedAlgorithm", alg)
          yield* failsWith(Jwt.sign({}, ec, { alg: alg as never }), "UnsupportedAlgorithm", alg)
          yield* failsWith(Jwe.encrypt("x", rsa, { alg: alg as never, enc: "A128GCM" }), "UnsupportedAlgorithm", alg)
          // `enc in contents` saw the prototype, and jose's refusal came back as InvalidOptions.
          yield* failsWith(Jwe.encrypt("x", rsa, { enc: alg as never }), "UnsupportedAlgorithm", alg)
        }
      }))

    it.effect("kid options that are not booleans, and header parameters of the wrong type, are refused", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        for (const kid of [5, "yes", null]) {
          yield* failsWith(Jws.sign("x", ec, { kid: kid as never }), "InvalidOptions", String(kid))
          yield* failsWith(Jwt.sign({}, ec, { kid: kid as never }), "InvalidOptions", String(kid))
        }
        const headers: ReadonlyArray<Jws.Header> = [{ kid: 5 }, { typ: 5 }, { cty: {} }, { x5c: "abc" }, { jku: [] }, {
          alg: { toString: 1 }
        }]
        for (const header of headers) {
          const what = JSON.stringify(header)
          yield* failsWith(Jws.sign("x", ec, { protectedHeader: header }), "InvalidHeader", what)
          yield* failsWith(Jws.signFlattened("x", ec, { unprotectedHeader: header }), "InvalidHeader", what)
          yield* failsWith(Jwt.sign({}, ec, { protectedHeader: header }), "InvalidHeader", what)
          yield* failsWith(Jwe.encrypt("x", rsa, { enc: "A128GCM", protectedHeader: header }), "InvalidHeader", what)
        }
      }))

    it.effect("options that are not objects are InvalidOptions everywhere, never a TypeError", () =>
      Effect.gen(function*() {
        const { ec, rsa } = yield* Keys
        const jwe = yield* Jwe.encrypt("secret", rsa, { enc: "A128GCM" })
        for (const options of [null, "options", 5, ["a"]]) {
          const what = JSON.stringify(options)
          yield* failsWith(Jws.sign("x", ec, options as never), "InvalidOptions", what)
          yield* failsWith(Jws.signFlattened("x", ec, options as never), "InvalidOptions", what)
          yield* failsWith(Jws.signMany(["x"], ec, options as never), "InvalidOptions", what)
          yield* failsWith(Jwt.sign({}, ec, options as never), "InvalidOptions", what)
          yield* failsWith(Jwe.encrypt("x", rsa, options as never), "InvalidOptions", what)
          yield* failsWith(Jwe.decrypt(jwe, rsa, options as never), "InvalidOptions", what)
        }
      }))

    it.effect("Jwe.decrypt lists that are not lists of names are InvalidOptions, not read by substring", () =>
      Effect.gen(function*() {
        const { rsa } = yield* Keys
        const jwe = yield* Jwe.encrypt("secret", rsa, { alg: "RSA-OAEP", enc: "A128GCM" })
        // "RSA-OAEP-256".includes("RSA-OAEP"): a string accepted the other algorithm.
        for (
          const options of [{ algorithms: "RSA-OAEP-256" }, { algorithms: [5] }, {
            contentEncryptionAlgorithms: "A128GCM"
          }]
        ) {
          yield* failsWith(Jwe.decrypt(jwe, rsa, options as never), "InvalidOptions", JSON.stringify(options))
        }
        yield* failsWith(
          Jwe.decrypt(jwe, rsa, { algorithms: ["RSA-OAEP-256"] }),
          "UnsupportedAlgorithm",
          "not accepted"
        )
        assert.strictEqual(text((yield* Jwe.decrypt(jwe, rsa, { algorithms: ["RSA-OAEP"] })).plaintext), "secret")
      }))

    it.effect("Jws.signMany takes an iterable of payloads, not a string read as characters", () =>
      Effect.gen(function*() {
        const { ec } = yield* Keys
        for (const payloads of [null, "ab", 5]) {
          yield* failsWith(Jws.signMany(payloads as never, ec), "InvalidOptions", String(payloads))
        }
      }))

    it.effect("Jwe.encrypt takes text or bytes as plaintext", () =>
      Effect.gen(function*() {
        const { rsa } = yield* Keys
        for (const plaintext of [5, null, { a: 1 }, ["a"]]) {
          yield* failsWith(
            Jwe.encrypt(plaintext as never, rsa, { enc: "A128GCM" }),
            "InvalidOptions",
            String(plaintext)
          )
        }
      }))

    it.effect("an HMAC verified in the token checks its options as every key does (they were ignored)", () =>
      Effect.gen(function*() {
        const { hmac } = yield* Keys
        const jws = yield* Jws.sign("payload", hmac)
        for (const options of [{ algorithms: 5 }, { algorithms: "HS256" }, { crit: 5 }, null, "options"]) {
          yield* failsWith(Jws.verify(jws, hmac, options as never), "InvalidOptions", JSON.stringify(options))
        }
        const refused = yield* failsWith(
          Jws.verify(jws, hmac, { algorithms: ["HS512"] }),
          "VerificationFailed",
          "HS256 not accepted"
        )
        assert.strictEqual(codeOf(refused), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED")
        assert.strictEqual(text((yield* Jws.verify(jws, hmac, { algorithms: ["HS256"] })).payload), "payload")
      }))

    it.effect("an HMAC verified in the token still works, and its JWS parsing refuses non-JWS alike", () =>
      Effect.gen(function*() {
        const { hmac } = yield* Keys
        const jws = yield* Jws.sign("payload", hmac)
        assert.strictEqual(text((yield* Jws.verify(jws, hmac)).payload), "payload")
        for (const bad of [null, 5, "a.b", { payload: 5 }, { payload: "eA", signatures: [null] }]) {
          const error = yield* failsWith(Jws.verify(bad as never, hmac), "VerificationFailed", JSON.stringify(bad))
          assert.strictEqual(codeOf(error), "ERR_JWS_INVALID")
        }
      }))
  })
})
