import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKK } from "@hsmkey/pkcs11/Constants"
import * as Curve from "@hsmkey/pkcs11/Curve"
import type * as PublicKey from "@hsmkey/pkcs11/internal/publicKey"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Crypto from "node:crypto"
import { InvalidKeyMaterial, UnsupportedKey } from "../HsmError.js"
import * as Algorithms from "./algorithms.js"
import * as Encoding from "./encoding.js"
import * as Options from "./options.js"

/**
 * A private key to import, checked: its type, its public half, and the attributes of the two objects
 * that will hold it.
 */
export interface Importable {
  readonly keyType: Exclude<Algorithms.KeyType, "oct">
  /** The RSA modulus size, or the curve's size in bits. */
  readonly bits: number
  readonly publicJwk: PublicKey.PublicJwk
  readonly publicKey: Attributes
  readonly privateKey: Attributes
}

type Jwk = { readonly [name: string]: unknown }

const invalid = (detail: string) => new InvalidKeyMaterial({ detail })
const unsupported = (detail: string) => new UnsupportedKey({ detail })

const RSA_FIELDS = ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const
const MIN_RSA_BITS = 1024
const MAX_RSA_BITS = 16384

// Maps, not object literals: a JWK's "crv" may be "constructor" or "toString".
const weierstrass: ReadonlyMap<unknown, Curve.Curve> = new Map([["P-256", "P-256"], ["P-384", "P-384"], [
  "P-521",
  "P-521"
]])
const edwards: ReadonlyMap<unknown, Curve.Curve> = new Map([["Ed25519", "Ed25519"], ["Ed448", "Ed448"]])

// PKCS#8 of an Edwards key is a fixed prefix and the seed (RFC 8410).
const edwardsPkcs8: Record<string, string> = {
  Ed25519: "302e020100300506032b657004220420",
  Ed448: "3047020100300506032b6571043b0439"
}

const field = (jwk: Jwk, name: string): Effect.Effect<Uint8Array, InvalidKeyMaterial> => {
  const value = jwk[name]
  if (typeof value !== "string") return Effect.fail(invalid(`the JWK member "${name}" is missing or not a string`))
  const bytes = Encoding.decodeBase64url(value)
  return bytes === undefined || bytes.length === 0
    ? Effect.fail(invalid(`the JWK member "${name}" is not base64url`))
    : Effect.succeed(bytes)
}

const sized = (
  bytes: Uint8Array,
  name: string,
  curve: Curve.Curve
): Effect.Effect<Uint8Array, InvalidKeyMaterial> => {
  const size = Curve.specs[curve].size
  return bytes.length === size
    ? Effect.succeed(bytes)
    : Effect.fail(invalid(`the JWK member "${name}" is ${bytes.length} bytes; ${curve} takes ${size}`))
}

const sizedField = (jwk: Jwk, name: string, curve: Curve.Curve): Effect.Effect<Uint8Array, InvalidKeyMaterial> =>
  Effect.flatMap(field(jwk, name), (bytes) => sized(bytes, name, curve))

const toBigInt = (bytes: Uint8Array): bigint => BigInt(`0x${Buffer.from(bytes).toString("hex") || "0"}`)

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url")

// Big-endian integers as PKCS#11 stores them: no leading zero bytes.
const unsigned = (bytes: Uint8Array): Uint8Array => {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  return bytes.subarray(i)
}

const leftPad = (bytes: Uint8Array, size: number): Uint8Array => {
  const out = new Uint8Array(size)
  out.set(bytes, size - bytes.length)
  return out
}

/** The values of a two-prime RSA private key, big-endian. */
interface RsaValues {
  readonly n: Uint8Array
  readonly e: Uint8Array
  readonly d: Uint8Array
  readonly p: Uint8Array
  readonly q: Uint8Array
  readonly dp: Uint8Array
  readonly dq: Uint8Array
  readonly qi: Uint8Array
}

/**
 * An RSA private key whose values agree with each other: n = p·q, and d, dp, dq, qi the exponents and
 * coefficient of that p, q and e. A key that does not would sign what its own JWK does not verify.
 */
const rsa = (values: RsaValues): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const n = unsigned(values.n)
    const bits = n.length * 8
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      return yield* invalid(`an RSA modulus of ${bits} bits; hsmkey imports ${MIN_RSA_BITS} to ${MAX_RSA_BITS}`)
    }
    // Each value is less than n: a longer one is not this key's, and would cost seconds of arithmetic.
    const longer = RSA_FIELDS.find((name) => unsigned(values[name]).length > n.length)
    if (longer !== undefined) return yield* invalid(`the RSA value "${longer}" is longer than the modulus`)
    const [N, E, D, P, Q, DP, DQ, QI] = RSA_FIELDS.map((name) => toBigInt(values[name]))
    const consistent = E > 1n && E % 2n === 1n && P > 1n && Q > 1n && P * Q === N &&
      D % (P - 1n) === DP && D % (Q - 1n) === DQ && (E * DP) % (P - 1n) === 1n && (E * DQ) % (Q - 1n) === 1n &&
      (QI * Q) % P === 1n
    if (!consistent) return yield* invalid("the RSA private values do not belong together (n, e, d, p, q, dp, dq, qi)")
    const common = { keyType: CKK.RSA, modulus: n, publicExponent: unsigned(values.e) }
    return {
      keyType: "RSA" as const,
      bits: N.toString(2).length,
      publicJwk: { kty: "RSA", n: b64(n), e: b64(unsigned(values.e)) },
      publicKey: common,
      privateKey: {
        ...common,
        privateExponent: unsigned(values.d),
        prime1: unsigned(values.p),
        prime2: unsigned(values.q),
        exponent1: unsigned(values.dp),
        exponent2: unsigned(values.dq),
        coefficient: unsigned(values.qi)
      }
    } satisfies Importable
  })

/**
 * An EC private key (`d` of the curve's size) whose public point, when given, is the one its scalar makes.
 * node:crypto never sees the key itself: Node 20 aborts the process (SIGABRT) on some malformed EC keys,
 * such as a P-256 JWK or PKCS#8 whose `d` is 33 bytes.
 */
const ec = (
  curve: Curve.Curve,
  d: Uint8Array,
  point: Uint8Array | undefined
): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const spec = Curve.specs[curve]
    const derived = yield* Effect.try({
      try: () => {
        const ecdh = Crypto.createECDH(spec.nodeName)
        ecdh.setPrivateKey(Buffer.from(d))
        return new Uint8Array(ecdh.getPublicKey())
      },
      catch: () => invalid(`"d" is not a private key of ${curve}`)
    })
    if (point !== undefined && !Buffer.from(point).equals(derived)) {
      return yield* invalid(`the public point is not the one "d" makes on ${curve}`)
    }
    return {
      keyType: curve,
      bits: Algorithms.curveBits[curve],
      publicJwk: {
        kty: "EC",
        crv: curve,
        x: b64(derived.subarray(1, 1 + spec.size)),
        y: b64(derived.subarray(1 + spec.size))
      } as PublicKey.PublicJwk,
      publicKey: { keyType: CKK.EC, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(derived) },
      privateKey: { keyType: CKK.EC, ecParams: Curve.ecParams(curve), value: d }
    } satisfies Importable
  })

/** An Edwards private key (its seed) whose public key, when given, is the one its seed makes. */
const okp = (
  curve: Curve.Curve,
  d: Uint8Array,
  x: Uint8Array | undefined
): Effect.Effect<Importable, InvalidKeyMaterial> =>
  Effect.gen(function*() {
    const derived = yield* Effect.try({
      try: () => {
        const der = Buffer.concat([Buffer.from(edwardsPkcs8[curve], "hex"), d])
        const key = Crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" })
        return Buffer.from(Crypto.createPublicKey(key).export({ format: "jwk" }).x ?? "", "base64url")
      },
      catch: () => invalid(`"d" is not a private key of ${curve}`)
    })
    if (x !== undefined && !derived.equals(x)) {
      return yield* invalid(`the public key is not the one "d" makes on ${curve}`)
    }
    return {
      keyType: curve,
      bits: Algorithms.curveBits[curve],
      publicJwk: { kty: "OKP", crv: curve, x: b64(derived) } as PublicKey.PublicJwk,
      publicKey: { keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), ecPoint: Curve.encodeEcPoint(derived) },
      privateKey: { keyType: CKK.EC_EDWARDS, ecParams: Curve.ecParams(curve), value: d }
    } satisfies Importable
  })

const fromJwk = (jwk: Jwk): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (jwk.d === undefined) return Effect.fail(invalid("the JWK has no private part (\"d\")"))
  switch (jwk.kty) {
    case "RSA":
      return jwk.oth !== undefined
        ? Effect.fail(unsupported("multi-prime RSA keys (\"oth\") are not supported"))
        : Effect.flatMap(
          Effect.forEach(RSA_FIELDS, (name) => field(jwk, name)),
          ([n, e, d, p, q, dp, dq, qi]) => rsa({ n, e, d, p, q, dp, dq, qi })
        )
    case "EC": {
      const curve = weierstrass.get(jwk.crv)
      if (curve === undefined) {
        return Effect.fail(unsupported(`EC curve ${Options.shown(jwk.crv)} is not supported`))
      }
      return Effect.gen(function*() {
        const x = yield* sizedField(jwk, "x", curve)
        const y = yield* sizedField(jwk, "y", curve)
        const d = yield* sizedField(jwk, "d", curve)
        return yield* ec(curve, d, Uint8Array.from([4, ...x, ...y]))
      })
    }
    case "OKP": {
      const curve = edwards.get(jwk.crv)
      if (curve === undefined) {
        return Effect.fail(unsupported(
          `OKP curve ${Options.shown(jwk.crv)} is not supported (hsmkey signs with Ed25519 and Ed448)`
        ))
      }
      return Effect.gen(function*() {
        const x = yield* sizedField(jwk, "x", curve)
        const d = yield* sizedField(jwk, "d", curve)
        return yield* okp(curve, d, x)
      })
    }
    case "oct":
      return Effect.fail(unsupported("an oct JWK is a secret: import it with HsmSecret.importSecret"))
    default:
      return typeof jwk.kty === "string"
        ? Effect.fail(unsupported(`${Options.shown(jwk.kty)} keys are not supported`))
        : Effect.fail(invalid("the JWK has no \"kty\""))
  }
}

// DER, as far as private keys need it: definite lengths, low tag numbers.
const SEQUENCE = 0x30
const INTEGER = 0x02
const OCTET_STRING = 0x04
const BIT_STRING = 0x03
const OBJECT_IDENTIFIER = 0x06
const NULL = 0x05

interface Element {
  readonly tag: number
  /** The whole element, header and content. */
  readonly encoded: Uint8Array
  readonly content: Uint8Array
}

const readElement = (bytes: Uint8Array, offset: number): Element | undefined => {
  if (offset + 2 > bytes.length || (bytes[offset] & 0x1f) === 0x1f) return undefined
  let length = bytes[offset + 1]
  let start = offset + 2
  if (length >= 0x80) {
    const count = length & 0x7f
    if (count === 0 || count > 4 || start + count > bytes.length) return undefined
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i]
    start += count
  }
  const end = start + length
  return end > bytes.length
    ? undefined
    : { tag: bytes[offset], encoded: bytes.subarray(offset, end), content: bytes.subarray(start, end) }
}

/** The elements that fill `bytes` exactly, or `undefined`. */
const elements = (bytes: Uint8Array): ReadonlyArray<Element> | undefined => {
  const out: Array<Element> = []
  for (let offset = 0; offset < bytes.length;) {
    const element = readElement(bytes, offset)
    if (element === undefined) return undefined
    out.push(element)
    offset += element.encoded.length
  }
  return out
}

/** The elements of the one constructed element of `tag` that `bytes` is, or `undefined`. */
const sequenceOf = (bytes: Uint8Array, tag = SEQUENCE): ReadonlyArray<Element> | undefined => {
  const outer = readElement(bytes, 0)
  return outer === undefined || outer.tag !== tag || outer.encoded.length !== bytes.length
    ? undefined
    : elements(outer.content)
}

/** The content of the one primitive element of `tag` that `bytes` is, or `undefined`. */
const primitiveOf = (bytes: Uint8Array, tag: number): Uint8Array | undefined => {
  const element = readElement(bytes, 0)
  return element === undefined || element.tag !== tag || element.encoded.length !== bytes.length
    ? undefined
    : element.content
}

/** A non-negative INTEGER, big-endian; `undefined` for a negative one or another element. */
const natural = (element: Element | undefined): Uint8Array | undefined =>
  element === undefined || element.tag !== INTEGER || element.content.length === 0 ||
    (element.content[0] & 0x80) !== 0
    ? undefined
    : unsigned(element.content)

const isSmall = (element: Element | undefined, value: number): boolean => {
  const bytes = natural(element)
  return bytes !== undefined && bytes.length === 1 && bytes[0] === value
}

const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** An OBJECT IDENTIFIER in dotted form, for messages. */
const dotted = (content: Uint8Array): string => {
  const arcs: Array<bigint> = []
  let arc = 0n
  for (const byte of content) {
    arc = (arc << 7n) | BigInt(byte & 0x7f)
    if ((byte & 0x80) === 0) {
      arcs.push(arc)
      arc = 0n
    }
  }
  if (arcs.length === 0) return "(empty)"
  const first = arcs[0] < 80n ? arcs[0] / 40n : 2n
  return [first, arcs[0] - first * 40n, ...arcs.slice(1)].join(".")
}

// PKCS#8 algorithm identifiers, as DER OBJECT IDENTIFIER elements.
const RSA_ENCRYPTION = "06092a864886f70d010101"
const EC_PUBLIC_KEY = "06072a8648ce3d0201"
const otherAlgorithms: ReadonlyMap<string, string> = new Map([
  ["06092a864886f70d01010a", "rsa-pss"],
  ["06072a8648ce380401", "dsa"],
  ["06092a864886f70d010301", "dh"],
  ["06072a8648ce3e0201", "dh"],
  ["06032b656e", "x25519"],
  ["06032b656f", "x448"]
])
const curveOids: ReadonlyMap<string, Curve.Curve> = new Map(
  Object.values(Curve.specs).map((spec) => [spec.oid, spec.curve] as const)
)

const notDer = (what: string) => invalid(`not ${what}: its DER structure is not one`)

/** PKCS#1 `RSAPrivateKey`: two primes only. */
const fromRsaPrivateKey = (der: Uint8Array): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  const fields = sequenceOf(der)
  if (fields === undefined || fields.length < 9) return Effect.fail(notDer("an RSA private key (PKCS#1)"))
  if (isSmall(fields[0], 1)) return Effect.fail(unsupported("multi-prime RSA keys are not supported"))
  const values = fields.slice(1, 9).map(natural)
  if (!isSmall(fields[0], 0) || fields.length !== 9 || values.some((value) => value === undefined)) {
    return Effect.fail(notDer("an RSA private key (PKCS#1)"))
  }
  const [n, e, d, p, q, dp, dq, qi] = values as ReadonlyArray<Uint8Array>
  return rsa({ n, e, d, p, q, dp, dq, qi })
}

/**
 * SEC 1 `ECPrivateKey`, on the curve its algorithm names or, standing alone, on the curve it names itself.
 * `d` may come without its leading zero bytes, as OpenSSL reads it, but never longer than the curve's size.
 */
const fromEcPrivateKey = (
  der: Uint8Array,
  named: Curve.Curve | undefined
): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> =>
  Effect.gen(function*() {
    const fields = sequenceOf(der)
    if (fields === undefined || fields.length < 2 || fields.length > 4 || !isSmall(fields[0], 1)) {
      return yield* notDer("an EC private key (SEC 1)")
    }
    const [, scalar, ...tagged] = fields
    if (scalar.tag !== OCTET_STRING) return yield* notDer("an EC private key (SEC 1)")
    let curve = named
    let point: Uint8Array | undefined
    let last = 0
    for (const element of tagged) {
      if (element.tag === 0xa0 && last < 1) {
        const own = yield* curveOf(element.content)
        if (curve !== undefined && own !== curve) {
          return yield* invalid(`the EC private key names ${own}, its algorithm ${curve}`)
        }
        curve = own
        last = 1
      } else if (element.tag === 0xa1 && last < 2) {
        const bits = primitiveOf(element.content, BIT_STRING)
        if (bits === undefined || bits[0] !== 0) return yield* notDer("an EC private key (SEC 1)")
        point = bits.subarray(1)
        last = 2
      } else {
        return yield* notDer("an EC private key (SEC 1)")
      }
    }
    if (curve === undefined) return yield* invalid("the EC private key names no curve")
    const size = Curve.specs[curve].size
    const d = unsigned(scalar.content)
    if (d.length > size) return yield* invalid(`"d" is ${d.length} bytes; ${curve} takes ${size}`)
    return yield* ec(curve, leftPad(d, size), point)
  })

/** The named curve of EC parameters: P-256, P-384 or P-521. */
const curveOf = (parameters: Uint8Array): Effect.Effect<Curve.Curve, InvalidKeyMaterial | UnsupportedKey> => {
  const element = readElement(parameters, 0)
  if (element === undefined || element.encoded.length !== parameters.length) {
    return Effect.fail(notDer("EC parameters"))
  }
  if (element.tag !== OBJECT_IDENTIFIER) {
    return Effect.fail(unsupported("EC keys with explicit curve parameters are not supported: use a named curve"))
  }
  const curve = curveOids.get(hexOf(element.encoded))
  return curve !== undefined && Curve.specs[curve].family === "weierstrass"
    ? Effect.succeed(curve)
    : Effect.fail(unsupported(`EC curve ${dotted(element.content)} is not supported (P-256, P-384 and P-521 are)`))
}

/**
 * PKCS#8 `PrivateKeyInfo` (or RFC 5958 `OneAsymmetricKey`), read here rather than by node:crypto, which
 * takes keys it then aborts the process on (a P-256 `d` of 33 bytes).
 */
const fromPkcs8 = (der: Uint8Array): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> =>
  Effect.gen(function*() {
    const fields = sequenceOf(der)
    if (fields === undefined || fields.length < 3 || fields.length > 5) return yield* notDer("a PKCS#8 private key")
    const [version, algorithm, privateKey, ...optional] = fields
    const identifier = algorithm.tag === SEQUENCE ? elements(algorithm.content) : undefined
    if (
      !(isSmall(version, 0) || isSmall(version, 1)) || identifier === undefined || identifier.length < 1 ||
      identifier.length > 2 || identifier[0].tag !== OBJECT_IDENTIFIER || privateKey.tag !== OCTET_STRING ||
      !optional.every((element, i) =>
        (element.tag === 0xa0 || element.tag === 0x81) && (i === 0 || element.tag > optional[i - 1].tag)
      )
    ) {
      return yield* notDer("a PKCS#8 private key")
    }
    const oid = hexOf(identifier[0].encoded)
    const parameters = identifier[1]
    const publicKey = optional.find((element) => element.tag === 0x81)?.content
    if (oid === RSA_ENCRYPTION) {
      if (parameters !== undefined && (parameters.tag !== NULL || parameters.content.length !== 0)) {
        return yield* notDer("a PKCS#8 RSA private key")
      }
      return yield* fromRsaPrivateKey(privateKey.content)
    }
    if (oid === EC_PUBLIC_KEY) {
      if (parameters === undefined) return yield* invalid("the PKCS#8 EC private key names no curve")
      return yield* fromEcPrivateKey(privateKey.content, yield* curveOf(parameters.encoded))
    }
    const curve = curveOids.get(oid)
    if (curve !== undefined && Curve.specs[curve].family === "edwards") {
      const seed = primitiveOf(privateKey.content, OCTET_STRING)
      if (parameters !== undefined || seed === undefined) return yield* notDer(`a PKCS#8 ${curve} private key`)
      if (seed.length !== Curve.specs[curve].size) {
        return yield* invalid(
          `the ${curve} private key is ${seed.length} bytes; ${curve} takes ${Curve.specs[curve].size}`
        )
      }
      if (publicKey !== undefined && publicKey[0] !== 0) return yield* notDer(`a PKCS#8 ${curve} private key`)
      return yield* okp(curve, seed, publicKey?.subarray(1))
    }
    const type = otherAlgorithms.get(oid)
    return yield* unsupported(
      type === undefined
        ? `keys of algorithm ${dotted(identifier[0].content)} are not supported`
        : unsupportedTypes[type]
    )
  })

const unsupportedTypes: Record<string, string> = {
  "rsa-pss": "RSASSA-PSS keys (id-RSASSA-PSS) are not supported: import the key as plain RSA (rsaEncryption)",
  "dsa": "DSA keys are not supported",
  "dh": "Diffie-Hellman keys are not supported",
  "x25519": "X25519 keys agree on keys and cannot sign",
  "x448": "X448 keys agree on keys and cannot sign"
}

/**
 * A node:crypto private key, read from its PKCS#8 export: never from its JWK export or its
 * `asymmetricKeyDetails`, which abort the process on a malformed EC key node:crypto took.
 */
const fromKeyObject = (key: Crypto.KeyObject): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (key.type !== "private") return Effect.fail(invalid(`a ${key.type} KeyObject is not a private key`))
  const type = key.asymmetricKeyType ?? "unknown"
  if (Object.hasOwn(unsupportedTypes, type)) return Effect.fail(unsupported(unsupportedTypes[type]))
  return Effect.flatMap(
    Effect.try({
      try: () => new Uint8Array(key.export({ format: "der", type: "pkcs8" })),
      catch: (error) =>
        invalid(`the KeyObject cannot be read: ${error instanceof Error ? error.message : String(error)}`)
    }),
    fromPkcs8
  )
}

// The PEM labels of private keys: PKCS#8, SEC 1 and PKCS#1, and encrypted PKCS#8 to refuse clearly.
const pemLabels = ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] as const

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/u

/**
 * The first private key block of PEM text. One search per label, so that text of any size is read in
 * linear time.
 */
const fromPem = (text: string): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  let found: { readonly label: (typeof pemLabels)[number]; readonly start: number } | undefined
  for (const label of pemLabels) {
    const start = text.indexOf(`-----BEGIN ${label}-----`)
    if (start >= 0 && (found === undefined || start < found.start)) found = { label, start }
  }
  if (found === undefined) {
    return Effect.fail(invalid(
      text.includes("-----BEGIN ")
        ? "the PEM text holds no private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
        : "text that is not PEM: give a private key as PEM text, DER bytes, a JWK or a KeyObject"
    ))
  }
  const begin = found.start + `-----BEGIN ${found.label}-----`.length
  const end = text.indexOf(`-----END ${found.label}-----`, begin)
  if (end < 0) return Effect.fail(invalid(`the PEM block ${found.label} has no END line`))
  const body = text.slice(begin, end)
  if (found.label === "ENCRYPTED PRIVATE KEY" || body.includes(":")) {
    return Effect.fail(invalid("the private key is encrypted: decrypt it first (openssl pkey)"))
  }
  const base64 = body.replace(/\s/gu, "")
  if (!BASE64.test(base64)) return Effect.fail(invalid(`the PEM block ${found.label} is not base64`))
  const der = new Uint8Array(Buffer.from(base64, "base64"))
  return found.label === "PRIVATE KEY"
    ? fromPkcs8(der)
    : found.label === "EC PRIVATE KEY"
    ? fromEcPrivateKey(der, undefined)
    : fromRsaPrivateKey(der)
}

/**
 * Checks private key material before anything is created on the token: its shape and sizes per key type
 * (before node:crypto sees it), its type (RSA, P-256/384/521, Ed25519, Ed448), and that its public half is
 * the one its private half makes.
 */
export const parse = (input: unknown): Effect.Effect<Importable, InvalidKeyMaterial | UnsupportedKey> => {
  if (input instanceof Crypto.KeyObject) return fromKeyObject(input)
  if (typeof input === "string") return fromPem(input)
  if (input instanceof Uint8Array) return fromPkcs8(input)
  if (!Predicate.isRecord(input)) {
    return Effect.fail(invalid("expected a private JWK, PKCS#8 (PEM or DER) or a KeyObject"))
  }
  return fromJwk(input)
}
