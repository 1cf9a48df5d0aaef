/**
 * Properties of everything that parses JOSE from a caller or a peer: compact and JSON JWS in `Jws.verify`
 * (jose's path, a JWK set, Ed448 through node:crypto, an HMAC checked in the token), compact and JSON JWE in
 * `Jwe.decrypt`, JOSE headers given to signing, the claims `Jwt.sign` signs and `Jwt.verify` checks,
 * `expiresIn` / `notBefore`, and algorithm names in options. Each runs 1,000 times: the answer is a success
 * that is correct (a valid token round-trips, a mutated one never verifies) or a typed failure, never a
 * defect, an interruption or a hang. The counterexamples found are kept below as named regressions.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Cause, Duration, Effect, Exit, FastCheck as fc, Layer, ManagedRuntime, Redacted } from "effect"
import { HsmJwk, HsmSecret, Jwe, Jwks, Jws, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"
import { inspect, isDeepStrictEqual } from "node:util"

const userPin = Redacted.make("jose-parsing-4711")
const emulator = MemoryPkcs11.layer({ tokens: [{ label: "jose-parsing", userPin }] })
const poolLayer = SessionPool.layer({ tokenLabel: "jose-parsing", userPin, maxSessions: 2 }).pipe(
  Layer.provide(emulator)
)

const runs = 1000
const propertyTimeout = 60_000

interface Keys {
  readonly ec: HsmJwk.HsmJwk
  readonly ed25519: HsmJwk.HsmJwk
  readonly ed448: HsmJwk.HsmJwk
  readonly hmac: HsmSecret.HsmSecretKey
  readonly rsa: HsmJwk.HsmJwk
}

let runtime: ManagedRuntime.ManagedRuntime<SessionPool.SessionPool, unknown>
let keys: Keys

beforeAll(async () => {
  runtime = ManagedRuntime.make(poolLayer)
  keys = await runtime.runPromise(Effect.all({
    ec: HsmJwk.generate({ type: "P-256", label: "ec" }),
    ed25519: HsmJwk.generate({ type: "Ed25519", label: "ed25519" }),
    ed448: HsmJwk.generate({ type: "Ed448", label: "ed448" }),
    hmac: HsmSecret.generate({ alg: "HS256", label: "hmac" }),
    rsa: HsmJwk.generate({ type: "RSA-2048", label: "rsa", use: "enc" })
  }))
}, 60_000)

afterAll(() => runtime.dispose())

type Outcome =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly error: { readonly _tag: string; readonly [key: string]: unknown } }

/**
 * Runs an effect to its outcome: a success or a typed failure. A defect, an interruption, a hang (10 s) or a
 * failure that is not a tagged error throws, which fails the property with the input that caused it.
 */
const outcome = async <A, E>(effect: Effect.Effect<A, E, SessionPool.SessionPool>): Promise<Outcome> => {
  const exit = await runtime.runPromiseExit(Effect.timeout(effect, "10 seconds"))
  if (Exit.isSuccess(exit)) return { _tag: "Success", value: exit.value }
  if (Cause.isFailType(exit.cause)) {
    const error: unknown = exit.cause.error
    if (typeof error === "object" && error !== null && "_tag" in error && error._tag !== "TimeoutException") {
      return { _tag: "Failure", error: error as { readonly _tag: string } }
    }
  }
  throw new Error(`neither a success nor a typed failure: ${Cause.pretty(exit.cause)}`)
}

/** The outcome's failure tag, which must be one of `tags`; `undefined` for a success. */
const failureTag = (result: Outcome, tags: ReadonlyArray<string>): string | undefined => {
  if (result._tag === "Success") return undefined
  if (!tags.includes(result.error._tag)) {
    throw new Error(`failed with ${result.error._tag} (${String(result.error.message)}), not one of ${tags.join(", ")}`)
  }
  return result.error._tag
}

/** The success's value: only called once `failureTag` said the outcome is no failure. */
const valueOf = <A>(result: Outcome): A => {
  if (result._tag !== "Success") throw new Error(`not a success: ${result.error._tag}`)
  return result.value as A
}

/** Whether two headers have the same members, whatever their prototypes (jose returns a copy). */
const sameMembers = (a: unknown, b: unknown): boolean =>
  typeof a === "object" && a !== null && typeof b === "object" && b !== null
    ? isDeepStrictEqual({ ...a }, { ...b })
    : a === b

const check = (condition: boolean, what: string): void => {
  if (!condition) throw new Error(what)
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const show = (u: unknown): string => inspect(u, { depth: 4, breakLength: Infinity })
/** A JSON value as it reads back: what a token carries. */
const asJson = (u: unknown): unknown => JSON.parse(JSON.stringify(u))
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value) ?? "").toString("base64url")
const bytesOf = (u: unknown): Buffer | undefined =>
  typeof u === "string" && /^[\w-]*$/u.test(u) ? Buffer.from(u, "base64url") : undefined

const property = <Ts extends [unknown, ...Array<unknown>]>(
  name: string,
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => Promise<void>
): void =>
  it(name, async () => {
    await fc.assert(fc.asyncProperty<Ts>(...arbitraries, predicate), { numRuns: runs })
  }, propertyTimeout)

// Header parameter names a parser may trip over: registered ones, Object.prototype's, and the empty name.
const headerName = fc.oneof(
  fc.constantFrom(
    "alg",
    "kid",
    "typ",
    "cty",
    "crit",
    "b64",
    "jku",
    "jwk",
    "x5c",
    "x5t#S256",
    "enc",
    "zip",
    "toString",
    "constructor",
    "__proto__",
    "hasOwnProperty",
    "valueOf",
    "",
    "ext"
  ),
  fc.string({ maxLength: 6 })
)

/** A JSON object as a peer sends it: JSON values only, with own members of any name (`__proto__` too). */
const jsonObject = (value: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 2 })) =>
  fc.array(fc.tuple(headerName, value), { maxLength: 5 }).map((entries) => Object.fromEntries(entries))

/** A value a JavaScript caller can hand over: JSON and worse. */
const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.anything({ maxDepth: 2, withNullPrototype: true, withObjectString: true }),
  fc.constantFrom(undefined, Number.NaN, Infinity, -0, () => 1, new Date(0), Symbol("s"), 5n)
)

const base64urlChar = fc.constantFrom(
  ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
  "=",
  ".",
  "+"
)

const segment = fc.oneof(
  jsonObject().map(b64),
  fc.jsonValue({ maxDepth: 2 }).map(b64),
  fc.string({ unit: base64urlChar, maxLength: 40 }),
  fc.string({ maxLength: 12 })
)

/** The token itself, or the token with one change: a character replaced, text inserted or cut, a part swapped. */
const mutated = (token: string): fc.Arbitrary<string> => {
  const parts = token.split(".")
  return fc.oneof(
    fc.constant(token),
    fc.tuple(fc.nat(token.length - 1), fc.oneof(base64urlChar, fc.string({ minLength: 1, maxLength: 1 }))).map((
      [i, c]
    ) => token.slice(0, i) + c + token.slice(i + 1)),
    fc.tuple(fc.nat(token.length), fc.string({ minLength: 1, maxLength: 4 })).map(([i, s]) =>
      token.slice(0, i) + s + token.slice(i)
    ),
    fc.tuple(fc.nat(token.length - 1), fc.integer({ min: 1, max: 8 })).map(([i, n]) =>
      token.slice(0, i) + token.slice(i + n)
    ),
    fc.tuple(fc.nat(parts.length - 1), segment).map(([i, s]) => parts.map((p, j) => j === i ? s : p).join(".")),
    fc.array(fc.oneof(segment, fc.constantFrom(...parts)), { maxLength: 7 }).map((ps) => ps.join("."))
  )
}

type Kind = "ec" | "jwks" | "ed448" | "hmac"
const kinds: ReadonlyArray<Kind> = ["ec", "jwks", "ed448", "hmac"]

const signer = (kind: Kind) =>
  kind === "ec" ? keys.ec : kind === "jwks" ? keys.ed25519 : kind === "ed448" ? keys.ed448 : keys.hmac

const verifier = (kind: Kind) => kind === "jwks" ? Jwks.fromKeys([keys.ec, keys.ed25519, keys.rsa]) : signer(kind)

const verifyAny = (jws: unknown, kind: Kind) => {
  const key = verifier(kind)
  return HsmSecret.isHsmSecretKey(key) ? Jws.verify(jws as never, key) : Jws.verify(jws as never, key)
}

describe("JWS parsing", () => {
  const compact: Record<Kind, string> = { ec: "", jwks: "", ed448: "", hmac: "" }
  const flattened: Record<Kind, Jws.FlattenedJws | undefined> = {
    ec: undefined,
    jwks: undefined,
    ed448: undefined,
    hmac: undefined
  }
  beforeAll(async () => {
    for (const kind of kinds) {
      compact[kind] = await runtime.runPromise(Jws.sign(`payload-${kind}`, signer(kind)))
      flattened[kind] = await runtime.runPromise(
        Jws.signFlattened(`payload-${kind}`, signer(kind), { unprotectedHeader: { u: kind } })
      )
    }
  })

  property(
    "compact: a mutated token never verifies, the token itself always does, and every failure is VerificationFailed",
    [fc.constantFrom(...kinds).chain((kind) => fc.tuple(fc.constant(kind), mutated(compact[kind])))],
    async ([kind, candidate]) => {
      const original = compact[kind]
      const result = await outcome(verifyAny(candidate, kind))
      const [header, payload] = candidate.split(".")
      const [originalHeader, originalPayload] = original.split(".")
      if (failureTag(result, ["VerificationFailed"]) !== undefined) {
        check(candidate !== original, `the valid ${kind} token did not verify`)
        return
      }
      // Only the signature part may differ (base64url's unused trailing bits), never what is signed.
      check(header === originalHeader && payload === originalPayload, `a changed token verified: ${candidate}`)
      const verified = valueOf<Jws.Verified>(result)
      check(text(verified.payload) === `payload-${kind}`, "the payload read is not the one signed")
    }
  )

  property(
    "compact: arbitrary text and values are VerificationFailed",
    [
      fc.constantFrom(...kinds),
      fc.oneof(fc.string(), fc.array(segment, { maxLength: 5 }).map((s) => s.join(".")), anyValue)
    ],
    async (kind, candidate) => {
      check(failureTag(await outcome(verifyAny(candidate, kind)), ["VerificationFailed"]) !== undefined, "verified")
    }
  )

  const entry = (original: Jws.FlattenedJws) =>
    fc.record({
      protected: fc.oneof(fc.constant(original.protected), segment, anyValue),
      header: fc.oneof(fc.constant(original.header), jsonObject(), anyValue),
      signature: fc.oneof(fc.constant(original.signature), mutated(original.signature), anyValue)
    }, { requiredKeys: [] })

  const jsonJws = (original: Jws.FlattenedJws) => {
    const payload = fc.oneof(fc.constant(original.payload), mutated(original.payload), anyValue)
    return fc.oneof(
      fc.tuple(payload, entry(original)).map(([p, e]) => ({ payload: p, ...e })),
      fc.tuple(payload, fc.array(entry(original), { maxLength: 3 })).map(([p, signatures]) => ({
        payload: p,
        signatures
      })),
      fc.tuple(payload, fc.array(fc.oneof(entry(original), anyValue), { maxLength: 3 })).map(([p, signatures]) => ({
        payload: p,
        signatures
      }))
    )
  }

  property(
    "flattened and general: verifies only with the signed payload and an unchanged signature, else VerificationFailed",
    [fc.constantFrom(...kinds).chain((kind) => fc.tuple(fc.constant(kind), jsonJws(flattened[kind]!)))],
    async ([kind, candidate]) => {
      const original = flattened[kind]!
      const result = await outcome(verifyAny(candidate, kind))
      if (failureTag(result, ["VerificationFailed"]) !== undefined) return
      const verified = valueOf<Jws.Verified>(result)
      check(candidate.payload === original.payload, `verified with another payload: ${show(candidate.payload)}`)
      check(text(verified.payload) === `payload-${kind}`, "the payload read is not the one signed")
      const entries: ReadonlyArray<unknown> = "signatures" in candidate ? candidate.signatures : [candidate]
      const intact = entries.filter((e) =>
        typeof e === "object" && e !== null && "protected" in e && e.protected === original.protected &&
        "signature" in e && bytesOf(e.signature)?.equals(bytesOf(original.signature)!) === true
      )
      check(intact.length > 0, "verified with no intact signature")
      const headers = intact.map((e) => (e as { readonly header?: unknown }).header)
      check(headers.some((h) => sameMembers(h, verified.unprotectedHeader)), "another unprotected header returned")
    }
  )

  property(
    "flattened: an unprotected header of any other names (toString, __proto__, ...) verifies and reads back as sent",
    [fc.constantFrom(...kinds), jsonObject()],
    async (kind, extra) => {
      const original = flattened[kind]!
      const protectedNames = Object.keys(JSON.parse(Buffer.from(original.protected, "base64url").toString()))
      const header = Object.fromEntries(
        Object.entries(extra).filter(([name]) => !protectedNames.includes(name) && name !== "crit" && name !== "b64")
      )
      const sent = JSON.parse(JSON.stringify({ ...original, header }))
      const verified = valueOf<Jws.Verified>(await outcome(verifyAny(sent, kind)))
      check(sameMembers(verified.unprotectedHeader, sent.header), "another unprotected header returned")
    }
  )
})

describe("JWE parsing", () => {
  let compact = ""
  let compactCbc = ""
  let general: jose.GeneralJWE | undefined
  beforeAll(async () => {
    compact = await runtime.runPromise(Jwe.encrypt("secret", keys.rsa, { enc: "A128GCM" }))
    compactCbc = await runtime.runPromise(Jwe.encrypt("secret", keys.rsa, { enc: "A128CBC-HS256" }))
    general = await new jose.GeneralEncrypt(new TextEncoder().encode("secret"))
      .setProtectedHeader({ enc: "A128GCM" })
      .setSharedUnprotectedHeader({ s: 1 })
      .setAdditionalAuthenticatedData(new TextEncoder().encode("aad"))
      .addRecipient(keys.rsa.publicKey)
      .setUnprotectedHeader({ alg: "RSA-OAEP-256", kid: keys.rsa.kid })
      .encrypt()
  })

  const decrypt = (jwe: unknown) => Jwe.decrypt(jwe as never, keys.rsa)
  // Failures that depend on the header, which is not secret; every other failure is DecryptionFailed.
  const jweTags = ["DecryptionFailed", "UnsupportedAlgorithm", "InvalidHeader"]

  property(
    "compact: only the JWE itself decrypts; with its header intact every failure is DecryptionFailed",
    [fc.boolean().chain((cbc) => mutated(cbc ? compactCbc : compact).map((c) => [cbc ? compactCbc : compact, c]))],
    async ([original, candidate]) => {
      const result = await outcome(decrypt(candidate))
      const parts = candidate.split(".")
      const originals = original.split(".")
      const tag = failureTag(result, jweTags)
      if (tag !== undefined) {
        check(candidate !== original, "the JWE did not decrypt")
        if (parts.length === 5 && parts[0] === originals[0]) {
          check(tag === "DecryptionFailed", `with its header intact, a JWE failed with ${tag}`)
        }
        return
      }
      check(parts[0] === originals[0], "decrypted under another protected header")
      for (let i = 1; i < 5; i++) {
        check(bytesOf(parts[i])?.equals(bytesOf(originals[i])!) === true, `decrypted with part ${i} changed`)
      }
      check(text(valueOf<Jwe.Decrypted>(result).plaintext) === "secret", "another plaintext")
    }
  )

  const recipient = (original: jose.GeneralJWE["recipients"][number]) =>
    fc.record({
      header: fc.oneof(fc.constant(original.header), jsonObject(), anyValue),
      encrypted_key: fc.oneof(fc.constant(original.encrypted_key), mutated(original.encrypted_key!), anyValue)
    }, { requiredKeys: [] })

  const jsonJwe = (original: jose.GeneralJWE) => {
    const field = (value: string) => fc.oneof(fc.constant(value), fc.constant(value), mutated(value), anyValue)
    const shared = fc.record({
      protected: field(original.protected!),
      unprotected: fc.oneof(fc.constant(original.unprotected), jsonObject(), anyValue),
      iv: field(original.iv!),
      ciphertext: field(original.ciphertext),
      tag: field(original.tag!),
      aad: field(original.aad!)
    }, { requiredKeys: [] })
    const only = original.recipients[0]
    return fc.oneof(
      fc.tuple(shared, fc.array(fc.oneof(recipient(only), anyValue), { maxLength: 3 })).map(([s, recipients]) => ({
        ...s,
        recipients
      })),
      fc.tuple(shared, recipient(only)).map(([s, r]) => ({ ...s, ...r }))
    )
  }

  property(
    "flattened and general: decrypts only with every protected part intact, else a typed failure",
    [fc.constant(0).chain(() => jsonJwe(general!))],
    async (candidate) => {
      const original = general!
      const result = await outcome(decrypt(candidate))
      if (failureTag(result, jweTags) !== undefined) return
      const c = candidate as Record<string, unknown>
      check(
        c.protected === original.protected && c.aad === original.aad,
        "decrypted with a changed protected header or AAD"
      )
      for (const name of ["iv", "ciphertext", "tag"] as const) {
        check(bytesOf(c[name])?.equals(bytesOf(original[name])!) === true, `decrypted with ${name} changed`)
      }
      const decrypted = valueOf<Jwe.Decrypted>(result)
      check(text(decrypted.plaintext) === "secret", "another plaintext")
      check(text(decrypted.additionalAuthenticatedData ?? new Uint8Array()) === "aad", "another AAD")
    }
  )

  property(
    "flattened and general: shared and recipient headers of any other names (toString, __proto__, ...) decrypt",
    [jsonObject(), jsonObject(), fc.boolean()],
    async (shared, own, flat) => {
      const original = general!
      const taken = ["alg", "enc", "kid", "s", "crit", "zip"]
      const fresh = (h: Record<string, unknown>, others: Record<string, unknown>) =>
        Object.fromEntries(Object.entries(h).filter(([name]) => !taken.includes(name) && !Object.hasOwn(others, name)))
      const unprotected = { ...original.unprotected, ...fresh(shared, {}) }
      const recipient = original.recipients[0]
      const header = { ...recipient.header, ...fresh(own, unprotected) }
      const jwe = flat
        ? { ...original, recipients: undefined, unprotected, header, encrypted_key: recipient.encrypted_key }
        : { ...original, unprotected, recipients: [{ ...recipient, header }] }
      const result = await outcome(decrypt(JSON.parse(JSON.stringify(jwe))))
      check(text(valueOf<Jwe.Decrypted>(result).plaintext) === "secret", "another plaintext")
    }
  )

  property(
    "arbitrary text and values are a typed failure",
    [fc.oneof(fc.string(), fc.array(segment, { maxLength: 6 }).map((s) => s.join(".")), anyValue)],
    async (candidate) => {
      check(failureTag(await outcome(decrypt(candidate)), jweTags) !== undefined, "decrypted")
    }
  )
})

describe("JOSE headers given to signing", () => {
  const header = fc.oneof(
    { weight: 4, arbitrary: jsonObject(fc.oneof(fc.jsonValue({ maxDepth: 2 }), anyValue)) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: anyValue }
  )
  // A crit list drawn from the header's own names and others, to reach every branch of its rules.
  const withCrit = fc.tuple(header, fc.option(fc.array(headerName, { maxLength: 3 })), fc.boolean()).map((
    [h, crit, asIs]
  ) => typeof h === "object" && h !== null && crit !== null ? { ...h, crit: asIs ? crit : [...new Set(crit)] } : h)

  property(
    "protected, unprotected and crit: signed headers verify with jose as given, anything else is InvalidHeader",
    [withCrit, header, fc.boolean()],
    async (protectedHeader, unprotectedHeader, compactForm) => {
      const options = { protectedHeader, unprotectedHeader } as never
      const result = compactForm
        ? await outcome(Jws.sign("x", keys.ec, { protectedHeader } as never))
        : await outcome(Jws.signFlattened("x", keys.ec, options))
      if (failureTag(result, ["InvalidHeader"]) !== undefined) return
      const given = (protectedHeader ?? {}) as Jws.Header
      const crit = Array.isArray(given.crit) ? Object.fromEntries(given.crit.map((name) => [name, true])) : undefined
      const signed = valueOf<string | Jws.FlattenedJws>(result)
      const [protectedText, payload, signature] = typeof signed === "string" ? signed.split(".") : []
      // As a peer receives it: JSON text.
      const verified = await jose.flattenedVerify(
        typeof signed === "string"
          ? { protected: protectedText, payload, signature }
          : asJson(signed) as jose.FlattenedJWSInput,
        keys.ec.publicKey,
        { crit }
      ).catch((error) => {
        throw new Error(`signed a JWS jose refuses: ${String(error)}`)
      })
      const unprotected = compactForm ? {} : (unprotectedHeader ?? {}) as Jws.Header
      const kid = Object.hasOwn(unprotected, "kid") ? {} : { kid: keys.ec.kid }
      check(
        isDeepStrictEqual(verified.protectedHeader, asJson({ alg: "ES256", ...kid, ...given })),
        `another protected header: ${show(verified.protectedHeader)}`
      )
      check(isDeepStrictEqual(verified.unprotectedHeader ?? {}, asJson(unprotected)), "another unprotected header")
    }
  )
})

describe("claims", () => {
  const claimName = fc.oneof(
    fc.constantFrom("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "__proto__", "constructor", "toString"),
    fc.string({ maxLength: 6 })
  )

  property(
    "Jwt.sign: claims that are a JSON object round-trip through Jwt.verify, anything else is InvalidClaims",
    [fc.oneof(
      fc.array(fc.tuple(claimName, fc.jsonValue({ maxDepth: 3 })), { maxLength: 6 }).map((e) => Object.fromEntries(e)),
      fc.array(fc.tuple(claimName, anyValue), { maxLength: 4 }).map((e) => Object.fromEntries(e)),
      anyValue
    )],
    async (claims) => {
      const result = await outcome(Effect.flatMap(Jwt.sign(claims, keys.ec), (jwt) => Jwt.verify(jwt, keys.ec)))
      const tag = failureTag(result, ["InvalidClaims", "VerificationFailed"])
      if (tag === "VerificationFailed") {
        // Signed, then refused: only claims that make the token invalid by their meaning (exp in the past).
        const code = result._tag === "Failure" ? String(result.error.code) : ""
        check(["ERR_JWT_EXPIRED", "ERR_JWT_CLAIM_VALIDATION_FAILED"].includes(code), `refused: ${code}`)
        return
      }
      if (tag !== undefined) return
      const { payload } = valueOf<Jwt.Verified>(result)
      const { iat, ...rest } = payload
      check(typeof iat === "number", "no iat")
      const { iat: _, ...given } = claims as Record<string, unknown>
      check(isDeepStrictEqual(rest, asJson(given)), `the claims read are not those signed: ${show(rest)}`)
    }
  )

  const now = () => Math.floor(Date.now() / 1000)
  const time = fc.integer({ min: -100, max: 100 }).map((k) => ({ offset: k * 100 + 50 }))
  const registered = fc.record({
    iss: fc.oneof(fc.constantFrom("i", "j"), fc.jsonValue({ maxDepth: 1 })),
    sub: fc.oneof(fc.constantFrom("s", "t"), fc.jsonValue({ maxDepth: 1 })),
    aud: fc.oneof(fc.constantFrom("a", "b"), fc.array(fc.constantFrom("a", "b", "c")), fc.jsonValue({ maxDepth: 1 })),
    exp: fc.oneof(time, fc.jsonValue({ maxDepth: 1 })),
    nbf: fc.oneof(time, fc.jsonValue({ maxDepth: 1 })),
    iat: fc.oneof(time, fc.jsonValue({ maxDepth: 1 })),
    other: fc.jsonValue({ maxDepth: 2 })
  }, { requiredKeys: [] })

  const tolerances: Record<string, number> = { "5s": 5, "1 minute": 60, "2 hours": 7200 }
  const verifyOptions = fc.record({
    issuer: fc.oneof(fc.constantFrom("i", ["i", "j"]), anyValue),
    audience: fc.oneof(fc.constantFrom("a", ["b", "c"]), anyValue),
    subject: fc.oneof(fc.constant("s"), anyValue),
    typ: fc.oneof(fc.constantFrom("JWT", "application/jwt", "other"), anyValue),
    requiredClaims: fc.oneof(fc.array(fc.constantFrom("iss", "sub", "other")), anyValue),
    clockTolerance: fc.oneof(fc.constantFrom(0, 30, ...Object.keys(tolerances)), anyValue),
    maxTokenAge: fc.oneof(fc.constantFrom(0, 1000, "1 hour"), anyValue),
    algorithms: fc.oneof(fc.constantFrom(["ES256"], ["RS256"], []), anyValue)
  }, { requiredKeys: [] })

  const isList = (u: unknown) => Array.isArray(u) && u.every((s) => typeof s === "string")
  // jose's own reading of a time span (lib/jwt_claims_set.js), negative spans refused.
  const timeSpan =
    /^(\+)? ?(\d+|\d+\.\d+) ?(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|years?|yrs?|y)(?: (from now))?$/iu
  const isTimeSpan = (text: string) => {
    const match = timeSpan.exec(text)
    return match !== null && !(match[1] !== undefined && match[4] !== undefined)
  }
  const isDuration = (u: unknown) =>
    (typeof u === "string" && isTimeSpan(u)) || (typeof u === "number" && u >= 0 && u < Infinity)
  const wellTyped = (o: Record<string, unknown>): boolean =>
    (o.issuer === undefined || typeof o.issuer === "string" || isList(o.issuer)) &&
    (o.audience === undefined || typeof o.audience === "string" || isList(o.audience)) &&
    (o.subject === undefined || typeof o.subject === "string") &&
    (o.typ === undefined || typeof o.typ === "string") &&
    (o.requiredClaims === undefined || isList(o.requiredClaims)) &&
    (o.clockTolerance === undefined || isDuration(o.clockTolerance)) &&
    (o.maxTokenAge === undefined || isDuration(o.maxTokenAge)) &&
    (o.algorithms === undefined || isList(o.algorithms))

  property(
    "Jwt.verify: any claims a peer signs and any options: a success only when every check holds",
    [registered, verifyOptions],
    async (generated, options) => {
      const t = now()
      const claims = Object.fromEntries(
        Object.entries(generated).map((
          [name, value]
        ) => [
          name,
          typeof value === "object" && value !== null && "offset" in value ? t + Number(value.offset) : value
        ])
      )
      // Signed as raw JWS: a peer is bound by none of Jwt.sign's rules.
      const jwt = await runtime.runPromise(
        Jws.sign(JSON.stringify(claims), keys.ec, { protectedHeader: { typ: "JWT" } })
      )
      const result = await outcome(Jwt.verify(jwt, keys.ec, options as never))
      const tag = failureTag(result, ["VerificationFailed", "InvalidOptions"])
      const typed = wellTyped(options)
      check((tag === "InvalidOptions") === !typed, `${String(tag)} for options ${show(options)}`)
      if (tag !== undefined) return
      const { payload } = valueOf<Jwt.Verified>(result)
      check(isDeepStrictEqual(payload, asJson(claims)), "the claims read are not those signed")
      const tolerance = typeof options.clockTolerance === "number"
        ? options.clockTolerance
        : typeof options.clockTolerance === "string"
        ? tolerances[options.clockTolerance] ?? Infinity
        : 0
      const slack = 5
      const when = Math.floor(Date.now() / 1000)
      if (claims.exp !== undefined) {
        check(typeof claims.exp === "number" && claims.exp > t - tolerance - slack, "expired")
      }
      if (claims.nbf !== undefined) {
        check(typeof claims.nbf === "number" && claims.nbf <= when + tolerance + slack, "nbf")
      }
      const list = (u: unknown) => typeof u === "string" ? [u] : u as ReadonlyArray<string>
      if (options.issuer !== undefined) check(list(options.issuer).includes(claims.iss as string), "issuer")
      if (options.subject !== undefined) check(claims.sub === options.subject, "subject")
      if (options.audience !== undefined) {
        const aud = typeof claims.aud === "string" ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : []
        check(list(options.audience).some((a) => aud.includes(a)), "audience")
      }
      for (const name of list(options.requiredClaims ?? [])) check(Object.hasOwn(claims, name), `no ${name}`)
      if (options.algorithms !== undefined) check(list(options.algorithms).includes("ES256"), "algorithm not allowed")
      if (options.typ !== undefined) check(["JWT", "application/jwt"].includes(options.typ as string), "typ")
    }
  )
})

describe("durations of Jwt.sign", () => {
  const units = ["nanos", "micros", "millis", "seconds", "minutes", "hours", "days", "weeks", "second", "years", "s"]
  const duration = fc.oneof(
    fc.double(),
    fc.integer(),
    fc.bigInt(),
    fc.tuple(fc.double(), fc.double()),
    fc.tuple(fc.integer({ min: -5, max: 5 }), fc.integer({ min: -1_000_000_000, max: 1_000_000_000 })),
    fc.tuple(
      fc.oneof(fc.double({ min: -100, max: 1e6 }), fc.integer({ min: -100, max: 1e6 })),
      fc.constantFrom(...units)
    )
      .map(([amount, unit]) => `${amount} ${unit}`),
    fc.tuple(fc.constantFrom("", " ", "-", "+", "1", "1e3", "0x10"), fc.constantFrom(...units, "")).map(([a, u]) =>
      `${a} ${u}`
    ),
    fc.nat().map((n) => Duration.millis(n)),
    fc.constant(Duration.infinity),
    fc.string({ maxLength: 10 }),
    anyValue
  )

  // Whether an input names a finite duration of at least zero, read apart from Duration.decode, which
  // reads NaN and negative amounts as zero.
  const nonNegative = (input: unknown): boolean => {
    if (Duration.isDuration(input)) return Duration.isFinite(input)
    if (typeof input === "number") return input >= 0 && input < Infinity
    if (typeof input === "bigint") return input >= 0n
    if (Array.isArray(input)) {
      return input.length === 2 && input.every((n) => typeof n === "number" && n >= 0 && n < Infinity)
    }
    if (typeof input === "string") {
      const match = /^(\d+(?:\.\d+)?)\s+(nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$/u.exec(input)
      return match !== null
    }
    return false
  }

  // The whole seconds an input stands for, or `undefined` when it must be refused.
  const expectedSeconds = (input: unknown): number | undefined => {
    if (!nonNegative(input)) return undefined
    try {
      const millis = Duration.toMillis(Duration.decode(input as Duration.DurationInput))
      return Number.isFinite(millis) ? Math.floor(millis / 1000) : undefined
    } catch {
      return undefined
    }
  }

  property(
    "expiresIn and notBefore: a finite, non-negative duration gives whole seconds from iat, anything else InvalidOptions",
    [duration, fc.boolean()],
    async (input, expiry) => {
      const options = expiry ? { expiresIn: input as never } : { notBefore: input as never }
      const result = await outcome(Jwt.sign({}, keys.ec, options))
      const tag = failureTag(result, ["InvalidOptions"])
      if (input === undefined) {
        check(tag === undefined, "an absent duration was refused")
        return
      }
      const expected = expectedSeconds(input)
      if (tag !== undefined) {
        check(expected === undefined, `refused a valid duration ${show(input)}`)
        return
      }
      check(expected !== undefined, `signed with an invalid duration ${show(input)}`)
      const claims = jose.decodeJwt(valueOf<string>(result))
      const value = expiry ? claims.exp : claims.nbf
      check(value === (claims.iat as number) + expected!, `${show(value)} is not iat + ${expected} for ${show(input)}`)
    }
  )
})

describe("algorithm names in options", () => {
  const signing = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256"]
  const keyManagement = ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5", "dir", "A128KW"]
  const contents = ["A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"]
  const name = fc.oneof(
    fc.constantFrom(...signing, ...keyManagement, ...contents),
    fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "none", "", "es256"),
    fc.string({ maxLength: 8 }),
    anyValue
  )
  let jws = ""
  let jwe = ""
  beforeAll(async () => {
    jws = await runtime.runPromise(Jws.sign("x", keys.ec))
    jwe = await runtime.runPromise(Jwe.encrypt("secret", keys.rsa, { alg: "RSA-OAEP-256", enc: "A128GCM" }))
  })
  const list = (u: unknown, inList: boolean) => inList ? [u] : u

  property(
    "sign, verify, encrypt and decrypt: a name is used only when it is the algorithm's own, else a typed refusal",
    [name, name, fc.boolean()],
    async (alg, enc, inList) => {
      const signed = await outcome(Jws.sign("x", keys.ec, { alg } as never))
      const signTag = failureTag(signed, ["UnsupportedAlgorithm", "AlgorithmMismatch", "InvalidOptions"])
      check(
        (signTag === undefined) === (alg === "ES256" || alg === undefined),
        `Jws.sign with alg ${show(alg)}: ${signTag}`
      )
      if (typeof alg !== "string" && alg !== undefined) check(signTag === "InvalidOptions", "not InvalidOptions")

      const algorithms = list(alg, inList)
      const verified = await outcome(Jws.verify(jws, keys.ec, { algorithms } as never))
      const verifyTag = failureTag(verified, ["VerificationFailed", "InvalidOptions"])
      const allowed = algorithms === undefined || (Array.isArray(algorithms) && algorithms.includes("ES256"))
      const wellTyped = algorithms === undefined ||
        (Array.isArray(algorithms) && algorithms.every((a) => typeof a === "string"))
      check((verifyTag === undefined) === (allowed && wellTyped), `Jws.verify with algorithms ${show(algorithms)}`)
      check((verifyTag === "InvalidOptions") === !wellTyped, `Jws.verify InvalidOptions for ${show(algorithms)}`)

      const encrypted = await outcome(Jwe.encrypt("secret", keys.rsa, { alg, enc } as never))
      const encryptTag = failureTag(encrypted, ["UnsupportedAlgorithm", "AlgorithmMismatch", "InvalidOptions"])
      const encrypts = (alg === undefined || alg === "RSA-OAEP" || alg === "RSA-OAEP-256") &&
        contents.includes(enc as string)
      check((encryptTag === undefined) === encrypts, `Jwe.encrypt with ${show(alg)} / ${show(enc)}: ${encryptTag}`)
      if (encryptTag === undefined) {
        const header = jose.decodeProtectedHeader(valueOf<string>(encrypted))
        check(header.alg === (alg ?? keys.rsa.alg) && header.enc === enc, "encrypted under other algorithms")
      }

      const options = { algorithms: list(alg, inList), contentEncryptionAlgorithms: list(enc, !inList) }
      const decrypted = await outcome(Jwe.decrypt(jwe, keys.rsa, options as never))
      const decryptTag = failureTag(decrypted, ["UnsupportedAlgorithm", "InvalidOptions"])
      const lists = (u: unknown) => u === undefined || (Array.isArray(u) && u.every((a) => typeof a === "string"))
      const accepts = (u: unknown, value: string) => u === undefined || (Array.isArray(u) && u.includes(value))
      const decrypts = lists(options.algorithms) && lists(options.contentEncryptionAlgorithms) &&
        accepts(options.algorithms, "RSA-OAEP-256") && accepts(options.contentEncryptionAlgorithms, "A128GCM")
      check((decryptTag === undefined) === decrypts, `Jwe.decrypt with ${show(options)}: ${decryptTag}`)
      check(
        (decryptTag === "InvalidOptions") ===
          !(lists(options.algorithms) && lists(options.contentEncryptionAlgorithms)),
        "Jwe.decrypt InvalidOptions"
      )
    }
  )
})

describe("counterexamples found by the properties", () => {
  it("expiresIn [-5e-324, 0]: a [seconds, nanos] pair or a bigint with a negative part is InvalidOptions, not exp == iat", async () => {
    for (const input of [[-5e-324, 0], [0, -1], [-5, 0], [0, -5e9], -5n, [5, Number.NaN], [1e300, 0]]) {
      for (const options of [{ expiresIn: input }, { notBefore: input }]) {
        const result = await outcome(Jwt.sign({}, keys.ec, options as never))
        assert.strictEqual(failureTag(result, ["InvalidOptions"]), "InvalidOptions", show(options))
      }
    }
    const jwt = valueOf<string>(await outcome(Jwt.sign({}, keys.ec, { expiresIn: [90, 5e8] })))
    const claims = jose.decodeJwt(jwt)
    assert.strictEqual(claims.exp, (claims.iat as number) + 90)
  })

  it("Jwt.verify { algorithms: 5n } and Jws.verify { algorithms: \"RS256\" }: InvalidOptions (a TypeError, a mismatch)", async () => {
    const jwt = valueOf<string>(await outcome(Jwt.sign({}, keys.ec)))
    for (const options of [{ algorithms: 5n }, { algorithms: "RS256" }]) {
      assert.strictEqual(
        failureTag(await outcome(Jwt.verify(jwt, keys.ec, options as never)), ["InvalidOptions"]),
        "InvalidOptions"
      )
      assert.strictEqual(
        failureTag(await outcome(Jws.verify(jwt, keys.ec, options as never)), ["InvalidOptions"]),
        "InvalidOptions"
      )
    }
  })

  it("JWE recipient header {\"__proto__\": []}: a parameter no other header has decrypts (`in` saw the prototype)", async () => {
    const original = await new jose.GeneralEncrypt(new TextEncoder().encode("secret"))
      .setProtectedHeader({ enc: "A128GCM" })
      .addRecipient(keys.rsa.publicKey)
      .setUnprotectedHeader({ alg: "RSA-OAEP-256", kid: keys.rsa.kid })
      .encrypt()
    const recipient = original.recipients[0]
    const header = JSON.parse(`{"alg":"RSA-OAEP-256","kid":"${keys.rsa.kid}","__proto__":[]}`)
    for (
      const jwe of [{ ...original, recipients: [{ ...recipient, header }] }, {
        protected: original.protected,
        iv: original.iv,
        ciphertext: original.ciphertext,
        tag: original.tag,
        encrypted_key: recipient.encrypted_key,
        header
      }]
    ) {
      const decrypted = valueOf<Jwe.Decrypted>(await outcome(Jwe.decrypt(jwe as Jwe.GeneralJwe, keys.rsa)))
      assert.strictEqual(text(decrypted.plaintext), "secret")
    }
  })

  // Also of the oracle: jose returns a copy of the unprotected header, with Object's prototype.
  it("unprotected header Object.create(null): a flattened JWS with it verifies on every path", async () => {
    for (const key of [keys.ec, keys.ed448, keys.hmac]) {
      const flattened = valueOf<Jws.FlattenedJws>(await outcome(Jws.signFlattened("x", key)))
      const header = Object.assign(Object.create(null), { u: 1 })
      const jws = { ...flattened, header }
      const verified = valueOf<Jws.Verified>(
        await outcome(HsmSecret.isHsmSecretKey(key) ? Jws.verify(jws, key) : Jws.verify(jws, key))
      )
      assert.deepStrictEqual({ ...verified.unprotectedHeader }, { u: 1 })
    }
  })

  // A counterexample of the property's first oracle, not of hsmkey: the flattened JWS holds the caller's own
  // header object, and -0 reads back as 0 once the JWS is sent as JSON.
  it("unprotected header {\"\": -0}: the flattened JWS verifies once sent as JSON", async () => {
    const flattened = valueOf<Jws.FlattenedJws>(
      await outcome(Jws.signFlattened("x", keys.ec, { unprotectedHeader: { "": -0 } }))
    )
    const verified = valueOf<Jws.Verified>(await outcome(Jws.verify(asJson(flattened) as Jws.FlattenedJws, keys.ec)))
    assert.deepStrictEqual(verified.unprotectedHeader, { "": 0 })
  })
})
