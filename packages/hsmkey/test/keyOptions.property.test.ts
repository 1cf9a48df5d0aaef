/**
 * Options as a JavaScript caller can give them, whatever their types say: labels and CKA_IDs that are not
 * text or bytes, empty, huge, odd-length hex or lone surrogates; key types, algorithms, `use` and `kid`
 * sources that name nothing (`"__proto__"`, `12`); options that are not objects; PINs in the clear. Each
 * call gives a correct key (the label, CKA_ID, type, use and algorithm asked for) or a typed failure,
 * never a defect in internals (`id: 12` and `type: "__proto__"` once died) nor a value silently coerced
 * (`use: "x"` once made a key that neither signs nor decrypts). Properties run 1,000 times each on the
 * emulator; the cases they found are kept below as named regressions.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Constants, Curve, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { Cause, Effect, Exit, FastCheck, Layer, ManagedRuntime, Redacted } from "effect"
import { HsmJwk, HsmSecret, Provisioning, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"

const { CKK, CKO } = Constants
const numRuns = 1000
const userPin = Redacted.make("key-options-pin")
const soPin = Redacted.make("key-options-so")
const emulator = MemoryPkcs11.layer({
  tokens: [{ label: "options", userPin }, { label: "provisioning", userPin, soPin, pinRetries: 1000 }]
})
const runtime = ManagedRuntime.make(
  SessionPool.layer({ tokenLabel: "options", userPin, maxSessions: 2 }).pipe(Layer.provideMerge(emulator))
)
// Loading and listing read every key of the token: on a token of their own, not the thousands made here.
const loading = ManagedRuntime.make(
  SessionPool.layer({ tokenLabel: "loading", userPin, maxSessions: 2 }).pipe(
    Layer.provideMerge(MemoryPkcs11.layer({ tokens: [{ label: "loading", userPin }] }))
  )
)
afterAll(() => Promise.all([runtime.dispose(), loading.dispose()]))

type Outcome<A> = { readonly _tag: "Success"; readonly value: A } | { readonly _tag: "Failure"; readonly tag: string }

/** Runs an effect to its end: a success, or the tag of a typed failure. A defect, an interruption or a hang throws. */
const outcome = async <A, E>(
  effect: () => Effect.Effect<A, E, SessionPool.SessionPool | Pkcs11.Pkcs11>,
  on: ManagedRuntime.ManagedRuntime<SessionPool.SessionPool | Pkcs11.Pkcs11, unknown> = runtime
): Promise<Outcome<A>> => {
  const exit = await on.runPromiseExit(
    // A call that throws before it returns an Effect is as much a defect as one that dies.
    Effect.suspend(effect).pipe(
      Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => ({ _tag: "Hang" as const }) })
    )
  )
  if (Exit.isSuccess(exit)) return { _tag: "Success", value: exit.value }
  if (Cause.isFailType(exit.cause)) {
    const tag = (exit.cause.error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string" && tag !== "Hang") return { _tag: "Failure", tag }
  }
  throw new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
}

let sequence = 0
const freshLabel = () => `options-${++sequence}`
const freshId = () => Crypto.randomBytes(6).toString("hex")

/** Values no option takes: of other types, without a prototype, named after Object.prototype. */
const hostile = FastCheck.oneof(
  FastCheck.anything({
    maxDepth: 1,
    withNullPrototype: true,
    withTypedArray: true,
    withBigInt: true,
    withBoxedValues: true
  }),
  FastCheck.constantFrom<unknown>(
    null,
    12,
    Number.NaN,
    true,
    [],
    [1],
    {},
    Symbol("option"),
    Object.create(null),
    { toString: () => ({}) },
    "",
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty"
  )
)
const absent = FastCheck.constant(undefined)

/** Mostly what works, so that successes are checked too; hostile values in one run of several. */
const mostly = <A>(valid: FastCheck.Arbitrary<A>, ...others: ReadonlyArray<FastCheck.Arbitrary<unknown>>) =>
  FastCheck.oneof({ arbitrary: valid, weight: 4 * others.length }, ...others)

const label = mostly(
  FastCheck.constant(null).map(() => freshLabel()),
  FastCheck.constant(null).map(() => `${freshLabel()}-${"é".repeat(5000)}`),
  FastCheck.constantFrom("\uD800", "a\uDC00b", "\uDFFF\uD800"),
  hostile
)
const id = mostly(
  FastCheck.oneof(
    absent,
    FastCheck.constant(null).map(freshId),
    FastCheck.constant(null).map(() => freshId().replace(/(..)(?!$)/gu, "$1:")),
    FastCheck.constant(null).map(() => new Uint8Array(Crypto.randomBytes(5)))
  ),
  FastCheck.constantFrom<unknown>(
    "abc",
    "0",
    "zz",
    "0x1234",
    " ",
    ":",
    new Uint8Array(0),
    "ab".repeat(50_000).slice(1)
  ),
  FastCheck.hexaString({ maxLength: 9 }),
  hostile
)
const kid = mostly(FastCheck.constantFrom(undefined, "thumbprint", "id", "label"), hostile)
const use = mostly(FastCheck.constantFrom(undefined, undefined, "sig", "enc"), hostile)
const alg = mostly(
  FastCheck.constantFrom(undefined, undefined, undefined, "ES256", "EdDSA"),
  FastCheck.constantFrom("ES384", "RS256", "HS256", "RSA-OAEP", "none", "es256"),
  hostile
)

/** The CKA_ID an `id` option names, when it names one. */
const idBytes = (given: unknown): Uint8Array | undefined =>
  given instanceof Uint8Array
    ? given
    : typeof given === "string"
    ? Buffer.from(given.replace(/:/gu, ""), "hex")
    : undefined

const sameBytes = (a: Uint8Array, b: Uint8Array | undefined) => b !== undefined && Buffer.from(a).equals(Buffer.from(b))

/** What a key made or found with these options must be. */
const checkKey = async (key: HsmJwk.HsmJwk, options: { readonly [name: string]: unknown }) => {
  if (typeof options.label === "string") assert.strictEqual(key.label, options.label)
  if (options.id !== undefined) assert.isTrue(sameBytes(key.id, idBytes(options.id)), "the CKA_ID asked for")
  if (typeof options.type === "string") assert.strictEqual(key.keyType, options.type)
  if (options.use !== undefined) assert.strictEqual(key.use, options.use)
  if (options.alg !== undefined) assert.strictEqual(key.alg, options.alg)
  const expectedKid = options.kid === "id" && key.id.length > 0
    ? Buffer.from(key.id).toString("hex")
    : options.kid === "label"
    ? key.label
    : await jose.calculateJwkThumbprint(key.publicJwk, "sha256")
  assert.strictEqual(key.kid, expectedKid)
  assert.strictEqual(key.publicJwk.kid, key.kid)
}

const keyFailures = [
  "InvalidOptions",
  "InvalidKeyReference",
  "UnsupportedKey",
  "UnsupportedAlgorithm",
  "AlgorithmMismatch",
  "KeyExists",
  "KeyNotFound",
  "KeyAmbiguous"
]

describe("HsmJwk options", () => {
  it("generate: any type, label, id, alg, use and kid give the key asked for, or a typed error", async () => {
    // Curves only: an RSA key per run would take the file past its minute.
    const type = mostly(
      FastCheck.constantFrom("P-256", "Ed25519"),
      FastCheck.constantFrom("RSA-1", "p-256", "ed25519"),
      hostile
    )
    const options = mostly(
      FastCheck.record({ type, label, id, alg, use, kid }, { requiredKeys: ["type", "label"] }),
      hostile
    )
    await FastCheck.assert(
      FastCheck.asyncProperty(options, async (given) => {
        const result = await outcome(() => HsmJwk.generate(given as never))
        if (result._tag === "Failure") return assert.oneOf(result.tag, keyFailures)
        await checkKey(result.value, given as never)
      }),
      { numRuns }
    )
  }, 60_000)

  it("importPrivate: any label, id, alg, use and kid give the key asked for, or a typed error", async () => {
    const pem = Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({
      format: "pem",
      type: "pkcs8"
    }).toString()
    const options = FastCheck.record({ label, id, alg, use, kid }, { requiredKeys: ["label"] })
    await FastCheck.assert(
      FastCheck.asyncProperty(options, async (given) => {
        // Without an id, the CKA_ID is the key's own: one import of it at most.
        const withId = given.id === undefined ? { ...given, id: freshId() } : given
        const result = await outcome(() => HsmJwk.importPrivate({ ...withId, key: pem } as never))
        if (result._tag === "Failure") return assert.oneOf(result.tag, [...keyFailures, "InvalidKeyMaterial"])
        await checkKey(result.value, withId)
      }),
      { numRuns }
    )
  }, 60_000)

  it("fromHsm and list: any label, id, alg, use and kid find the key asked for, or give a typed error", async () => {
    const known = await loading.runPromise(
      Effect.all([
        HsmJwk.generate({ type: "P-256", label: "known-ec", id: "0102" }),
        HsmJwk.generate({ type: "Ed25519", label: "known-ed", id: "0a0b" })
      ])
    )
    const options = mostly(
      FastCheck.record({
        label: mostly(FastCheck.constantFrom(undefined, "known-ec", "known-ed", "unknown"), label),
        id: mostly(FastCheck.constantFrom(undefined, "0102", "01:02", "0A0B", Uint8Array.of(10, 11)), id),
        alg,
        use,
        kid
      }, { requiredKeys: [] }),
      hostile
    )
    await FastCheck.assert(
      FastCheck.asyncProperty(options, async (given) => {
        const result = await outcome(() => HsmJwk.fromHsm(given as never), loading)
        if (result._tag === "Failure") {
          assert.oneOf(result.tag, keyFailures)
        } else {
          assert.isTrue(known.some((key) => sameBytes(key.id, result.value.id)), "a key that is there")
          await checkKey(result.value, given as never)
        }
        const listed = await outcome(() => HsmJwk.list(given as never), loading)
        if (listed._tag === "Failure") assert.oneOf(listed.tag, ["InvalidOptions", "InvalidKeyReference"])
      }),
      { numRuns }
    )
  }, 60_000)
})

describe("HsmSecret options", () => {
  const hmacAlg = mostly(
    FastCheck.constantFrom("HS256", "HS384", "HS512"),
    FastCheck.constantFrom("HS1", "hs256", "RS256"),
    hostile
  )
  const secretKid = mostly(FastCheck.constantFrom(undefined, "id", "label"), FastCheck.constant("thumbprint"), hostile)

  it(
    "generate, importSecret and fromHsm: any alg, label, id and kid give the secret asked for, or a typed error",
    async () => {
      const options = mostly(
        FastCheck.record({ alg: hmacAlg, label, id, kid: secretKid }, { requiredKeys: ["alg", "label"] }),
        hostile
      )
      const operation = FastCheck.constantFrom("generate", "importSecret", "fromHsm")
      await FastCheck.assert(
        FastCheck.asyncProperty(options, operation, async (given, op) => {
          const result = await outcome((): Effect.Effect<HsmSecret.HsmSecretKey, unknown, SessionPool.SessionPool> =>
            op === "generate"
              ? HsmSecret.generate(given as never)
              : op === "importSecret"
              ? HsmSecret.importSecret({ ...(given as object), key: new Uint8Array(64).fill(7) } as never)
              : HsmSecret.fromHsm(given as never)
          )
          if (result._tag === "Failure") return assert.oneOf(result.tag, [...keyFailures, "InvalidKeyMaterial"])
          const { alg, id, kid, label } = given as { readonly [name: string]: unknown }
          assert.strictEqual(result.value.alg, alg)
          if (typeof label === "string") assert.strictEqual(result.value.label, label)
          if (id !== undefined) assert.isTrue(sameBytes(result.value.id, idBytes(id)))
          assert.strictEqual(
            result.value.kid,
            kid === "label" ? result.value.label : Buffer.from(result.value.id).toString("hex")
          )
        }),
        { numRuns }
      )
    },
    60_000
  )
})

describe("Provisioning options", () => {
  const pin = mostly(
    FastCheck.constantFrom(soPin, soPin, userPin, userPin, Redacted.make("wrong-pin-1")),
    FastCheck.constantFrom(Redacted.make(12 as never), Redacted.make("")),
    FastCheck.constantFrom<unknown>("key-options-so", "key-options-pin"),
    hostile
  )
  const mostlyPin = FastCheck.oneof({ arbitrary: FastCheck.constantFrom(soPin, userPin), weight: 12 }, pin)
  it(
    "initUserPin and changePin: any token name, PINs, userType and loginOnFinalTry give a typed error or do it",
    async () => {
      const options = mostly(
        FastCheck.record({
          tokenLabel: mostly(FastCheck.constant("provisioning"), FastCheck.constantFrom("absent", undefined), hostile),
          tokenSerial: mostly(absent, hostile),
          soPin: mostlyPin,
          userPin: mostlyPin,
          oldPin: mostlyPin,
          newPin: mostlyPin,
          userType: mostly(FastCheck.constantFrom(undefined, "user", "so"), FastCheck.constant("admin"), hostile),
          loginOnFinalTry: mostly(FastCheck.constantFrom(undefined, true, false), hostile)
        }, { requiredKeys: ["soPin", "userPin", "oldPin", "newPin"] }),
        hostile
      )
      await FastCheck.assert(
        FastCheck.asyncProperty(options, FastCheck.boolean(), async (given, init) => {
          const result = await outcome(() =>
            init ? Provisioning.initUserPin(given as never) : Provisioning.changePin(given as never)
          )
          if (result._tag === "Success") return
          assert.oneOf(result.tag, [
            "InvalidOptions",
            "TokenNotFound",
            "TokenInUse",
            "PinIncorrect",
            "PinInvalid",
            "PinLocked",
            "PinNotInitialized"
          ])
        }),
        { numRuns }
      )
    },
    60_000
  )
})

describe("named regressions", () => {
  const tagOf = async (effect: () => Effect.Effect<unknown, unknown, SessionPool.SessionPool | Pkcs11.Pkcs11>) => {
    const result = await outcome(effect)
    return result._tag === "Success" ? "Success" : result.tag
  }

  it("an id that is not hex text or bytes is InvalidKeyReference (id: 12 died in parseId)", async () => {
    // Float32Array.from([]) and {} are the property's counterexamples.
    for (const bad of [12, [1], null, {}, Symbol("id"), Float32Array.from([])]) {
      assert.strictEqual(
        await tagOf(() => HsmJwk.generate({ type: "P-256", label: freshLabel(), id: bad as never })),
        "InvalidKeyReference"
      )
      assert.strictEqual(await tagOf(() => HsmJwk.fromHsm({ id: bad as never })), "InvalidKeyReference")
      assert.strictEqual(
        await tagOf(() =>
          HsmSecret.importSecret({ alg: "HS256", label: freshLabel(), id: bad as never, key: new Uint8Array(32) })
        ),
        "InvalidKeyReference"
      )
    }
  })

  it("a type that names no key type is UnsupportedKey, whatever it is (a symbol threw in the message)", async () => {
    for (const type of ["__proto__", "constructor", 12, null, Symbol("type"), Object.create(null)]) {
      assert.strictEqual(
        await tagOf(() => HsmJwk.generate({ type: type as never, label: freshLabel() })),
        "UnsupportedKey"
      )
    }
  })

  it("a label that is not text is InvalidKeyReference (label: 12 was stored as a number, and then KeyNotFound died listing it)", async () => {
    for (const bad of [12, undefined, null, {}, ["a"]]) {
      assert.strictEqual(
        await tagOf(() => HsmJwk.generate({ type: "P-256", label: bad as never })),
        "InvalidKeyReference"
      )
      if (bad !== undefined) {
        assert.strictEqual(await tagOf(() => HsmJwk.fromHsm({ label: bad as never, id: "ff" })), "InvalidKeyReference")
      }
    }
    assert.strictEqual(await tagOf(() => HsmJwk.fromHsm({ label: "no such key" })), "KeyNotFound")
  })

  it("a label with a lone surrogate is InvalidKeyReference: UTF-8 on the token would make it another label", async () => {
    for (const bad of ["\uD800", "key-\uDC00"]) {
      assert.strictEqual(await tagOf(() => HsmJwk.generate({ type: "P-256", label: bad })), "InvalidKeyReference")
    }
    const key = await runtime.runPromise(HsmJwk.generate({ type: "Ed25519", label: "clé 🔑" }))
    assert.strictEqual(key.label, "clé 🔑")
  })

  it("an alg that is not text is UnsupportedAlgorithm (alg: 12 died constructing the error)", async () => {
    for (const bad of [12, null, {}, Symbol("alg")]) {
      assert.strictEqual(
        await tagOf(() => HsmJwk.generate({ type: "P-256", label: freshLabel(), alg: bad as never })),
        "UnsupportedAlgorithm"
      )
      assert.strictEqual(
        await tagOf(() => HsmSecret.generate({ alg: bad as never, label: freshLabel() })),
        "UnsupportedAlgorithm"
      )
      assert.strictEqual(
        await tagOf(() => HsmSecret.fromHsm({ alg: bad as never, label: "x" })),
        "UnsupportedAlgorithm"
      )
    }
  })

  it("a use or kid that names none is InvalidOptions (use: \"x\" made a key that neither signs nor decrypts)", async () => {
    for (const use of ["x", Number.NaN]) {
      assert.strictEqual(
        await tagOf(() => HsmJwk.generate({ type: "P-256", label: freshLabel(), use: use as never })),
        "InvalidOptions"
      )
    }
    assert.strictEqual(
      await tagOf(() => HsmJwk.generate({ type: "P-256", label: freshLabel(), kid: "x" as never })),
      "InvalidOptions"
    )
    assert.strictEqual(await tagOf(() => HsmJwk.list({ kid: "__proto__" as never })), "InvalidOptions")
    // An object without a prototype threw a TypeError in the message of the kid it named.
    assert.strictEqual(await tagOf(() => HsmJwk.fromHsm({ id: "ff", kid: Object.create(null) })), "InvalidOptions")
    // kid: "x" once gave the CKA_ID's hex silently.
    assert.strictEqual(
      await tagOf(() =>
        HsmSecret.importSecret({ alg: "HS256", label: freshLabel(), kid: "x" as never, key: new Uint8Array(32) })
      ),
      "InvalidOptions"
    )
  })

  it("options that are not an object are InvalidOptions, not a throw from the call", async () => {
    for (const bad of [null, undefined, 12, "P-256"]) {
      assert.strictEqual(await tagOf(() => HsmJwk.generate(bad as never)), "InvalidOptions")
      assert.strictEqual(await tagOf(() => HsmJwk.importPrivate(bad as never)), "InvalidOptions")
      assert.strictEqual(await tagOf(() => HsmJwk.fromHsm(bad as never)), "InvalidOptions")
      assert.strictEqual(await tagOf(() => HsmSecret.fromHsm(bad as never)), "InvalidOptions")
      assert.strictEqual(await tagOf(() => Provisioning.changePin(bad as never)), "InvalidOptions")
    }
  })

  it("changePin with a userType that names neither is InvalidOptions (\"admin\" was checked as the SO's and changed the user PIN)", async () => {
    const error = await runtime.runPromise(
      Effect.flip(Provisioning.changePin({
        tokenLabel: "provisioning",
        userType: "admin" as never,
        oldPin: userPin,
        newPin: Redacted.make("admin-pin-1")
      }))
    )
    assert.strictEqual(error._tag, "InvalidOptions")
  })

  it("PINs in the clear or not text, and token names that are not text, are InvalidOptions", async () => {
    assert.strictEqual(
      await tagOf(() =>
        Provisioning.initUserPin({ tokenLabel: "provisioning", soPin: "key-options-so" as never, userPin })
      ),
      "InvalidOptions"
    )
    for (const name of [12, Object.create(null), Symbol("token")]) {
      assert.strictEqual(
        await tagOf(() => Provisioning.initUserPin({ tokenLabel: name as never, soPin, userPin })),
        "InvalidOptions"
      )
      assert.strictEqual(
        await tagOf(() => Provisioning.changePin({ tokenSerial: name as never, oldPin: userPin, newPin: userPin })),
        "InvalidOptions"
      )
    }
    // The property found it: a Redacted number reached the token's PIN handling, which threw a TypeError.
    assert.strictEqual(
      await tagOf(() =>
        Provisioning.initUserPin({ tokenLabel: "provisioning", soPin, userPin: Redacted.make(12 as never) })
      ),
      "InvalidOptions"
    )
    assert.strictEqual(
      await tagOf(() => Effect.scoped(SessionPool.make({ tokenLabel: 12 as never, userPin }))),
      "InvalidOptions"
    )
  })

  it("a PIN given as a number, or Redacted around one, is InvalidOptions whose text never holds the PIN (soPin: 12345678 was printed)", async () => {
    const cases: ReadonlyArray<() => Effect.Effect<void, Provisioning.ProvisioningError, Pkcs11.Pkcs11>> = [
      () => Provisioning.initUserPin({ tokenLabel: "provisioning", soPin: 12345678 as never, userPin }),
      () => Provisioning.initUserPin({ tokenLabel: "provisioning", soPin, userPin: Redacted.make(87654321 as never) }),
      () => Provisioning.initUserPin({ tokenLabel: "provisioning", soPin: 12345678n as never, userPin }),
      () =>
        Provisioning.changePin({
          tokenLabel: "provisioning",
          oldPin: Redacted.make(12345678n as never),
          newPin: userPin
        }),
      () => Provisioning.changePin({ tokenLabel: "provisioning", oldPin: userPin, newPin: 87654321 as never })
    ]
    for (const call of cases) {
      const error = await runtime.runPromise(Effect.flip(call()))
      assert.strictEqual(error._tag, "InvalidOptions")
      for (const text of [error.message, String(error), JSON.stringify(error)]) {
        assert.notInclude(text, "12345678")
        assert.notInclude(text, "87654321")
      }
    }
  })
})

describe("loading what the token holds", () => {
  const create = (template: Parameters<Pkcs11.Pkcs11.Service["createObject"]>[1]) =>
    Effect.gen(function*() {
      const pkcs11 = yield* Pkcs11.Pkcs11
      const slots = yield* pkcs11.slots({ tokenPresent: true })
      const infos = yield* Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot))
      const slot = infos.find((info) => info.label === "options")!.slotId
      const session = yield* Effect.acquireRelease(
        pkcs11.openSession(slot, { rw: true }),
        (session) => Effect.ignore(pkcs11.closeSession(session))
      )
      return yield* pkcs11.createObject(session, template)
    }).pipe(Effect.scoped)

  it("a private key whose CKA_EC_POINT is off its curve is KeyNotFound (no-public-key), not a node:crypto throw", async () => {
    const d = Buffer.from(
      Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ format: "jwk" }).d!,
      "base64url"
    )
    for (const [i, point] of [new Uint8Array(64), new Uint8Array(64).fill(7)].entries()) {
      const label = `off-curve-${i}`
      await runtime.runPromise(create({
        class: CKO.PRIVATE_KEY,
        keyType: CKK.EC,
        token: true,
        private: true,
        sign: true,
        label,
        id: Uint8Array.of(0xee, i),
        ecParams: Curve.ecParams("P-256"),
        value: d,
        ecPoint: Curve.encodeEcPoint(Uint8Array.from([4, ...point]))
      }))
      const error = await runtime.runPromise(Effect.flip(HsmJwk.fromHsm({ label })))
      assert.strictEqual(error._tag, "KeyNotFound")
      assert.strictEqual(error._tag === "KeyNotFound" && error.reason, "no-public-key")
    }
  })

  it("a public object with the key's CKA_ID and modulus but another exponent is not its public half", async () => {
    const pair = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    const jwk = pair.privateKey.export({ format: "jwk" })
    const bytes = (name: keyof typeof jwk) => new Uint8Array(Buffer.from(jwk[name] as string, "base64url"))
    const id = Uint8Array.of(0xe0, 0x01)
    await runtime.runPromise(create({
      class: CKO.PUBLIC_KEY,
      keyType: CKK.RSA,
      token: true,
      verify: true,
      label: "other-exponent",
      id,
      modulus: bytes("n"),
      publicExponent: Uint8Array.of(3)
    }))
    await runtime.runPromise(create({
      class: CKO.PRIVATE_KEY,
      keyType: CKK.RSA,
      token: true,
      private: true,
      sign: true,
      label: "other-exponent",
      id,
      modulus: bytes("n"),
      publicExponent: bytes("e"),
      privateExponent: bytes("d"),
      prime1: bytes("p"),
      prime2: bytes("q"),
      exponent1: bytes("dp"),
      exponent2: bytes("dq"),
      coefficient: bytes("qi")
    }))
    const key = await runtime.runPromise(HsmJwk.fromHsm({ id: "e001" }))
    assert.deepStrictEqual({
      n: key.publicJwk.kty === "RSA" && key.publicJwk.n,
      e: key.publicJwk.kty === "RSA" && key.publicJwk.e
    }, {
      n: jwk.n,
      e: jwk.e
    })
  })
})
