import * as Attribute from "@hsmkey/pkcs11/Attribute"
import { CKR, CKZ } from "@hsmkey/pkcs11/Constants"
import type { Mechanism } from "@hsmkey/pkcs11/Pkcs11"
import { CryptokiError, type Driver } from "@hsmkey/pkcs11/Pkcs11Driver"
import type pkcs11js from "pkcs11js"
import * as Registry from "./registry.js"
import * as SigningThreads from "./signingThreads.js"

// Large enough for an RSA-8192 signature and every EC and EdDSA signature.
const SIGNATURE_BUFFER = 1024
const LARGE_SIGNATURE_BUFFER = 16384
const FIND_BATCH = 64
const MAX_HANDLE_BUFFERS = 4096

const toHandle = (n: number): Buffer => {
  const buffer = Buffer.alloc(8)
  buffer.writeBigUInt64LE(BigInt(n))
  return buffer
}

const fromHandle = (buffer: Buffer): number => {
  const value = buffer.length >= 8 ? buffer.readBigUInt64LE(0) : BigInt(buffer.readUInt32LE(0))
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`PKCS#11 handle ${value} does not fit in a JavaScript number`)
  }
  return Number(value)
}

const readUlong = (buffer: Buffer): number => fromHandle(buffer)

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const encodeValue = (
  kind: Attribute.Kind,
  value: boolean | number | string | Uint8Array
): boolean | number | Buffer => {
  switch (kind) {
    case "boolean":
    case "number":
      return value as boolean | number
    case "string":
      return Buffer.from(value as string, "utf8")
    case "bytes":
      return toBuffer(value as Uint8Array)
  }
}

const decodeValue = (kind: Attribute.Kind, buffer: Buffer): boolean | number | string | Uint8Array => {
  switch (kind) {
    case "boolean":
      return buffer.length > 0 && buffer[0] !== 0
    case "number":
      return readUlong(buffer)
    case "string":
      return buffer.toString("utf8")
    case "bytes":
      return new Uint8Array(buffer)
  }
}

const toTemplate = (attributes: Attribute.Attributes): pkcs11js.Template =>
  Attribute.entries(attributes).map(([name, value]) => {
    const spec = Attribute.specs[name]
    return { type: spec.type, value: encodeValue(spec.kind, value) }
  })

const toPkcs11jsMechanism = (api: Registry.Api, mechanism: Mechanism): pkcs11js.Mechanism => {
  const parameter = mechanism.parameter
  if (parameter === undefined) return { mechanism: mechanism.type }
  if (parameter instanceof Uint8Array) return { mechanism: mechanism.type, parameter: toBuffer(parameter) }
  switch (parameter._tag) {
    case "RsaPss": {
      const pss: pkcs11js.RsaPSS = {
        type: api.CK_PARAMS_RSA_PSS,
        hashAlg: parameter.hashAlg,
        mgf: parameter.mgf,
        saltLen: parameter.saltLength
      }
      return { mechanism: mechanism.type, parameter: pss }
    }
    case "RsaOaep": {
      const oaep: pkcs11js.RsaOAEP = {
        type: api.CK_PARAMS_RSA_OAEP,
        hashAlg: parameter.hashAlg,
        mgf: parameter.mgf,
        source: CKZ.DATA_SPECIFIED,
        ...(parameter.label === undefined || parameter.label.length === 0 ? {} : {
          sourceData: toBuffer(parameter.label)
        })
      }
      return { mechanism: mechanism.type, parameter: oaep }
    }
  }
}

// pkcs11js wraps its native errors in Pkcs11Error, except for the three methods its JS subclass
// overrides (C_CreateObject, C_CopyObject, C_SetAttributeValue): those throw a plain Error whose message
// is "CKR_NAME:code".
const nativeMessage = /^CKR_\w+:(\d+)$/u

const codeOf = (api: Registry.Api, error: unknown): number | undefined => {
  if (error instanceof api.Pkcs11Error && typeof error.code === "number") return error.code
  if (error instanceof Error && !(error instanceof TypeError)) {
    const match = nativeMessage.exec(error.message)
    if (match !== null) return Number(match[1])
  }
  return undefined
}

const notLoaded = (method: string) => new CryptokiError(method, CKR.CRYPTOKI_NOT_INITIALIZED)

/**
 * Runs a pkcs11js call, turning its `Pkcs11Error` into a `CryptokiError` named after `method`. A plain
 * `TypeError` (a bad argument) is rethrown: that is our bug. A library nothing holds any more answers
 * `CKR_CRYPTOKI_NOT_INITIALIZED` without being called.
 */
const callSync = <A>(module: Registry.Module, method: string, f: () => A): A => {
  if (module.state !== "open") throw notLoaded(method)
  try {
    return f()
  } catch (error) {
    const code = codeOf(module.api, error)
    throw code === undefined ? error : new CryptokiError(method, code)
  }
}

const callAsyncWith = async <A>(api: Registry.Api, method: string, f: () => Promise<A>): Promise<A> => {
  try {
    return await f()
  } catch (error) {
    const code = codeOf(api, error)
    throw code === undefined ? error : new CryptokiError(method, code)
  }
}

/**
 * The driver over a pkcs11js library. Crypto runs through the `*Async` variants on the libuv threadpool;
 * their input and output buffers stay referenced by the pending promise until the call settles.
 */
export const make = (module: Registry.Module): Driver => {
  const p11 = module.library
  const call = <A>(method: string, f: () => A): A => callSync(module, method, f)
  const callAsync = <A>(method: string, f: () => Promise<A>): Promise<A> => callAsyncWith(module.api, method, f)
  const toMechanism = (mechanism: Mechanism): pkcs11js.Mechanism => toPkcs11jsMechanism(module.api, mechanism)
  // A threadpool call holds the library loaded until it settles: C_Finalize under it would crash.
  const threadpool = <A>(method: string, f: () => Promise<A>): Promise<A> =>
    module.state === "open" ? Registry.inflight(module, f) : Promise.reject(notLoaded(method))
  // The synchronous signing path reuses one output buffer (the signature is copied out of it) and the
  // pkcs11js form of each mechanism it was given: signing lanes pass the same mechanism objects again.
  const signatureBuffer = Buffer.alloc(SIGNATURE_BUFFER)
  const directMechanisms = new WeakMap<Mechanism, pkcs11js.Mechanism>()
  // And the handles it signs in and with, as pkcs11js takes them: a few sessions and keys, again and again.
  const handleBuffers = new Map<number, Buffer>()
  const handleBuffer = (n: number): Buffer => {
    let buffer = handleBuffers.get(n)
    if (buffer === undefined) {
      if (handleBuffers.size >= MAX_HANDLE_BUFFERS) handleBuffers.clear()
      buffer = toHandle(n)
      handleBuffers.set(n, buffer)
    }
    return buffer
  }
  const directMechanism = (mechanism: Mechanism): pkcs11js.Mechanism => {
    let known = directMechanisms.get(mechanism)
    if (known === undefined) {
      known = toMechanism(mechanism)
      directMechanisms.set(mechanism, known)
    }
    return known
  }
  const threads = SigningThreads.make(module)
  const signAsync = (session: number, mechanism: Mechanism, key: number, data: Uint8Array): Promise<Uint8Array> =>
    threadpool("C_Sign", async () => {
      const handle = toHandle(session)
      call("C_SignInit", () => p11.C_SignInit(handle, toMechanism(mechanism), toHandle(key)))
      const input = Buffer.from(data)
      try {
        return new Uint8Array(
          await callAsync("C_Sign", () => p11.C_SignAsync(handle, input, Buffer.alloc(SIGNATURE_BUFFER)))
        )
      } catch (error) {
        // CKR_BUFFER_TOO_SMALL leaves the operation active (the next C_SignInit would fail with
        // CKR_OPERATION_ACTIVE); PKCS#11 completes it by calling C_Sign again with room enough.
        if (!(error instanceof CryptokiError && error.code === CKR.BUFFER_TOO_SMALL)) throw error
        return new Uint8Array(
          await callAsync("C_Sign", () => p11.C_SignAsync(handle, input, Buffer.alloc(LARGE_SIGNATURE_BUFFER)))
        )
      }
    })

  const objectsChange = () => {
    module.objectGeneration++
  }

  const getAttributeValues = (session: number, object: number, names: ReadonlyArray<Attribute.Name>) => {
    const result = call(
      "C_GetAttributeValue",
      () =>
        p11.C_GetAttributeValue(
          toHandle(session),
          toHandle(object),
          names.map((name) => ({ type: Attribute.specs[name].type }))
        )
    )
    const out: Record<string, unknown> = {}
    result.forEach((attribute, i) => {
      const name = names[i]
      // CK_UNAVAILABLE_INFORMATION comes back as an undefined value.
      if (attribute.value !== undefined) out[name] = decodeValue(Attribute.specs[name].kind, attribute.value)
    })
    return out as Attribute.Attributes
  }

  const isUnavailable = (error: unknown) =>
    error instanceof CryptokiError &&
    (error.code === CKR.ATTRIBUTE_SENSITIVE || error.code === CKR.ATTRIBUTE_TYPE_INVALID)

  return {
    moduleId: module.realPath,

    exclusive: module.exclusive,

    objectGeneration: () => module.objectGeneration,

    retain: () => Registry.retain(module),

    release: () => {
      Registry.release(module)
      return module.state === "open" ? undefined : module.closed
    },

    getInfo: () => {
      const info = call("C_GetInfo", () => p11.C_GetInfo())
      return {
        cryptokiVersion: `${info.cryptokiVersion.major}.${info.cryptokiVersion.minor}`,
        manufacturerId: info.manufacturerID.trimEnd(),
        description: info.libraryDescription.trimEnd(),
        libraryVersion: `${info.libraryVersion.major}.${info.libraryVersion.minor}`
      }
    },

    getSlotList: (tokenPresent) => call("C_GetSlotList", () => p11.C_GetSlotList(tokenPresent).map(fromHandle)),

    getSlotInfo: (slot) => {
      const info = call("C_GetSlotInfo", () => p11.C_GetSlotInfo(toHandle(slot)))
      return { description: info.slotDescription, manufacturerId: info.manufacturerID, flags: info.flags }
    },

    getTokenInfo: (slot) => {
      const info = call("C_GetTokenInfo", () => p11.C_GetTokenInfo(toHandle(slot)))
      return {
        label: info.label,
        manufacturerId: info.manufacturerID,
        model: info.model,
        serialNumber: info.serialNumber,
        flags: info.flags,
        maxSessionCount: info.maxSessionCount,
        sessionCount: info.sessionCount,
        maxRwSessionCount: info.maxRwSessionCount,
        rwSessionCount: info.rwSessionCount,
        minPinLen: info.minPinLen,
        maxPinLen: info.maxPinLen
      }
    },

    getMechanismList: (slot) => call("C_GetMechanismList", () => p11.C_GetMechanismList(toHandle(slot))),

    getMechanismInfo: (slot, type) => call("C_GetMechanismInfo", () => p11.C_GetMechanismInfo(toHandle(slot), type)),

    initToken: (slot, soPin, label) => {
      objectsChange()
      call("C_InitToken", () => p11.C_InitToken(toHandle(slot), soPin, label))
    },

    openSession: (slot, flags) => call("C_OpenSession", () => fromHandle(p11.C_OpenSession(toHandle(slot), flags))),

    // Closing every session, logging in and out: tokens hand out object handles anew after these. (Closing
    // one session is not counted: pools close and open sessions all the time, under a login session that
    // keeps the token's handles alive, and a token logged out by its last session closing is a new login
    // epoch for the pool.)
    closeSession: (session) => call("C_CloseSession", () => p11.C_CloseSession(toHandle(session))),

    closeAllSessions: (slot) => {
      objectsChange()
      call("C_CloseAllSessions", () => p11.C_CloseAllSessions(toHandle(slot)))
    },

    getSessionInfo: (session) => {
      const info = call("C_GetSessionInfo", () => p11.C_GetSessionInfo(toHandle(session)))
      return { slotId: fromHandle(info.slotID), state: info.state, flags: info.flags, deviceError: info.deviceError }
    },

    login: (session, userType, pin) => {
      objectsChange()
      call("C_Login", () => p11.C_Login(toHandle(session), userType, pin))
    },

    logout: (session) => {
      objectsChange()
      call("C_Logout", () => p11.C_Logout(toHandle(session)))
    },

    initPin: (session, pin) => call("C_InitPIN", () => p11.C_InitPIN(toHandle(session), pin)),

    setPin: (session, oldPin, newPin) => call("C_SetPIN", () => p11.C_SetPIN(toHandle(session), oldPin, newPin)),

    findObjects: (session, template) => {
      const handle = toHandle(session)
      objectsChange()
      call("C_FindObjectsInit", () => p11.C_FindObjectsInit(handle, toTemplate(template)))
      try {
        const found: Array<number> = []
        for (;;) {
          const batch = call("C_FindObjects", () => p11.C_FindObjects(handle, FIND_BATCH))
          for (const object of batch) found.push(fromHandle(object))
          if (batch.length < FIND_BATCH) return found
        }
      } finally {
        call("C_FindObjectsFinal", () => p11.C_FindObjectsFinal(handle))
      }
    },

    getAttributes: (session, object, names) => {
      try {
        return getAttributeValues(session, object, names)
      } catch (error) {
        // PKCS#11 fails the whole call when one attribute is sensitive or absent, yet fills the others;
        // pkcs11js drops those, so ask for each attribute alone.
        if (!isUnavailable(error) || names.length === 1) {
          if (isUnavailable(error)) return {}
          throw error
        }
        const out: Record<string, unknown> = {}
        for (const name of names) {
          try {
            Object.assign(out, getAttributeValues(session, object, [name]))
          } catch (inner) {
            if (!isUnavailable(inner)) throw inner
          }
        }
        return out as Attribute.Attributes
      }
    },

    setAttributes: (session, object, template) =>
      call(
        "C_SetAttributeValue",
        () => p11.C_SetAttributeValue(toHandle(session), toHandle(object), toTemplate(template))
      ),

    createObject: (session, template) => {
      objectsChange()
      return call("C_CreateObject", () => fromHandle(p11.C_CreateObject(toHandle(session), toTemplate(template))))
    },

    destroyObject: (session, object) => {
      objectsChange()
      call("C_DestroyObject", () => p11.C_DestroyObject(toHandle(session), toHandle(object)))
    },

    generateKeyPair: (session, mechanism, publicTemplate, privateTemplate) =>
      threadpool("C_GenerateKeyPair", () => {
        objectsChange()
        return callAsync("C_GenerateKeyPair", async () => {
          const pair = await p11.C_GenerateKeyPairAsync(
            toHandle(session),
            toMechanism(mechanism),
            toTemplate(publicTemplate),
            toTemplate(privateTemplate)
          )
          return { publicKey: fromHandle(pair.publicKey), privateKey: fromHandle(pair.privateKey) }
        })
      }),

    generateKey: (session, mechanism, template) =>
      threadpool("C_GenerateKey", () => {
        objectsChange()
        return callAsync(
          "C_GenerateKey",
          async () =>
            fromHandle(await p11.C_GenerateKeyAsync(toHandle(session), toMechanism(mechanism), toTemplate(template)))
        )
      }),

    sign: (session, mechanism, key, data) => signAsync(session, mechanism, key, data),

    signNow: (session, mechanism, key, data) => {
      if (module.state !== "open") throw notLoaded("C_SignInit")
      const handle = handleBuffer(session)
      let method = "C_SignInit"
      try {
        p11.C_SignInit(handle, directMechanism(mechanism), handleBuffer(key))
        method = "C_Sign"
        const input = toBuffer(data)
        try {
          return new Uint8Array(p11.C_Sign(handle, input, signatureBuffer))
        } catch (error) {
          // As for the threadpool form: a buffer too small leaves the operation active until a call with room.
          if (codeOf(module.api, error) !== CKR.BUFFER_TOO_SMALL) throw error
          return new Uint8Array(p11.C_Sign(handle, input, Buffer.alloc(LARGE_SIGNATURE_BUFFER)))
        }
      } catch (error) {
        const code = codeOf(module.api, error)
        throw code === undefined ? error : new CryptokiError(method, code)
      }
    },

    signBatch: (thread, session, items) => {
      if (module.state !== "open") return Promise.reject(notLoaded("C_Sign"))
      const onThread = threads.signBatch(
        thread,
        session,
        items.map((item) => ({ mechanism: directMechanism(item.mechanism), key: item.key, data: item.data }))
      )
      if (onThread !== undefined) return onThread
      // The thread is still starting: the batch goes on the threadpool meanwhile, one call after another.
      return items.reduce<Promise<Array<Uint8Array | CryptokiError>>>(
        (done, item) =>
          done.then((results) =>
            signAsync(session, item.mechanism, item.key, item.data).then(
              (signature) => [...results, signature],
              (error) => {
                if (!(error instanceof CryptokiError)) throw error
                return [...results, error]
              }
            )
          ),
        Promise.resolve([])
      )
    },

    verify: (session, mechanism, key, data, signature) =>
      threadpool("C_Verify", async () => {
        const handle = toHandle(session)
        call("C_VerifyInit", () => p11.C_VerifyInit(handle, toMechanism(mechanism), toHandle(key)))
        try {
          return await callAsync("C_Verify", () => p11.C_VerifyAsync(handle, Buffer.from(data), Buffer.from(signature)))
        } catch (error) {
          if (
            error instanceof CryptokiError &&
            (error.code === CKR.SIGNATURE_INVALID || error.code === CKR.SIGNATURE_LEN_RANGE)
          ) return false
          throw error
        }
      }),

    decrypt: (session, mechanism, key, data) =>
      threadpool("C_Decrypt", async () => {
        const handle = toHandle(session)
        call("C_DecryptInit", () => p11.C_DecryptInit(handle, toMechanism(mechanism), toHandle(key)))
        const input = Buffer.from(data)
        try {
          // Room for any RSA plaintext up to 8192-bit keys, whatever the ciphertext's length: a short
          // ciphertext must be refused for itself, not for our buffer.
          return new Uint8Array(
            await callAsync(
              "C_Decrypt",
              () => p11.C_DecryptAsync(handle, input, Buffer.alloc(Math.max(input.length, 1024)))
            )
          )
        } catch (error) {
          // As for C_Sign: CKR_BUFFER_TOO_SMALL leaves the operation active until a call with room enough.
          if (!(error instanceof CryptokiError && error.code === CKR.BUFFER_TOO_SMALL)) throw error
          return new Uint8Array(
            await callAsync("C_Decrypt", () => p11.C_DecryptAsync(handle, input, Buffer.alloc(LARGE_SIGNATURE_BUFFER)))
          )
        }
      })
  }
}
