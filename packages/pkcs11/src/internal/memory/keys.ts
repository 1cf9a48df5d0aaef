import { p256, p384, p521 } from "@noble/curves/nist.js"
import * as Crypto from "node:crypto"
import { promisify } from "node:util"
import type * as Attribute from "../../Attribute.js"
import { CKG, CKK, CKM, CKO, CKR } from "../../Constants.js"
import * as Curve from "../../Curve.js"
import type { Mechanism } from "../../Pkcs11.js"
import * as Bytes from "../bytes.js"
import * as PublicKey from "../publicKey.js"

/**
 * A return value the emulator reports, thrown from anywhere in it and turned into a `CryptokiError`
 * named after the call at the driver boundary.
 */
export class Ckr {
  constructor(readonly code: number) {}
}

export const fail = (code: number): never => {
  throw new Ckr(code)
}

/**
 * What the emulator keeps of a key besides its attributes.
 */
export type KeyMaterial =
  | { readonly kind: "rsa"; readonly key: Crypto.KeyObject; readonly bits: number }
  | { readonly kind: "ec"; readonly curve: Curve.Curve; readonly key: Crypto.KeyObject; readonly scalar?: Uint8Array }
  | { readonly kind: "edwards"; readonly curve: Curve.Curve; readonly key: Crypto.KeyObject }
  | { readonly kind: "secret"; readonly bytes: Uint8Array }

const generateKeyPair = promisify(Crypto.generateKeyPair)
const signAsync = promisify(Crypto.sign)
const verifyAsync = promisify(Crypto.verify)

const ecdsa = { "P-256": p256, "P-384": p384, "P-521": p521 } as const

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url")
const unb64 = (text: string | undefined): Uint8Array => new Uint8Array(Buffer.from(text ?? "", "base64url"))

const leftPad = (bytes: Uint8Array, size: number): Uint8Array => {
  if (bytes.length >= size) return bytes.subarray(bytes.length - size)
  const out = new Uint8Array(size)
  out.set(bytes, size - bytes.length)
  return out
}

const hashes: Record<number, { readonly name: string; readonly size: number; readonly mgf: number }> = {
  [CKM.SHA_1]: { name: "sha1", size: 20, mgf: CKG.MGF1_SHA1 },
  [CKM.SHA256]: { name: "sha256", size: 32, mgf: CKG.MGF1_SHA256 },
  [CKM.SHA384]: { name: "sha384", size: 48, mgf: CKG.MGF1_SHA384 },
  [CKM.SHA512]: { name: "sha512", size: 64, mgf: CKG.MGF1_SHA512 }
}

/**
 * Key type and class a signing mechanism needs, and the hash it applies (if any).
 */
interface SignatureMechanism {
  readonly keyType: number
  readonly secret: boolean
  readonly hash?: number
}

const signatureMechanisms: Record<number, SignatureMechanism> = {
  [CKM.RSA_PKCS]: { keyType: CKK.RSA, secret: false },
  [CKM.SHA1_RSA_PKCS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA_1 },
  [CKM.SHA256_RSA_PKCS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA256 },
  [CKM.SHA384_RSA_PKCS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA384 },
  [CKM.SHA512_RSA_PKCS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA512 },
  [CKM.SHA256_RSA_PKCS_PSS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA256 },
  [CKM.SHA384_RSA_PKCS_PSS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA384 },
  [CKM.SHA512_RSA_PKCS_PSS]: { keyType: CKK.RSA, secret: false, hash: CKM.SHA512 },
  [CKM.ECDSA]: { keyType: CKK.EC, secret: false },
  [CKM.EDDSA]: { keyType: CKK.EC_EDWARDS, secret: false },
  [CKM.SHA256_HMAC]: { keyType: CKK.GENERIC_SECRET, secret: true, hash: CKM.SHA256 },
  [CKM.SHA384_HMAC]: { keyType: CKK.GENERIC_SECRET, secret: true, hash: CKM.SHA384 },
  [CKM.SHA512_HMAC]: { keyType: CKK.GENERIC_SECRET, secret: true, hash: CKM.SHA512 }
}

const pssMechanisms: ReadonlySet<number> = new Set([
  CKM.SHA256_RSA_PKCS_PSS,
  CKM.SHA384_RSA_PKCS_PSS,
  CKM.SHA512_RSA_PKCS_PSS
])

const hmacKeyTypes: ReadonlySet<number> = new Set([
  CKK.GENERIC_SECRET,
  CKK.SHA256_HMAC,
  CKK.SHA384_HMAC,
  CKK.SHA512_HMAC
])

/**
 * Every mechanism the emulator implements, with the `CK_MECHANISM_INFO` it reports.
 */
export const mechanismInfos: ReadonlyMap<number, { minKeySize: number; maxKeySize: number; flags: number }> = (() => {
  const sign = 0x800 | 0x2000
  const rsa = { minKeySize: 1024, maxKeySize: 8192 }
  const ec = { minKeySize: 256, maxKeySize: 521 }
  const edwards = { minKeySize: 255, maxKeySize: 448 }
  const hmac = { minKeySize: 1, maxKeySize: 512 }
  return new Map([
    [CKM.RSA_PKCS_KEY_PAIR_GEN, { ...rsa, flags: 0x10000 }],
    [CKM.RSA_PKCS, { ...rsa, flags: sign }],
    [CKM.RSA_PKCS_OAEP, { ...rsa, flags: 0x100 | 0x200 }],
    [CKM.SHA1_RSA_PKCS, { ...rsa, flags: sign }],
    [CKM.SHA256_RSA_PKCS, { ...rsa, flags: sign }],
    [CKM.SHA384_RSA_PKCS, { ...rsa, flags: sign }],
    [CKM.SHA512_RSA_PKCS, { ...rsa, flags: sign }],
    [CKM.SHA256_RSA_PKCS_PSS, { ...rsa, flags: sign }],
    [CKM.SHA384_RSA_PKCS_PSS, { ...rsa, flags: sign }],
    [CKM.SHA512_RSA_PKCS_PSS, { ...rsa, flags: sign }],
    [CKM.EC_KEY_PAIR_GEN, { ...ec, flags: 0x10000 }],
    [CKM.ECDSA, { ...ec, flags: sign }],
    [CKM.EC_EDWARDS_KEY_PAIR_GEN, { ...edwards, flags: 0x10000 }],
    [CKM.EDDSA, { ...edwards, flags: sign }],
    [CKM.GENERIC_SECRET_KEY_GEN, { ...hmac, flags: 0x8000 }],
    [CKM.SHA256_HMAC, { ...hmac, flags: sign }],
    [CKM.SHA384_HMAC, { ...hmac, flags: sign }],
    [CKM.SHA512_HMAC, { ...hmac, flags: sign }]
  ])
})()

const curveOf = (params: Uint8Array | undefined, family: "weierstrass" | "edwards"): Curve.Curve => {
  if (params === undefined) return fail(CKR.TEMPLATE_INCOMPLETE)
  const curve = Curve.fromEcParams(params)
  if (curve === undefined || Curve.specs[curve].family !== family) return fail(CKR.CURVE_NOT_SUPPORTED)
  return curve
}

/**
 * The public attributes of a key, as the token exposes them.
 */
export const publicAttributes = (material: KeyMaterial, ecParams?: Uint8Array): Attribute.Attributes => {
  switch (material.kind) {
    case "rsa": {
      const jwk = material.key.export({ format: "jwk" })
      return {
        modulus: Bytes.unsigned(unb64(jwk.n)),
        publicExponent: Bytes.unsigned(unb64(jwk.e)),
        modulusBits: material.bits
      }
    }
    case "ec":
    case "edwards":
      return { ecParams: ecParams ?? Curve.ecParams(material.curve) }
    case "secret":
      return { valueLen: material.bytes.length }
  }
}

/**
 * The `CKA_EC_POINT` of a public EC or Edwards key: the DER OCTET STRING around the point.
 */
export const ecPointOf = (material: KeyMaterial): Uint8Array | undefined => {
  if (material.kind !== "ec" && material.kind !== "edwards") return undefined
  const publicKey = material.key.type === "public" ? material.key : Crypto.createPublicKey(material.key)
  const jwk = publicKey.export({ format: "jwk" })
  if (material.kind === "edwards") return Curve.encodeEcPoint(unb64(jwk.x))
  const size = Curve.specs[material.curve].size
  return Curve.encodeEcPoint(Uint8Array.from([0x04, ...leftPad(unb64(jwk.x), size), ...leftPad(unb64(jwk.y), size)]))
}

/**
 * Private values the token holds but never shows while the key is sensitive or not extractable.
 */
export const privateAttributes = (material: KeyMaterial): Attribute.Attributes => {
  switch (material.kind) {
    case "rsa": {
      const jwk = material.key.export({ format: "jwk" })
      return {
        privateExponent: Bytes.unsigned(unb64(jwk.d)),
        prime1: Bytes.unsigned(unb64(jwk.p)),
        prime2: Bytes.unsigned(unb64(jwk.q)),
        exponent1: Bytes.unsigned(unb64(jwk.dp)),
        exponent2: Bytes.unsigned(unb64(jwk.dq)),
        coefficient: Bytes.unsigned(unb64(jwk.qi))
      }
    }
    case "ec":
    case "edwards":
      return { value: unb64(material.key.export({ format: "jwk" }).d) }
    case "secret":
      return { value: material.bytes }
  }
}

export interface GeneratedPair {
  readonly publicMaterial: KeyMaterial
  readonly privateMaterial: KeyMaterial
  readonly keyType: number
}

/**
 * Generates a key pair on the threadpool, as `C_GenerateKeyPair` would.
 */
export const generatePair = async (
  mechanism: Mechanism,
  publicTemplate: Attribute.Attributes
): Promise<GeneratedPair> => {
  switch (mechanism.type) {
    case CKM.RSA_PKCS_KEY_PAIR_GEN: {
      const bits = publicTemplate.modulusBits ?? fail(CKR.TEMPLATE_INCOMPLETE)
      if (bits < 1024 || bits > 8192 || bits % 8 !== 0) fail(CKR.KEY_SIZE_RANGE)
      const exponent = publicTemplate.publicExponent === undefined
        ? 65537
        : Number.parseInt(Buffer.from(publicTemplate.publicExponent).toString("hex") || "0", 16)
      if (exponent < 3 || exponent % 2 === 0 || exponent > 0xffffffff) fail(CKR.ATTRIBUTE_VALUE_INVALID)
      const { privateKey, publicKey } = await generateKeyPair("rsa", { modulusLength: bits, publicExponent: exponent })
      return {
        keyType: CKK.RSA,
        publicMaterial: { kind: "rsa", key: publicKey, bits },
        privateMaterial: { kind: "rsa", key: privateKey, bits }
      }
    }
    case CKM.EC_KEY_PAIR_GEN: {
      const curve = curveOf(publicTemplate.ecParams, "weierstrass")
      const { privateKey, publicKey } = await generateKeyPair("ec", { namedCurve: Curve.specs[curve].nodeName })
      return {
        keyType: CKK.EC,
        publicMaterial: { kind: "ec", curve, key: publicKey },
        privateMaterial: { kind: "ec", curve, key: privateKey, scalar: ecScalar(curve, privateKey) }
      }
    }
    case CKM.EC_EDWARDS_KEY_PAIR_GEN: {
      const curve = curveOf(publicTemplate.ecParams, "edwards")
      const { privateKey, publicKey } = curve === "Ed25519"
        ? await generateKeyPair("ed25519")
        : await generateKeyPair("ed448")
      return {
        keyType: CKK.EC_EDWARDS,
        publicMaterial: { kind: "edwards", curve, key: publicKey },
        privateMaterial: { kind: "edwards", curve, key: privateKey }
      }
    }
    default:
      return fail(CKR.MECHANISM_INVALID)
  }
}

/**
 * Generates a secret key, as `C_GenerateKey` would.
 */
export const generateSecret = async (mechanism: Mechanism, template: Attribute.Attributes): Promise<KeyMaterial> => {
  if (mechanism.type !== CKM.GENERIC_SECRET_KEY_GEN) return fail(CKR.MECHANISM_INVALID)
  const length = template.valueLen ?? fail(CKR.TEMPLATE_INCOMPLETE)
  if (length < 1 || length > 512) fail(CKR.KEY_SIZE_RANGE)
  const bytes = await promisify(Crypto.randomBytes)(length)
  return { kind: "secret", bytes: new Uint8Array(bytes) }
}

/**
 * A key pair's material and key type from a private `KeyObject`, for keys a token starts with; `undefined`
 * for a key type or curve the emulator does not hold.
 */
export const pairOf = (privateKey: Crypto.KeyObject): GeneratedPair | undefined => {
  const publicKey = Crypto.createPublicKey(privateKey)
  switch (privateKey.asymmetricKeyType) {
    case "rsa": {
      const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0
      return {
        keyType: CKK.RSA,
        publicMaterial: { kind: "rsa", key: publicKey, bits },
        privateMaterial: { kind: "rsa", key: privateKey, bits }
      }
    }
    case "ec": {
      const named = privateKey.asymmetricKeyDetails?.namedCurve
      const curve = (["P-256", "P-384", "P-521"] as const).find((c) => Curve.specs[c].nodeName === named)
      if (curve === undefined) return undefined
      return {
        keyType: CKK.EC,
        publicMaterial: { kind: "ec", curve, key: publicKey },
        privateMaterial: { kind: "ec", curve, key: privateKey, scalar: ecScalar(curve, privateKey) }
      }
    }
    case "ed25519":
    case "ed448": {
      const curve = privateKey.asymmetricKeyType === "ed25519" ? "Ed25519" : "Ed448"
      return {
        keyType: CKK.EC_EDWARDS,
        publicMaterial: { kind: "edwards", curve, key: publicKey },
        privateMaterial: { kind: "edwards", curve, key: privateKey }
      }
    }
    default:
      return undefined
  }
}

const ecScalar = (curve: Curve.Curve, key: Crypto.KeyObject): Uint8Array =>
  leftPad(unb64(key.export({ format: "jwk" }).d), Curve.specs[curve].size)

const pkcs8Prefixes: Partial<Record<Curve.Curve, string>> = {
  "Ed25519": "302e020100300506032b657004220420",
  "Ed448": "3047020100300506032b6571043b0439"
}

const importing = <A>(f: () => A): A => {
  try {
    return f()
  } catch (error) {
    if (error instanceof Ckr) throw error
    return fail(CKR.ATTRIBUTE_VALUE_INVALID)
  }
}

/**
 * The key material of an object created with `C_CreateObject`, from its template.
 */
export const importKey = (template: Attribute.Attributes): KeyMaterial | undefined => {
  const objectClass = template.class
  if (objectClass !== CKO.PRIVATE_KEY && objectClass !== CKO.PUBLIC_KEY && objectClass !== CKO.SECRET_KEY) {
    return undefined
  }
  const keyType = template.keyType ?? fail(CKR.TEMPLATE_INCOMPLETE)
  const need = (value: Uint8Array | undefined) => value ?? fail(CKR.TEMPLATE_INCOMPLETE)
  return importing((): KeyMaterial => {
    if (objectClass === CKO.SECRET_KEY) {
      if (!hmacKeyTypes.has(keyType)) return fail(CKR.ATTRIBUTE_VALUE_INVALID)
      return { kind: "secret", bytes: need(template.value) }
    }
    switch (keyType) {
      case CKK.RSA: {
        const n = need(template.modulus)
        const e = need(template.publicExponent)
        const bits = Bytes.unsigned(n).length * 8
        if (objectClass === CKO.PUBLIC_KEY) {
          const key = publicKeyOf(template)
          return { kind: "rsa", key, bits: key.asymmetricKeyDetails?.modulusLength ?? bits }
        }
        const key = Crypto.createPrivateKey({
          key: {
            kty: "RSA",
            n: b64(n),
            e: b64(e),
            d: b64(need(template.privateExponent)),
            p: b64(need(template.prime1)),
            q: b64(need(template.prime2)),
            dp: b64(need(template.exponent1)),
            dq: b64(need(template.exponent2)),
            qi: b64(need(template.coefficient))
          },
          format: "jwk"
        })
        return { kind: "rsa", key, bits: key.asymmetricKeyDetails?.modulusLength ?? bits }
      }
      case CKK.EC: {
        const curve = curveOf(template.ecParams, "weierstrass")
        const spec = Curve.specs[curve]
        if (objectClass === CKO.PUBLIC_KEY) {
          need(template.ecPoint)
          return { kind: "ec", curve, key: publicKeyOf(template) }
        }
        const scalar = leftPad(need(template.value), spec.size)
        // SEC1 ECPrivateKey without its optional public key: OpenSSL derives the point.
        const oid = Buffer.from(spec.oid, "hex")
        const body = Buffer.concat([
          Buffer.from([0x02, 0x01, 0x01, 0x04, scalar.length]),
          scalar,
          Buffer.from([0xa0, oid.length]),
          oid
        ])
        const der = Buffer.concat([derSequenceHeader(body.length), body])
        const key = Crypto.createPrivateKey({ key: der, format: "der", type: "sec1" })
        return { kind: "ec", curve, key, scalar }
      }
      case CKK.EC_EDWARDS: {
        const curve = curveOf(template.ecParams, "edwards")
        if (objectClass === CKO.PUBLIC_KEY) {
          need(template.ecPoint)
          return { kind: "edwards", curve, key: publicKeyOf(template) }
        }
        const seed = need(template.value)
        if (seed.length !== Curve.specs[curve].size) return fail(CKR.ATTRIBUTE_VALUE_INVALID)
        const der = Buffer.concat([Buffer.from(pkcs8Prefixes[curve]!, "hex"), seed])
        return { kind: "edwards", curve, key: Crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" }) }
      }
      default:
        return fail(CKR.ATTRIBUTE_VALUE_INVALID)
    }
  })
}

const publicKeyOf = (template: Attribute.Attributes): Crypto.KeyObject => {
  const jwk = PublicKey.toJwk(template) ?? fail(CKR.ATTRIBUTE_VALUE_INVALID)
  return Crypto.createPublicKey({ key: jwk, format: "jwk" })
}

const derSequenceHeader = (length: number): Buffer =>
  length < 0x80 ? Buffer.from([0x30, length]) : Buffer.from([0x30, 0x81, length])

/**
 * The checks of `C_SignInit` / `C_VerifyInit` for a key and mechanism: mechanism known, key type and
 * class fitting, and parameters valid. Returns what signing needs.
 */
export const checkSignature = (
  mechanism: Mechanism,
  keyType: number | undefined,
  objectClass: number | undefined,
  material: KeyMaterial | undefined,
  operation: "sign" | "verify"
): SignatureMechanism => {
  const spec = signatureMechanisms[mechanism.type] ?? fail(CKR.MECHANISM_INVALID)
  const wantedClass = spec.secret ? CKO.SECRET_KEY : operation === "sign" ? CKO.PRIVATE_KEY : CKO.PUBLIC_KEY
  const typeFits = spec.secret ? keyType !== undefined && hmacKeyTypes.has(keyType) : keyType === spec.keyType
  if (!typeFits || objectClass !== wantedClass || material === undefined) fail(CKR.KEY_TYPE_INCONSISTENT)
  if (pssMechanisms.has(mechanism.type)) {
    const parameter = mechanism.parameter
    if (parameter === undefined || parameter instanceof Uint8Array || parameter._tag !== "RsaPss") {
      fail(CKR.MECHANISM_PARAM_INVALID)
    } else {
      const hash = hashes[spec.hash!]
      // The emulator implements PSS with the mechanism's own hash for the MGF, as JWS PS* requires.
      if (parameter.hashAlg !== spec.hash || parameter.mgf !== hash.mgf || parameter.saltLength < 0) {
        fail(CKR.MECHANISM_PARAM_INVALID)
      }
    }
  } else if (mechanism.parameter !== undefined) {
    fail(CKR.MECHANISM_PARAM_INVALID)
  }
  return spec
}

const pssOptions = (mechanism: Mechanism) => {
  const parameter = mechanism.parameter
  return parameter !== undefined && !(parameter instanceof Uint8Array) && parameter._tag === "RsaPss"
    ? { padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: parameter.saltLength }
    : {}
}

/**
 * `C_Sign` with checked inputs. Runs node:crypto on the threadpool where it can.
 */
export const sign = async (
  mechanism: Mechanism,
  spec: SignatureMechanism,
  material: KeyMaterial,
  data: Uint8Array
): Promise<Uint8Array> => {
  switch (material.kind) {
    case "secret":
      return new Uint8Array(Crypto.createHmac(hashes[spec.hash!].name, material.bytes).update(data).digest())
    case "edwards":
      return new Uint8Array(await signAsync(null, data, material.key))
    case "ec": {
      if (material.scalar === undefined) return fail(CKR.KEY_TYPE_INCONSISTENT)
      return ecdsa[material.curve as keyof typeof ecdsa].sign(data, material.scalar, { prehash: false, lowS: false })
    }
    case "rsa": {
      if (spec.hash === undefined) {
        if (data.length > material.bits / 8 - 11) return fail(CKR.DATA_LEN_RANGE)
        return new Uint8Array(
          Crypto.privateEncrypt({ key: material.key, padding: Crypto.constants.RSA_PKCS1_PADDING }, data)
        )
      }
      return new Uint8Array(
        await signAsync(hashes[spec.hash].name, data, { key: material.key, ...pssOptions(mechanism) })
      )
    }
  }
}

/**
 * `C_Verify` with checked inputs: `false` for a signature that does not verify.
 */
export const verify = async (
  mechanism: Mechanism,
  spec: SignatureMechanism,
  material: KeyMaterial,
  data: Uint8Array,
  signature: Uint8Array
): Promise<boolean> => {
  switch (material.kind) {
    case "secret": {
      const expected = Crypto.createHmac(hashes[spec.hash!].name, material.bytes).update(data).digest()
      return expected.length === signature.length && Crypto.timingSafeEqual(expected, signature)
    }
    case "edwards":
      return verifyAsync(null, data, material.key, signature)
    case "ec": {
      const publicPoint = Curve.decodeEcPoint(material.curve, ecPointOf(material)!)!
      return ecdsa[material.curve as keyof typeof ecdsa].verify(signature, data, publicPoint, {
        prehash: false,
        lowS: false
      })
    }
    case "rsa": {
      if (spec.hash === undefined) {
        try {
          const recovered = Crypto.publicDecrypt(
            { key: material.key, padding: Crypto.constants.RSA_PKCS1_PADDING },
            signature
          )
          return recovered.length === data.length && Crypto.timingSafeEqual(recovered, data)
        } catch {
          // A signature that does not decrypt to a PKCS#1 block is simply invalid.
          return false
        }
      }
      return verifyAsync(hashes[spec.hash].name, data, { key: material.key, ...pssOptions(mechanism) }, signature)
    }
  }
}

/**
 * The checks of `C_DecryptInit`: `CKM_RSA_PKCS_OAEP` on an RSA key, with a hash and MGF that agree, as
 * node:crypto implements them. Returns the OAEP parameters.
 */
export const checkDecryption = (mechanism: Mechanism, material: KeyMaterial): OaepParameters => {
  if (mechanism.type !== CKM.RSA_PKCS_OAEP) return fail(CKR.MECHANISM_INVALID)
  if (material.kind !== "rsa") return fail(CKR.KEY_TYPE_INCONSISTENT)
  const parameter = mechanism.parameter
  if (parameter === undefined || parameter instanceof Uint8Array || parameter._tag !== "RsaOaep") {
    return fail(CKR.MECHANISM_PARAM_INVALID)
  }
  const hash = hashes[parameter.hashAlg]
  if (hash === undefined || hash.mgf !== parameter.mgf) return fail(CKR.MECHANISM_PARAM_INVALID)
  return { hash: hash.name, label: parameter.label }
}

export interface OaepParameters {
  readonly hash: string
  readonly label: Uint8Array | undefined
}

/**
 * `C_Decrypt` with checked OAEP parameters. A block that does not decode fails with `undecryptable`: tokens
 * differ in what they answer (CKR_ENCRYPTED_DATA_INVALID by the spec, CKR_GENERAL_ERROR from SoftHSM2,
 * CKR_FUNCTION_FAILED from openCryptoki), and none says more.
 */
export const decrypt = (
  oaep: OaepParameters,
  material: KeyMaterial,
  data: Uint8Array,
  undecryptable: number
): Uint8Array => {
  if (material.kind !== "rsa") return fail(CKR.KEY_TYPE_INCONSISTENT)
  if (data.length !== material.bits / 8) return fail(CKR.ENCRYPTED_DATA_LEN_RANGE)
  try {
    return new Uint8Array(Crypto.privateDecrypt({
      key: material.key,
      padding: Crypto.constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: oaep.hash,
      ...(oaep.label === undefined ? {} : { oaepLabel: oaep.label })
    }, data))
  } catch {
    return fail(undecryptable)
  }
}

/**
 * The public key of a private key, for the public object of a generated pair.
 */
export const publicMaterialOf = (material: KeyMaterial): KeyMaterial => {
  switch (material.kind) {
    case "rsa":
      return { kind: "rsa", key: Crypto.createPublicKey(material.key), bits: material.bits }
    case "ec":
      return { kind: "ec", curve: material.curve, key: Crypto.createPublicKey(material.key) }
    case "edwards":
      return { kind: "edwards", curve: material.curve, key: Crypto.createPublicKey(material.key) }
    case "secret":
      return material
  }
}
