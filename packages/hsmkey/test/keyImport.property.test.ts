/**
 * Key material from outside, as JavaScript or a file can hand it over: JWKs with a member changed, of the
 * wrong type or named after Object.prototype; PEM and PKCS#8 DER truncated or garbled; KeyObjects of every
 * kind; HMAC secrets of every length. Each import is a correct key (the token signs what its public JWK
 * verifies, and an input left intact gives the input's public key) or a typed failure: never a defect, an
 * interruption, a hang, nor an abort of this process (node:crypto aborts on some malformed EC keys it was
 * allowed to see). Properties run 1,000 times each on the emulator; the cases they found are kept below as
 * named regressions.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Cause, Effect, Exit, FastCheck, Layer, ManagedRuntime, Redacted } from "effect"
import { HsmJwk, HsmSecret, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"

const numRuns = 1000
const userPin = Redacted.make("key-import-pin")
const runtime = ManagedRuntime.make(
  SessionPool.layer({ tokenLabel: "import", userPin, maxSessions: 2 }).pipe(
    Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "import", userPin }] }))
  )
)
afterAll(() => runtime.dispose())

type Outcome<A> = { readonly _tag: "Success"; readonly value: A } | { readonly _tag: "Failure"; readonly tag: string }

/** Runs an effect to its end: a success, or the tag of a typed failure. Anything else throws. */
const outcome = async <A, E>(effect: Effect.Effect<A, E, SessionPool.SessionPool>): Promise<Outcome<A>> => {
  const exit = await runtime.runPromiseExit(
    effect.pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => ({ _tag: "Hang" as const }) }))
  )
  if (Exit.isSuccess(exit)) return { _tag: "Success", value: exit.value }
  if (Cause.isFailType(exit.cause)) {
    const error: unknown = exit.cause.error
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string" && tag !== "Hang") return { _tag: "Failure", tag }
  }
  throw new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
}

let sequence = 0
const fresh = () => {
  sequence++
  return { label: `import-${sequence}`, id: Crypto.randomBytes(8).toString("hex") }
}

const importKey = (key: unknown) => outcome(HsmJwk.importPrivate({ ...fresh(), key: key as HsmJwk.PrivateKeyInput }))

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url")

/** The public members of a JWK, as RFC 7638 names them. */
const publicPart = (jwk: { readonly [name: string]: unknown }) =>
  jwk.kty === "RSA"
    ? { kty: jwk.kty, n: jwk.n, e: jwk.e }
    : jwk.kty === "EC"
    ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }
    : { kty: jwk.kty, crv: jwk.crv, x: jwk.x }

const hashes: Record<string, string | null> = { RS256: "sha256", ES256: "sha256", ES384: "sha384", ES512: "sha512" }

/**
 * An imported key is correct when the token signs what its published public key verifies, checked by
 * node:crypto alone (jose has no Ed448).
 */
const signsWhatItPublishes = async (key: HsmJwk.HsmJwk) => {
  const signed = await outcome(Jws.sign("probe", key))
  assert.strictEqual(signed._tag, "Success", `${key} does not sign`)
  if (signed._tag !== "Success") return
  const [header, payload, signature] = signed.value.split(".")
  const verified = Crypto.verify(
    hashes[key.alg] ?? null,
    Buffer.from(`${header}.${payload}`),
    { key: key.publicKey, dsaEncoding: "ieee-p1363" },
    Buffer.from(signature, "base64url")
  )
  assert.isTrue(verified, `${key}: its signature does not verify under its public key`)
}

interface Fixture {
  readonly name: string
  readonly privateKey: Crypto.KeyObject
  readonly jwk: Crypto.JsonWebKey
  readonly pkcs8: Uint8Array
  readonly pems: ReadonlyArray<string>
}

const fixture = (name: string, privateKey: Crypto.KeyObject): Fixture => {
  const pkcs8 = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }))
  const pem = (type: "pkcs8" | "sec1" | "pkcs1") => privateKey.export({ format: "pem", type } as never).toString()
  const type = privateKey.asymmetricKeyType
  return {
    name,
    privateKey,
    jwk: type === "dsa" || type === "rsa-pss" ? {} : privateKey.export({ format: "jwk" }),
    pkcs8,
    pems: [pem("pkcs8"), ...(type === "ec" ? [pem("sec1")] : type === "rsa" ? [pem("pkcs1")] : [])]
  }
}

// One RSA-2048 key for the whole file: keys are made once, never per run.
const supported: ReadonlyArray<Fixture> = [
  fixture("RSA-2048", Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey),
  fixture("P-256", Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey),
  fixture("P-384", Crypto.generateKeyPairSync("ec", { namedCurve: "secp384r1" }).privateKey),
  fixture("P-521", Crypto.generateKeyPairSync("ec", { namedCurve: "secp521r1" }).privateKey),
  fixture("Ed25519", Crypto.generateKeyPairSync("ed25519").privateKey),
  fixture("Ed448", Crypto.generateKeyPairSync("ed448").privateKey)
]
const unsupported: ReadonlyArray<Fixture> = [
  fixture("RSA-PSS", Crypto.generateKeyPairSync("rsa-pss", { modulusLength: 1024 }).privateKey),
  fixture("DSA", Crypto.generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 }).privateKey),
  fixture("X25519", Crypto.generateKeyPairSync("x25519").privateKey),
  fixture("X448", Crypto.generateKeyPairSync("x448").privateKey),
  fixture("secp256k1", Crypto.generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey)
]

/** Values of every kind, including those no JSON holds: objects without a prototype, symbols, bigints. */
const anything = FastCheck.anything({
  maxDepth: 2,
  withNullPrototype: true,
  withTypedArray: true,
  withBigInt: true,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withDate: true,
  withSparseArray: true
})
const oddValue = FastCheck.oneof(
  anything,
  FastCheck.constant(Symbol("odd")),
  FastCheck.constant(Object.create(null) as unknown),
  FastCheck.constant({ toString: () => 1 } as unknown),
  FastCheck.constantFrom("P-256", "P-384", "P-521", "Ed25519", "Ed448", "X25519", "RSA", "EC", "OKP", "oct"),
  FastCheck.constantFrom("constructor", "__proto__", "toString", "hasOwnProperty", "")
)

/** Sets a member as JSON.parse does: an own property, even for "__proto__". */
const withMember = (jwk: object, name: string, value: unknown): object => {
  const copy = { ...jwk }
  Object.defineProperty(copy, name, { value, enumerable: true, writable: true, configurable: true })
  return copy
}

/** Bytes near valid ones: truncated, extended, one byte changed, bytes inserted or a length byte changed. */
const mutatedBytes = (bytes: Uint8Array) =>
  FastCheck.oneof(
    FastCheck.nat({ max: bytes.length }).map((n) => bytes.slice(0, n)),
    FastCheck.uint8Array({ minLength: 1, maxLength: 8 }).map((extra) => Uint8Array.from([...bytes, ...extra])),
    FastCheck.tuple(FastCheck.nat({ max: bytes.length - 1 }), FastCheck.integer({ min: 0, max: 255 }))
      .map(([i, value]) => Uint8Array.from(bytes, (byte, j) => (j === i ? value : byte))),
    FastCheck.tuple(FastCheck.nat({ max: bytes.length }), FastCheck.uint8Array({ minLength: 1, maxLength: 4 }))
      .map(([i, extra]) => Uint8Array.from([...bytes.subarray(0, i), ...extra, ...bytes.subarray(i)])),
    // Among the first bytes: the headers and lengths of the outer elements.
    FastCheck.tuple(FastCheck.nat({ max: Math.min(bytes.length - 1, 40) }), FastCheck.integer({ min: 0, max: 255 }))
      .map(([i, value]) => Uint8Array.from(bytes, (byte, j) => (j === i ? value : byte)))
  )

// DER, to build PKCS#8 of any shape.
const length = (n: number) => (n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff])
const tlv = (tag: number, content: ReadonlyArray<number> | Uint8Array) =>
  Uint8Array.from([tag, ...length(content.length), ...content])
const concat = (...parts: ReadonlyArray<Uint8Array>) => Uint8Array.from(parts.flatMap((part) => [...part]))
const hex = (text: string) => Uint8Array.from(Buffer.from(text, "hex"))
const integer = (bytes: Uint8Array) => tlv(0x02, bytes.length === 0 || bytes[0] >= 0x80 ? [0, ...bytes] : bytes)

const EC_PUBLIC_KEY = hex("06072a8648ce3d0201")
const curveOids = {
  "P-256": hex("06082a8648ce3d030107"),
  "P-384": hex("06052b81040022"),
  "P-521": hex("06052b81040023"),
  "secp256k1": hex("06052b8104000a")
}

/** PKCS#8 of an EC key with a scalar and public point of any size, on a curve or another. */
const ecPkcs8 = (oid: Uint8Array, d: Uint8Array, point: Uint8Array | undefined) =>
  tlv(
    0x30,
    concat(
      tlv(0x02, [0]),
      tlv(0x30, concat(EC_PUBLIC_KEY, oid)),
      tlv(
        0x04,
        tlv(
          0x30,
          concat(
            tlv(0x02, [1]),
            tlv(0x04, d),
            point === undefined ? new Uint8Array(0) : tlv(0xa1, tlv(0x03, [0, ...point]))
          )
        )
      )
    )
  )

/** PKCS#8 of an RSA key from any integers. */
const rsaPkcs8 = (values: ReadonlyArray<Uint8Array>) =>
  tlv(
    0x30,
    concat(
      tlv(0x02, [0]),
      tlv(0x30, concat(hex("06092a864886f70d010101"), hex("0500"))),
      tlv(0x04, tlv(0x30, concat(tlv(0x02, [0]), ...values.map(integer))))
    )
  )

/** PKCS#8 of an Edwards key with a seed of any size. */
const edwardsPkcs8 = (oid: Uint8Array, seed: Uint8Array) =>
  tlv(0x30, concat(tlv(0x02, [0]), tlv(0x30, oid), tlv(0x04, tlv(0x04, seed))))

const rsaValues = (() => {
  const jwk = supported[0].jwk
  return (["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const).map((name) =>
    new Uint8Array(Buffer.from(jwk[name] as string, "base64url"))
  )
})()

const scalar = FastCheck.oneof(
  FastCheck.uint8Array({ maxLength: 80 }),
  FastCheck.integer({ min: 0, max: 80 }).map((n) => new Uint8Array(n).fill(0xff)),
  FastCheck.integer({ min: 0, max: 80 }).map((n) => new Uint8Array(n)),
  FastCheck.integer({ min: 1, max: 80 }).map((n) => Uint8Array.from({ length: n }, (_, i) => (i === 0 ? 0 : 0x7f)))
)

/** PKCS#8 of every shape: the fixtures' own, mutated, and built with values of any size. */
const pkcs8 = FastCheck.oneof(
  FastCheck.constantFrom(...supported, ...unsupported).map((f) => f.pkcs8),
  FastCheck.constantFrom(...supported, ...unsupported).chain((f) => mutatedBytes(f.pkcs8)),
  FastCheck.tuple(
    FastCheck.oneof(FastCheck.constantFrom(...Object.values(curveOids)), FastCheck.uint8Array({ maxLength: 12 })),
    scalar,
    FastCheck.option(FastCheck.uint8Array({ maxLength: 140 }), { nil: undefined })
  ).map(([oid, d, point]) => ecPkcs8(oid, d, point)),
  FastCheck.tuple(
    FastCheck.nat({ max: 7 }),
    FastCheck.oneof(
      FastCheck.uint8Array({ maxLength: 300 }),
      FastCheck.integer({ min: 0, max: 2200 }).map((n) => new Uint8Array(n).fill(0xc3))
    )
  ).map(([i, value]) => rsaPkcs8(rsaValues.map((v, j) => (j === i ? value : v)))),
  FastCheck.tuple(FastCheck.constantFrom(hex("06032b6570"), hex("06032b6571")), FastCheck.uint8Array({ maxLength: 70 }))
    .map(([oid, seed]) => edwardsPkcs8(oid, seed)),
  FastCheck.uint8Array({ maxLength: 200 })
)

const armour = (label: string, der: Uint8Array) =>
  `-----BEGIN ${label}-----\n${
    Buffer.from(der).toString("base64").replace(/.{64}/gu, "$&\n")
  }\n-----END ${label}-----\n`

describe("importPrivate: JWKs", () => {
  it(
    "a valid private JWK with one member changed, mistyped or named after Object.prototype: the key itself, or a typed error",
    async () => {
      const member = (f: Fixture) =>
        FastCheck.constantFrom(
          ...Object.keys(f.jwk),
          "kty",
          "crv",
          "d",
          "oth",
          "kid",
          "__proto__",
          "constructor",
          "toString"
        )
      const change = (value: unknown) =>
        FastCheck.oneof(
          FastCheck.constant({ _tag: "delete" as const }),
          oddValue.map((to) => ({ _tag: "set" as const, to })),
          FastCheck.uint8Array({ maxLength: 140 }).map((bytes) => ({ _tag: "set" as const, to: b64(bytes) })),
          ...(typeof value === "string" && value.length > 0
            ? [
              FastCheck.nat({ max: value.length - 1 }).map((n) => ({ _tag: "set" as const, to: value.slice(0, n) })),
              FastCheck.tuple(
                FastCheck.nat({ max: value.length - 1 }),
                FastCheck.constantFrom("A", "_", "-", "=", "+", "/", " ")
              )
                .map(([i, c]) => ({ _tag: "set" as const, to: value.slice(0, i) + c + value.slice(i + 1) })),
              // The same integer with a leading zero byte: still the key.
              FastCheck.constant({
                _tag: "set" as const,
                to: b64(Uint8Array.from([0, ...Buffer.from(value, "base64url")]))
              })
            ]
            : [])
        )
      const input = FastCheck.constantFrom(...supported).chain((f) =>
        FastCheck.tuple(FastCheck.constant(f), member(f), FastCheck.boolean()).chain(([f, name, bare]) =>
          FastCheck.tuple(
            FastCheck.constant(f),
            FastCheck.constant(name),
            change(f.jwk[name as never]),
            FastCheck.constant(bare)
          )
        )
      )
      await FastCheck.assert(
        FastCheck.asyncProperty(input, async ([f, name, change, bare]) => {
          const changed = change._tag === "delete"
            ? Object.fromEntries(Object.entries(f.jwk).filter(([key]) => key !== name))
            : withMember(f.jwk, name, change.to)
          // A JWK without a prototype reads the same.
          const jwk = bare ? Object.assign(Object.create(null), changed) : changed
          const result = await importKey(jwk)
          if (result._tag === "Failure") {
            assert.oneOf(result.tag, ["InvalidKeyMaterial", "UnsupportedKey"])
            return
          }
          assert.deepStrictEqual(publicPart(result.value.publicJwk), publicPart(f.jwk as never), `${f.name} ${name}`)
        }),
        { numRuns }
      )
    },
    60_000
  )

  it("anything given as a key is a typed error", async () => {
    const member = FastCheck.oneof(FastCheck.uint8Array({ maxLength: 140 }).map(b64), oddValue)
    const jwkShaped = FastCheck.record({
      kty: FastCheck.oneof(FastCheck.constantFrom("EC", "OKP", "RSA", "oct"), oddValue),
      crv: oddValue,
      x: member,
      y: member,
      d: member,
      n: member,
      e: member,
      p: member,
      q: member,
      k: member
    }, { requiredKeys: [] })
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.oneof(anything, oddValue, jwkShaped), async (key) => {
        const result = await importKey(key)
        assert.strictEqual(result._tag, "Failure")
        if (result._tag === "Failure") assert.oneOf(result.tag, ["InvalidKeyMaterial", "UnsupportedKey"])
      }),
      { numRuns }
    )
  }, 60_000)
})

describe("importPrivate: PEM, PKCS#8 and KeyObjects", () => {
  it("PEM text, intact, re-armoured, truncated or garbled: the key, or a typed error", async () => {
    const text = FastCheck.constantFrom(...supported, ...unsupported).chain((f) =>
      FastCheck.constantFrom(...f.pems).chain((pem) =>
        FastCheck.oneof(
          FastCheck.constant({ f, pem, intact: true }),
          FastCheck.constantFrom(
            `Bag Attributes\n${pem}`,
            `${pem}\ntrailing text`,
            pem.replace(/\n/gu, "\r\n"),
            `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${pem}`
          ).map((armoured) => ({ f, pem: armoured, intact: true })),
          FastCheck.nat({ max: pem.length }).map((n) => ({ f, pem: pem.slice(0, n), intact: false })),
          FastCheck.tuple(FastCheck.nat({ max: pem.length - 1 }), FastCheck.string({ maxLength: 3 }))
            .map(([i, s]) => ({ f, pem: pem.slice(0, i) + s + pem.slice(i + 1), intact: false })),
          FastCheck.constantFrom(
            "PRIVATE KEY",
            "EC PRIVATE KEY",
            "RSA PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PUBLIC KEY"
          )
            .map((label) => ({ f, pem: pem.replace(/(BEGIN|END) [A-Z ]+-----/gu, `$1 ${label}-----`), intact: false })),
          pkcs8.map((der) => ({ f, pem: armour("PRIVATE KEY", der), intact: false }))
        )
      )
    )
    await FastCheck.assert(
      FastCheck.asyncProperty(text, async ({ f, intact, pem }) => {
        const result = await importKey(pem)
        if (result._tag === "Failure") {
          assert.oneOf(result.tag, ["InvalidKeyMaterial", "UnsupportedKey"])
          assert.isFalse(intact && supported.includes(f), `${f.name} refused: ${result.tag}`)
          return
        }
        if (intact) assert.deepStrictEqual(publicPart(result.value.publicJwk), publicPart(f.jwk as never))
        await signsWhatItPublishes(result.value)
      }),
      { numRuns }
    )
  }, 60_000)

  it("PKCS#8 DER of every shape, scalars and moduli of any size: the key, or a typed error", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(pkcs8, async (der) => {
        const result = await importKey(der)
        if (result._tag === "Failure") {
          assert.oneOf(result.tag, ["InvalidKeyMaterial", "UnsupportedKey", "MechanismUnsupported"])
          const own = supported.find((f) => Buffer.from(f.pkcs8).equals(Buffer.from(der)))
          assert.isUndefined(own, `${own?.name} refused: ${result.tag}`)
          return
        }
        await signsWhatItPublishes(result.value)
      }),
      { numRuns }
    )
  }, 60_000)

  it("KeyObjects of every kind, and of whatever PKCS#8 node:crypto took: the key, or a typed error", async () => {
    const keyObject = FastCheck.oneof(
      FastCheck.constantFrom(...supported, ...unsupported).chain((f) =>
        FastCheck.constantFrom(f.privateKey, Crypto.createPublicKey(f.privateKey))
      ),
      FastCheck.uint8Array({ minLength: 1, maxLength: 80 }).map((bytes) => Crypto.createSecretKey(bytes)),
      pkcs8.map((der) => {
        try {
          return Crypto.createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" })
        } catch {
          return supported[1].privateKey
        }
      })
    )
    await FastCheck.assert(
      FastCheck.asyncProperty(keyObject, async (key) => {
        const result = await importKey(key)
        if (result._tag === "Failure") {
          assert.oneOf(result.tag, ["InvalidKeyMaterial", "UnsupportedKey", "MechanismUnsupported"])
          const own = supported.find((f) => f.privateKey === key)
          assert.isUndefined(own, `${own?.name} refused: ${result.tag}`)
          return
        }
        await signsWhatItPublishes(result.value)
      }),
      { numRuns }
    )
  }, 60_000)
})

describe("importPrivate: named regressions", () => {
  it("a P-256 PKCS#8 whose d is 33 bytes is InvalidKeyMaterial, as DER, PEM or a KeyObject (node:crypto aborted the process reading it)", async () => {
    for (const d of [new Uint8Array(33).fill(0xff), new Uint8Array(40).fill(0x12), new Uint8Array(64).fill(0xff)]) {
      const der = ecPkcs8(curveOids["P-256"], d, undefined)
      const forms = [
        der,
        armour("PRIVATE KEY", der),
        Crypto.createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" })
      ]
      for (const form of forms) {
        const result = await importKey(form)
        assert.deepStrictEqual(result, { _tag: "Failure", tag: "InvalidKeyMaterial" }, `d of ${d.length} bytes`)
      }
    }
    // With a leading zero byte it is the same scalar, as OpenSSL reads it.
    const { d } = supported[1].jwk
    const padded = ecPkcs8(curveOids["P-256"], Uint8Array.from([0, ...Buffer.from(d!, "base64url")]), undefined)
    const result = await importKey(padded)
    assert.strictEqual(result._tag, "Success")
    if (result._tag === "Success") {
      assert.deepStrictEqual(publicPart(result.value.publicJwk), publicPart(supported[1].jwk as never))
    }
  })

  it("an SEC 1 \"EC PRIVATE KEY\" PEM with a 33-byte d is InvalidKeyMaterial (node:crypto aborted on it)", async () => {
    const sec1 = tlv(
      0x30,
      concat(tlv(0x02, [1]), tlv(0x04, new Uint8Array(33).fill(0xff)), tlv(0xa0, curveOids["P-256"]))
    )
    assert.deepStrictEqual(await importKey(armour("EC PRIVATE KEY", sec1)), {
      _tag: "Failure",
      tag: "InvalidKeyMaterial"
    })
  })

  it("a P-256 scalar 01 ‖ 32 zero bytes and a P-521 scalar 00 02 ‖ 66 zero bytes are InvalidKeyMaterial in every form (node:crypto aborts reading their details)", async () => {
    const cases = [
      ["P-256", Uint8Array.from([1, ...new Uint8Array(32)])],
      ["P-521", Uint8Array.from([0, 2, ...new Uint8Array(66)])]
    ] as const
    for (const [curve, d] of cases) {
      const der = ecPkcs8(curveOids[curve], d, undefined)
      const sec1 = tlv(0x30, concat(tlv(0x02, [1]), tlv(0x04, d), tlv(0xa0, curveOids[curve])))
      const forms = [
        der,
        armour("PRIVATE KEY", der),
        armour("EC PRIVATE KEY", sec1),
        Crypto.createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" })
      ]
      for (const form of forms) {
        assert.deepStrictEqual(await importKey(form), { _tag: "Failure", tag: "InvalidKeyMaterial" }, curve)
      }
    }
  })

  it("an SEC 1 key whose public point is compressed is the key (hsmkey's DER reader refused it)", async () => {
    for (const [f, name] of [[supported[1], "prime256v1"], [supported[3], "secp521r1"]] as const) {
      const jwk = f.jwk
      const d = Buffer.from(jwk.d!, "base64url")
      const ecdh = Crypto.createECDH(name)
      ecdh.setPrivateKey(d)
      const compressed = ecdh.getPublicKey(null, "compressed")
      const oid = name === "prime256v1" ? curveOids["P-256"] : curveOids["P-521"]
      const sec1 = tlv(
        0x30,
        concat(tlv(0x02, [1]), tlv(0x04, d), tlv(0xa0, oid), tlv(0xa1, tlv(0x03, [0, ...compressed])))
      )
      const result = await importKey(armour("EC PRIVATE KEY", sec1))
      assert.strictEqual(result._tag, "Success", f.name)
      if (result._tag === "Success") {
        assert.deepStrictEqual(publicPart(result.value.publicJwk), publicPart(jwk as never))
        await signsWhatItPublishes(result.value)
      }
    }
  })

  it("PEM text or DER of more than 64 KiB is InvalidKeyMaterial unread, even around a valid key", async () => {
    const [pem] = supported[1].pems
    for (
      const key of [
        `${pem}${" ".repeat(64 * 1024)}`,
        Uint8Array.from([...supported[1].pkcs8, ...new Uint8Array(64 * 1024)])
      ]
    ) {
      const error = await runtime.runPromise(Effect.flip(HsmJwk.importPrivate({ ...fresh(), key })))
      assert.strictEqual(error._tag, "InvalidKeyMaterial")
      assert.include(error.message, "more than a key takes")
    }
    assert.strictEqual((await importKey(`${pem}${" ".repeat(1024)}`))._tag, "Success")
  })

  it("RSA values longer than the modulus are refused before any arithmetic on them", async () => {
    const huge = new Uint8Array(1 << 20).fill(0xc3)
    const jwk = { ...supported[0].jwk, p: b64(huge), q: b64(huge) }
    const result = await outcome(HsmJwk.importPrivate({ ...fresh(), key: jwk as HsmJwk.PrivateKeyInput }))
    assert.deepStrictEqual(result, { _tag: "Failure", tag: "InvalidKeyMaterial" })
    const detailed = await runtime.runPromise(
      Effect.flip(
        HsmJwk.importPrivate({ ...fresh(), key: { ...supported[0].jwk, d: b64(huge) } as HsmJwk.PrivateKeyInput })
      )
    )
    assert.include(detailed.message, "longer than the modulus")
  })

  it("an RSA modulus of 16 bits or of 17,000 bits is InvalidKeyMaterial, as JWK and as PKCS#8", async () => {
    for (const modulus of [new Uint8Array([0xc3, 0x01]), new Uint8Array(2125).fill(0xc3)]) {
      assert.deepStrictEqual(await importKey(rsaPkcs8(rsaValues.map((v, i) => (i === 0 ? modulus : v)))), {
        _tag: "Failure",
        tag: "InvalidKeyMaterial"
      })
      assert.deepStrictEqual(await importKey({ ...supported[0].jwk, n: b64(modulus) }), {
        _tag: "Failure",
        tag: "InvalidKeyMaterial"
      })
    }
  })

  it("a curve named by an object without a prototype, a symbol or a throwing toString is UnsupportedKey, not a TypeError", async () => {
    for (const crv of [Object.create(null), Symbol("crv"), { toString: () => ({}) }]) {
      for (const base of [supported[1].jwk, supported[4].jwk]) {
        assert.deepStrictEqual(await importKey({ ...base, crv }), { _tag: "Failure", tag: "UnsupportedKey" })
      }
    }
    // As the property found it first: the rest of the JWK does not matter.
    assert.deepStrictEqual(await importKey({ kty: "EC", crv: Object.create(null), d: "" }), {
      _tag: "Failure",
      tag: "UnsupportedKey"
    })
  })

  it("an encrypted PKCS#8 PEM says it is encrypted", async () => {
    const pem = supported[1].privateKey.export({ format: "pem", type: "pkcs8", cipher: "aes-128-cbc", passphrase: "x" })
    const error = await runtime.runPromise(Effect.flip(HsmJwk.importPrivate({ ...fresh(), key: pem.toString() })))
    assert.strictEqual(error._tag, "InvalidKeyMaterial")
    assert.include(error.message, "encrypted")
  })
})

describe("HsmSecret.importSecret", () => {
  const hmac = { HS256: 32, HS384: 48, HS512: 64 } as const
  const algs = Object.keys(hmac) as ReadonlyArray<keyof typeof hmac>

  it(
    "bytes of every length, as bytes, a Buffer or an oct JWK: the secret itself when long enough, else a typed error",
    async () => {
      const input = FastCheck.tuple(
        FastCheck.constantFrom(...algs),
        FastCheck.oneof(FastCheck.nat({ max: 130 }), FastCheck.nat({ max: 2000 })),
        FastCheck.constantFrom("bytes", "buffer", "jwk", "padded", "standard", "kty")
      )
      await FastCheck.assert(
        FastCheck.asyncProperty(input, async ([alg, size, form]) => {
          const secret = new Uint8Array(Crypto.randomBytes(size))
          const k = b64(secret)
          const key = form === "bytes"
            ? secret
            : form === "buffer"
            ? Buffer.from(secret)
            : form === "jwk"
            ? { kty: "oct", k }
            : form === "padded"
            ? { kty: "oct", k: `${k}=` }
            : form === "standard"
            ? { kty: "oct", k: Buffer.from(secret).toString("base64") }
            : { kty: "OCT", k }
          const result = await outcome(HsmSecret.importSecret({ alg, label: fresh().label, key: key as Uint8Array }))
          const wellFormed = form === "bytes" || form === "buffer" || form === "jwk" ||
            (form === "standard" && !/[+/=]/u.test(Buffer.from(secret).toString("base64")))
          if (result._tag === "Failure") {
            assert.strictEqual(result.tag, "InvalidKeyMaterial")
            assert.isFalse(wellFormed && size >= hmac[alg], `${size} bytes as ${form} refused`)
            return
          }
          assert.isTrue(size >= hmac[alg], `${size} bytes for ${alg}`)
          assert.strictEqual(result.value.bits, size * 8)
          const signed = await outcome(Jws.sign("mac", result.value))
          assert.strictEqual(signed._tag, "Success")
          if (signed._tag === "Success") await jose.compactVerify(signed.value, secret)
        }),
        { numRuns }
      )
    },
    60_000
  )

  it("anything else given as a secret is InvalidKeyMaterial", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.oneof(
          anything.filter((u) => !(u instanceof Uint8Array)),
          oddValue,
          FastCheck.record({ kty: oddValue, k: oddValue }, { requiredKeys: [] })
        ),
        async (key) => {
          const result = await outcome(
            HsmSecret.importSecret({ alg: "HS256", label: fresh().label, key: key as never })
          )
          assert.deepStrictEqual(result, { _tag: "Failure", tag: "InvalidKeyMaterial" })
        }
      ),
      { numRuns }
    )
  }, 60_000)
})
