import * as Crypto from "node:crypto"
import * as Attribute from "../../Attribute.js"
import { CKF, CKK, CKO, CKR, CKS, CKU } from "../../Constants.js"
import type { LibraryInfo, Mechanism } from "../../Pkcs11.js"
import { CryptokiError, type Driver } from "../driver.js"
import * as Keys from "./keys.js"

/**
 * The Cryptoki functions whose results tests can inject.
 */
export type Method =
  | "C_GetInfo"
  | "C_GetSlotList"
  | "C_GetSlotInfo"
  | "C_GetTokenInfo"
  | "C_GetMechanismList"
  | "C_GetMechanismInfo"
  | "C_InitToken"
  | "C_OpenSession"
  | "C_CloseSession"
  | "C_CloseAllSessions"
  | "C_GetSessionInfo"
  | "C_Login"
  | "C_Logout"
  | "C_InitPIN"
  | "C_SetPIN"
  | "C_FindObjectsInit"
  | "C_GetAttributeValue"
  | "C_SetAttributeValue"
  | "C_CreateObject"
  | "C_DestroyObject"
  | "C_GenerateKeyPair"
  | "C_GenerateKey"
  | "C_SignInit"
  | "C_Sign"
  | "C_VerifyInit"
  | "C_Verify"
  | "C_DecryptInit"
  | "C_Decrypt"

export interface TokenConfig {
  readonly label: string
  readonly serialNumber: string
  readonly userPin: string | undefined
  readonly soPin: string
  readonly maxSessions: number | undefined
  readonly maxRwSessions: number | undefined
  readonly pinRetries: number
  readonly userPinToBeChanged: boolean
  readonly mechanisms: ReadonlyArray<number> | undefined
  readonly minPinLength: number
  readonly maxPinLength: number
  readonly createdSecretValueLen: "actual" | "zero"
  readonly undecryptable: number
  readonly keys: ReadonlyArray<PreloadedKey>
}

/**
 * A key a token starts with, as token objects: a key pair (a private and a public object) or a secret.
 */
export type PreloadedKey =
  | {
    readonly kind: "pair"
    readonly label: string
    readonly id: Uint8Array
    readonly privateKey: Crypto.KeyObject
    readonly use: "sig" | "enc"
  }
  | { readonly kind: "secret"; readonly label: string; readonly id: Uint8Array; readonly value: Uint8Array }

export interface TokenStats {
  readonly slotId: number | undefined
  readonly present: boolean
  readonly openSessions: number
  readonly openRwSessions: number
  readonly peakSessions: number
  readonly loginCalls: number
  readonly loggedIn: "user" | "so" | undefined
}

interface StoredObject {
  readonly uid: number
  attributes: Attribute.Attributes
  readonly material: Keys.KeyMaterial | undefined
  /** The session that owns a session object (`CKA_TOKEN` false); destroyed with it. */
  readonly owner: number | undefined
}

interface Token {
  initialized: boolean
  label: string
  serialNumber: string
  userPin: string | undefined
  soPin: string | undefined
  userPinToBeChanged: boolean
  readonly pinRetries: number
  userRetriesLeft: number
  soRetriesLeft: number
  readonly maxSessions: number | undefined
  readonly maxRwSessions: number | undefined
  readonly mechanisms: ReadonlyArray<number>
  readonly minPinLength: number
  readonly maxPinLength: number
  readonly createdSecretValueLen: "actual" | "zero"
  readonly undecryptable: number
  loggedIn: "user" | "so" | undefined
  slotId: number | undefined
  readonly objects: Map<number, StoredObject>
  readonly handleByUid: Map<number, number>
  readonly uidByHandle: Map<number, number>
  loginCalls: number
  peakSessions: number
}

interface Slot {
  readonly id: number
  token: Token | undefined
}

interface Session {
  readonly handle: number
  readonly token: Token
  readonly rw: boolean
  removed: boolean
}

interface Fault {
  readonly method: Method
  readonly code: number
  readonly token: Token | undefined
  remaining: number
}

interface Delay {
  readonly method: Method
  readonly millis: number
  readonly token: Token | undefined
  remaining: number
}

// The first fault or delay set for the method (on this token or any), counted down and dropped when used up.
const takeNext = <T extends { readonly method: Method; readonly token: Token | undefined; remaining: number }>(
  pending: Array<T>,
  method: Method,
  token: Token | undefined
): T | undefined => {
  const index = pending.findIndex((p) => p.method === method && (p.token === undefined || p.token === token))
  if (index < 0) return undefined
  const next = pending[index]
  if (--next.remaining <= 0) pending.splice(index, 1)
  return next
}

// A synchronous call that takes long holds its thread, as a real library's does: sleep without spinning.
const sleeper = new Int32Array(new SharedArrayBuffer(4))
const holdThread = (millis: number) => Atomics.wait(sleeper, 0, 0, millis)

// A device works on one request at a time and answers later: the event loop turns between operations.
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

const SUPPORTED_MECHANISMS = [...Keys.mechanismInfos.keys()]

const READ_ONLY_ATTRIBUTES: ReadonlyArray<Attribute.Name> = [
  "local",
  "alwaysSensitive",
  "neverExtractable",
  "keyGenMechanism"
]

const SECRET_ATTRIBUTES: ReadonlySet<Attribute.Name> = new Set([
  "value",
  "privateExponent",
  "prime1",
  "prime2",
  "exponent1",
  "exponent2",
  "coefficient"
])

const sameValue = (a: unknown, b: unknown): boolean =>
  a instanceof Uint8Array && b instanceof Uint8Array ? Buffer.from(a).equals(Buffer.from(b)) : a === b

const ckr = (code: number): never => Keys.fail(code)

// Private and secret keys are private objects unless the template says otherwise.
const isPrivate = (template: Attribute.Attributes): boolean =>
  template.private ?? (template.class === CKO.PRIVATE_KEY || template.class === CKO.SECRET_KEY)

let emulatorCount = 0

/**
 * An in-memory Cryptoki: tokens in slots, sessions, login state per token, objects with attributes and
 * real crypto. It follows the PKCS#11 rules hsmkey depends on, as SoftHSM2 and hardware tokens apply
 * them, and adds what SoftHSM2 lacks: session limits and PIN lockout.
 */
export class Emulator implements Driver {
  readonly moduleId = `memory:${++emulatorCount}`
  private readonly slots = new Map<number, Slot>()
  private readonly tokens: Array<Token> = []
  private readonly sessions = new Map<number, Session>()
  private readonly faults: Array<Fault> = []
  private readonly delays: Array<Delay> = []
  /** Object handles in use, on every token: freed numbers are handed out again, lowest first. */
  private readonly objectHandles = new Set<number>()
  private nextSlot = 1
  private nextUid = 1
  private generation = 0

  constructor(tokens: ReadonlyArray<TokenConfig>, emptySlots: number) {
    for (const config of tokens) {
      const token = this.newToken(config)
      token.initialized = true
      token.label = config.label
      token.serialNumber = config.serialNumber
      token.userPin = config.userPin
      token.soPin = config.soPin
      token.userPinToBeChanged = config.userPinToBeChanged
      for (const key of config.keys) this.preload(token, key)
      this.insert(token)
    }
    for (let i = 0; i < emptySlots; i++) this.insert(this.newToken({ pinRetries: 3 }))
  }

  /** Puts a key on the token as objects it holds from the start, sensitive and not extractable. */
  private preload(token: Token, key: PreloadedKey): void {
    const put = (attributes: Attribute.Attributes, material: Keys.KeyMaterial) => {
      const uid = this.nextUid++
      token.objects.set(uid, { uid, attributes, material, owner: undefined })
    }
    const common = { token: true, label: key.label, id: key.id }
    const hidden = { private: true, sensitive: true, extractable: false }
    if (key.kind === "secret") {
      const material: Keys.KeyMaterial = { kind: "secret", bytes: key.value }
      put(
        this.objectAttributes(
          { ...common, ...hidden, class: CKO.SECRET_KEY, keyType: CKK.GENERIC_SECRET, verify: true },
          material,
          false
        ),
        material
      )
      return
    }
    const pair = Keys.pairOf(key.privateKey)
    if (pair === undefined) {
      throw new Error(`MemoryPkcs11: key "${key.label}" is of a type or curve the emulator does not hold`)
    }
    const forEncryption = key.use === "enc"
    if (forEncryption && pair.keyType !== CKK.RSA) {
      throw new Error(`MemoryPkcs11: key "${key.label}" is for encryption, and only RSA keys decrypt`)
    }
    const usage = { sign: !forEncryption, decrypt: forEncryption, unwrap: forEncryption }
    put(
      this.objectAttributes(
        {
          ...common,
          class: CKO.PUBLIC_KEY,
          keyType: pair.keyType,
          private: false,
          verify: !forEncryption,
          encrypt: forEncryption
        },
        pair.publicMaterial,
        false
      ),
      pair.publicMaterial
    )
    put(
      this.objectAttributes(
        { ...common, ...hidden, class: CKO.PRIVATE_KEY, keyType: pair.keyType, ...usage },
        pair.privateMaterial,
        false
      ),
      pair.privateMaterial
    )
  }

  private newToken(config: Partial<TokenConfig> & { readonly pinRetries: number }): Token {
    const pinRetries = config.pinRetries
    const token: Token = {
      initialized: false,
      label: "",
      serialNumber: "",
      userPin: undefined,
      soPin: undefined,
      userPinToBeChanged: false,
      pinRetries,
      userRetriesLeft: pinRetries,
      soRetriesLeft: pinRetries,
      maxSessions: config.maxSessions,
      maxRwSessions: config.maxRwSessions,
      mechanisms: (config.mechanisms ?? SUPPORTED_MECHANISMS).filter((m) => Keys.mechanismInfos.has(m)),
      minPinLength: config.minPinLength ?? 4,
      maxPinLength: config.maxPinLength ?? 255,
      createdSecretValueLen: config.createdSecretValueLen ?? "actual",
      undecryptable: config.undecryptable ?? CKR.ENCRYPTED_DATA_INVALID,
      loggedIn: undefined,
      slotId: undefined,
      objects: new Map(),
      handleByUid: new Map(),
      uidByHandle: new Map(),
      loginCalls: 0,
      peakSessions: 0
    }
    this.tokens.push(token)
    return token
  }

  private insert(token: Token): number {
    const id = this.nextSlot++
    this.slots.set(id, { id, token })
    token.slotId = id
    return id
  }

  // ---------------------------------------------------------------------------------------------
  // Control

  findToken(labelOrSerial: string): Token | undefined {
    return this.tokens.find((t) => t.initialized && (t.label === labelOrSerial || t.serialNumber === labelOrSerial))
  }

  failNext(method: Method, code: number, times: number, token: Token | undefined): void {
    this.faults.push({ method, code, token, remaining: times })
  }

  clearFaults(): void {
    this.faults.length = 0
    this.delays.length = 0
  }

  delayNext(method: Method, millis: number, times: number, token: Token | undefined): void {
    this.delays.push({ method, millis, token, remaining: times })
  }

  /** Pulls the token out of its slot: its sessions die, its login state is lost. */
  remove(token: Token): void {
    if (token.slotId === undefined) return
    const slot = this.slots.get(token.slotId)
    if (slot !== undefined) slot.token = undefined
    token.slotId = undefined
    for (const session of this.sessions.values()) {
      if (session.token === token) session.removed = true
    }
    this.destroySessionObjects(token, () => true)
    token.loggedIn = undefined
    this.forgetHandles(token, () => true)
  }

  /** Puts the token back, in a new slot: the old slot id becomes invalid. */
  reinsert(token: Token): number {
    if (token.slotId !== undefined) return token.slotId
    for (const [id, slot] of this.slots) {
      if (slot.token === undefined) this.slots.delete(id)
    }
    return this.insert(token)
  }

  /** The token loses its login state, as after a reset by another application or a power cycle. */
  forceLogout(token: Token): void {
    this.logoutToken(token)
  }

  stats(token: Token): TokenStats {
    const sessions = this.liveSessions(token)
    return {
      slotId: token.slotId,
      present: token.slotId !== undefined,
      openSessions: sessions.length,
      openRwSessions: sessions.filter((s) => s.rw).length,
      peakSessions: token.peakSessions,
      loginCalls: token.loginCalls,
      loggedIn: token.loggedIn
    }
  }

  resetPeak(token: Token): void {
    token.peakSessions = this.liveSessions(token).length
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  private liveSessions(token: Token): Array<Session> {
    return [...this.sessions.values()].filter((s) => s.token === token && !s.removed)
  }

  private guard<A>(method: Method, token: Token | undefined, f: () => A): A {
    try {
      const millis = this.delayed(method, token)
      if (millis > 0) holdThread(millis)
      this.injected(method, token)
      return f()
    } catch (error) {
      if (error instanceof Keys.Ckr) throw new CryptokiError(method, error.code)
      throw error
    }
  }

  private async guardAsync<A>(method: Method, token: Token | undefined, f: () => Promise<A>): Promise<A> {
    try {
      const millis = this.delayed(method, token)
      if (millis > 0) await new Promise((resolve) => setTimeout(resolve, millis))
      this.injected(method, token)
      return await f()
    } catch (error) {
      if (error instanceof Keys.Ckr) throw new CryptokiError(method, error.code)
      throw error
    }
  }

  private delayed(method: Method, token: Token | undefined): number {
    return this.delays.length === 0 ? 0 : takeNext(this.delays, method, token)?.millis ?? 0
  }

  private injected(method: Method, token: Token | undefined): void {
    const fault = takeNext(this.faults, method, token)
    if (fault !== undefined) ckr(fault.code)
  }

  private slot(id: number): Slot {
    return this.slots.get(id) ?? ckr(CKR.SLOT_ID_INVALID)
  }

  private presentToken(id: number): Token {
    return this.slot(id).token ?? ckr(CKR.TOKEN_NOT_PRESENT)
  }

  private tokenOfSlot(id: number): Token | undefined {
    return this.slots.get(id)?.token
  }

  private tokenOfSession(handle: number): Token | undefined {
    return this.sessions.get(handle)?.token
  }

  private session(handle: number): Session {
    const session = this.sessions.get(handle) ?? ckr(CKR.SESSION_HANDLE_INVALID)
    if (session.removed) ckr(CKR.DEVICE_REMOVED)
    return session
  }

  /** An injected "session gone" also makes the token forget the session, as a real one would have. */
  private dropIfGone(handle: number, error: unknown): void {
    if (
      error instanceof CryptokiError &&
      (error.code === CKR.SESSION_HANDLE_INVALID || error.code === CKR.SESSION_CLOSED)
    ) {
      const session = this.sessions.get(handle)
      if (session !== undefined) this.closeSessionInternal(session)
    }
  }

  private onSession<A>(method: Method, handle: number, f: (session: Session) => A): A {
    try {
      return this.guard(method, this.tokenOfSession(handle), () => f(this.session(handle)))
    } catch (error) {
      this.dropIfGone(handle, error)
      throw error
    }
  }

  private async onSessionAsync<A>(method: Method, handle: number, f: (session: Session) => Promise<A>): Promise<A> {
    await nextTurn()
    try {
      return await this.guardAsync(method, this.tokenOfSession(handle), () => f(this.session(handle)))
    } catch (error) {
      this.dropIfGone(handle, error)
      throw error
    }
  }

  private isUser(token: Token): boolean {
    return token.loggedIn === "user"
  }

  private visible(session: Session, object: StoredObject): boolean {
    if (object.owner !== undefined && !this.sessions.has(object.owner)) return false
    return object.attributes.private !== true || this.isUser(session.token)
  }

  // Tokens such as openCryptoki hand a freed handle number to the next object: so does the emulator,
  // lowest free number first, so that code trusting a stale handle fails here as it would there.
  private handleOf(token: Token, uid: number): number {
    let handle = token.handleByUid.get(uid)
    if (handle === undefined) {
      this.generation++
      handle = lowestFree(this.objectHandles)
      this.objectHandles.add(handle)
      token.handleByUid.set(uid, handle)
      token.uidByHandle.set(handle, uid)
    }
    return handle
  }

  private object(session: Session, handle: number): StoredObject {
    const uid = session.token.uidByHandle.get(handle)
    const object = uid === undefined ? undefined : session.token.objects.get(uid)
    if (object === undefined || !this.visible(session, object)) return ckr(CKR.OBJECT_HANDLE_INVALID)
    return object
  }

  private forgetHandles(token: Token, which: (object: StoredObject | undefined) => boolean): void {
    for (const [uid, handle] of token.handleByUid) {
      if (which(token.objects.get(uid))) {
        token.handleByUid.delete(uid)
        token.uidByHandle.delete(handle)
        this.objectHandles.delete(handle)
        this.generation++
      }
    }
  }

  private destroySessionObjects(token: Token, which: (object: StoredObject) => boolean): void {
    for (const [uid, object] of token.objects) {
      if (object.owner !== undefined && which(object)) token.objects.delete(uid)
    }
  }

  private logoutToken(token: Token): void {
    token.loggedIn = undefined
    // C_Logout destroys the application's private session objects, and handles of private objects
    // die: a later login hands out new numbers.
    this.destroySessionObjects(token, (object) => object.attributes.private === true)
    this.forgetHandles(token, (object) => object === undefined || object.attributes.private === true)
  }

  private closeSessionInternal(session: Session): void {
    this.sessions.delete(session.handle)
    const token = session.token
    this.destroySessionObjects(token, (object) => object.owner === session.handle)
    if (!session.removed && this.liveSessions(token).length === 0) {
      // Closing the last session of the application logs the token out and invalidates every handle.
      token.loggedIn = undefined
      this.forgetHandles(token, () => true)
    }
  }

  private requireWritable(session: Session, template: Attribute.Attributes): void {
    if (template.token === true && !session.rw) ckr(CKR.SESSION_READ_ONLY)
    if (isPrivate(template) && !this.isUser(session.token)) ckr(CKR.USER_NOT_LOGGED_IN)
    if (session.token.userPinToBeChanged && this.isUser(session.token)) ckr(CKR.PIN_EXPIRED)
  }

  private rejectReadOnly(template: Attribute.Attributes): void {
    for (const name of READ_ONLY_ATTRIBUTES) {
      if (template[name] !== undefined) ckr(CKR.ATTRIBUTE_READ_ONLY)
    }
  }

  private store(
    session: Session,
    attributes: Attribute.Attributes,
    material: Keys.KeyMaterial | undefined
  ): number {
    const uid = this.nextUid++
    const owner = attributes.token === true ? undefined : session.handle
    session.token.objects.set(uid, { uid, attributes, material, owner })
    return this.handleOf(session.token, uid)
  }

  private checkPinLength(token: Token, pin: string): void {
    if (pin.length < token.minPinLength || pin.length > token.maxPinLength) ckr(CKR.PIN_LEN_RANGE)
  }

  private requireMechanism(token: Token, type: number): void {
    if (!token.mechanisms.includes(type)) ckr(CKR.MECHANISM_INVALID)
  }

  private keyFor(session: Session, handle: number, mechanism: Mechanism, usage: "sign" | "verify" | "decrypt") {
    this.requireMechanism(session.token, mechanism.type)
    const key = this.object(session, handle)
    if (key.attributes[usage] !== true) ckr(CKR.KEY_FUNCTION_NOT_PERMITTED)
    if (session.token.userPinToBeChanged && key.attributes.private === true) ckr(CKR.PIN_EXPIRED)
    return key
  }

  // ---------------------------------------------------------------------------------------------
  // Driver

  readonly exclusive = undefined

  objectGeneration = (): number => this.generation

  // Nothing to load or finalize: an emulator lives while something references it.
  retain = (): boolean => true

  release = (): undefined => undefined

  getInfo = (): LibraryInfo =>
    this.guard("C_GetInfo", undefined, () => ({
      cryptokiVersion: "3.0",
      manufacturerId: "hsmkey",
      description: "hsmkey in-memory PKCS#11 emulator",
      libraryVersion: "0.1"
    }))

  getSlotList = (tokenPresent: boolean): ReadonlyArray<number> =>
    this.guard(
      "C_GetSlotList",
      undefined,
      () => [...this.slots.values()].filter((slot) => !tokenPresent || slot.token !== undefined).map((slot) => slot.id)
    )

  getSlotInfo = (id: number) =>
    this.guard("C_GetSlotInfo", this.tokenOfSlot(id), () => {
      const slot = this.slot(id)
      return {
        description: `hsmkey emulator slot ${id}`,
        manufacturerId: "hsmkey",
        flags: CKF.REMOVABLE_DEVICE | (slot.token === undefined ? 0 : CKF.TOKEN_PRESENT)
      }
    })

  getTokenInfo = (id: number) =>
    this.guard("C_GetTokenInfo", this.tokenOfSlot(id), () => {
      const token = this.presentToken(id)
      const sessions = this.liveSessions(token)
      const pinFlags = (left: number, locked: number, finalTry: number, countLow: number) =>
        left === 0 ? locked : (left === 1 ? finalTry : 0) | (left < token.pinRetries ? countLow : 0)
      const flags = CKF.RNG | CKF.LOGIN_REQUIRED |
        (token.initialized ? CKF.TOKEN_INITIALIZED : 0) |
        (token.userPin !== undefined ? CKF.USER_PIN_INITIALIZED : 0) |
        (token.userPinToBeChanged ? CKF.USER_PIN_TO_BE_CHANGED : 0) |
        pinFlags(token.userRetriesLeft, CKF.USER_PIN_LOCKED, CKF.USER_PIN_FINAL_TRY, CKF.USER_PIN_COUNT_LOW) |
        pinFlags(token.soRetriesLeft, CKF.SO_PIN_LOCKED, CKF.SO_PIN_FINAL_TRY, CKF.SO_PIN_COUNT_LOW)
      return {
        label: token.label.padEnd(32, " "),
        manufacturerId: "hsmkey",
        model: "emulator",
        serialNumber: token.serialNumber.padEnd(16, " "),
        flags,
        maxSessionCount: token.maxSessions ?? 0,
        sessionCount: sessions.length,
        maxRwSessionCount: token.maxRwSessions ?? 0,
        rwSessionCount: sessions.filter((s) => s.rw).length,
        minPinLen: token.minPinLength,
        maxPinLen: token.maxPinLength
      }
    })

  getMechanismList = (id: number): ReadonlyArray<number> =>
    this.guard("C_GetMechanismList", this.tokenOfSlot(id), () => [...this.presentToken(id).mechanisms])

  getMechanismInfo = (id: number, type: number) =>
    this.guard("C_GetMechanismInfo", this.tokenOfSlot(id), () => {
      const token = this.presentToken(id)
      if (!token.mechanisms.includes(type)) ckr(CKR.MECHANISM_INVALID)
      return Keys.mechanismInfos.get(type)!
    })

  initToken = (id: number, soPin: string, label: string): void =>
    this.guard("C_InitToken", this.tokenOfSlot(id), () => {
      const token = this.presentToken(id)
      if (this.liveSessions(token).length > 0) ckr(CKR.SESSION_EXISTS)
      this.checkPinLength(token, soPin)
      if (token.initialized) {
        if (token.soRetriesLeft === 0) ckr(CKR.PIN_LOCKED)
        if (token.soPin === undefined || !timingSafeEqual(token.soPin, soPin)) {
          token.soRetriesLeft--
          ckr(CKR.PIN_INCORRECT)
        }
      }
      token.initialized = true
      token.label = label.replace(/ +$/u, "")
      token.soPin = soPin
      token.soRetriesLeft = token.pinRetries
      token.userPin = undefined
      token.userRetriesLeft = token.pinRetries
      token.userPinToBeChanged = false
      token.serialNumber ||= Crypto.randomBytes(8).toString("hex")
      token.objects.clear()
      this.forgetHandles(token, () => true)
    })

  openSession = (id: number, flags: number): number =>
    this.guard("C_OpenSession", this.tokenOfSlot(id), () => {
      const token = this.presentToken(id)
      if ((flags & CKF.SERIAL_SESSION) === 0) ckr(CKR.SESSION_PARALLEL_NOT_SUPPORTED)
      if (!token.initialized) ckr(CKR.TOKEN_NOT_RECOGNIZED)
      const rw = (flags & CKF.RW_SESSION) !== 0
      const sessions = this.liveSessions(token)
      if (token.maxSessions !== undefined && sessions.length >= token.maxSessions) ckr(CKR.SESSION_COUNT)
      if (rw && token.maxRwSessions !== undefined && sessions.filter((s) => s.rw).length >= token.maxRwSessions) {
        ckr(CKR.SESSION_COUNT)
      }
      if (!rw && token.loggedIn === "so") ckr(CKR.SESSION_READ_WRITE_SO_EXISTS)
      // Session handles are reused too, lowest free number first, as openCryptoki does.
      const handle = lowestFree(this.sessions)
      this.sessions.set(handle, { handle, token, rw, removed: false })
      token.peakSessions = Math.max(token.peakSessions, sessions.length + 1)
      return handle
    })

  closeSession = (handle: number): void => {
    try {
      this.guard("C_CloseSession", this.tokenOfSession(handle), () => {
        const session = this.sessions.get(handle) ?? ckr(CKR.SESSION_HANDLE_INVALID)
        this.closeSessionInternal(session)
      })
    } catch (error) {
      this.dropIfGone(handle, error)
      throw error
    }
  }

  closeAllSessions = (id: number): void =>
    this.guard("C_CloseAllSessions", this.tokenOfSlot(id), () => {
      const token = this.presentToken(id)
      for (const session of this.liveSessions(token)) this.closeSessionInternal(session)
    })

  getSessionInfo = (handle: number) =>
    this.onSession("C_GetSessionInfo", handle, (session) => {
      const loggedIn = session.token.loggedIn
      const state = loggedIn === "so"
        ? CKS.RW_SO_FUNCTIONS
        : session.rw
        ? (loggedIn === "user" ? CKS.RW_USER_FUNCTIONS : CKS.RW_PUBLIC_SESSION)
        : (loggedIn === "user" ? CKS.RO_USER_FUNCTIONS : CKS.RO_PUBLIC_SESSION)
      return {
        slotId: session.token.slotId!,
        state,
        flags: CKF.SERIAL_SESSION | (session.rw ? CKF.RW_SESSION : 0),
        deviceError: 0
      }
    })

  login = (handle: number, userType: number, pin: string): void =>
    this.onSession("C_Login", handle, (session) => {
      const token = session.token
      token.loginCalls++
      if (userType !== CKU.USER && userType !== CKU.SO) ckr(CKR.USER_TYPE_INVALID)
      const who = userType === CKU.SO ? "so" : "user"
      // As SoftHSM2 and most tokens do, the login state is checked before the PIN.
      if (token.loggedIn === who) ckr(CKR.USER_ALREADY_LOGGED_IN)
      if (token.loggedIn !== undefined) ckr(CKR.USER_ANOTHER_ALREADY_LOGGED_IN)
      if (who === "so" && this.liveSessions(token).some((s) => !s.rw)) ckr(CKR.SESSION_READ_ONLY_EXISTS)
      const expected = who === "so" ? token.soPin : token.userPin
      if (expected === undefined) ckr(CKR.USER_PIN_NOT_INITIALIZED)
      const left = who === "so" ? token.soRetriesLeft : token.userRetriesLeft
      if (left === 0) ckr(CKR.PIN_LOCKED)
      if (!timingSafeEqual(pin, expected!)) {
        if (who === "so") token.soRetriesLeft--
        else token.userRetriesLeft--
        ckr(CKR.PIN_INCORRECT)
      }
      if (who === "so") token.soRetriesLeft = token.pinRetries
      else token.userRetriesLeft = token.pinRetries
      token.loggedIn = who
    })

  logout = (handle: number): void =>
    this.onSession("C_Logout", handle, (session) => {
      if (session.token.loggedIn === undefined) ckr(CKR.USER_NOT_LOGGED_IN)
      this.logoutToken(session.token)
    })

  initPin = (handle: number, pin: string): void =>
    this.onSession("C_InitPIN", handle, (session) => {
      if (session.token.loggedIn !== "so") ckr(CKR.USER_NOT_LOGGED_IN)
      if (!session.rw) ckr(CKR.SESSION_READ_ONLY)
      this.checkPinLength(session.token, pin)
      session.token.userPin = pin
      session.token.userRetriesLeft = session.token.pinRetries
      session.token.userPinToBeChanged = false
    })

  setPin = (handle: number, oldPin: string, newPin: string): void =>
    this.onSession("C_SetPIN", handle, (session) => {
      const token = session.token
      if (!session.rw) ckr(CKR.SESSION_READ_ONLY)
      const who = token.loggedIn === "so" ? "so" : "user"
      const current = who === "so" ? token.soPin : token.userPin
      if (current === undefined) ckr(CKR.USER_PIN_NOT_INITIALIZED)
      if ((who === "so" ? token.soRetriesLeft : token.userRetriesLeft) === 0) ckr(CKR.PIN_LOCKED)
      if (!timingSafeEqual(oldPin, current!)) {
        if (who === "so") token.soRetriesLeft--
        else token.userRetriesLeft--
        ckr(CKR.PIN_INCORRECT)
      }
      this.checkPinLength(token, newPin)
      if (who === "so") token.soPin = newPin
      else {
        token.userPin = newPin
        token.userPinToBeChanged = false
      }
    })

  findObjects = (handle: number, template: Attribute.Attributes): ReadonlyArray<number> =>
    this.onSession("C_FindObjectsInit", handle, (session) => {
      const wanted = Attribute.entries(template)
      const found: Array<number> = []
      for (const object of session.token.objects.values()) {
        if (!this.visible(session, object)) continue
        if (wanted.every(([name, value]) => sameValue(object.attributes[name], value))) {
          found.push(this.handleOf(session.token, object.uid))
        }
      }
      return found
    })

  getAttributes = (handle: number, objectHandle: number, names: ReadonlyArray<Attribute.Name>) =>
    this.onSession("C_GetAttributeValue", handle, (session) => {
      const object = this.object(session, objectHandle)
      const hidden = object.attributes.sensitive === true || object.attributes.extractable === false
      const out: Record<string, unknown> = {}
      for (const name of names) {
        // Secret values of a sensitive or unextractable key are CKR_ATTRIBUTE_SENSITIVE: left out.
        if (hidden && SECRET_ATTRIBUTES.has(name)) continue
        const value = object.attributes[name]
        if (value !== undefined) out[name] = value
      }
      return out as Attribute.Attributes
    })

  setAttributes = (handle: number, objectHandle: number, template: Attribute.Attributes): void =>
    this.onSession("C_SetAttributeValue", handle, (session) => {
      const object = this.object(session, objectHandle)
      if (object.attributes.token === true && !session.rw) ckr(CKR.SESSION_READ_ONLY)
      if (object.attributes.modifiable === false) ckr(CKR.ACTION_PROHIBITED)
      this.rejectReadOnly(template)
      for (const name of ["class", "keyType", "token", "private", ...SECRET_ATTRIBUTES] as const) {
        if (template[name] !== undefined) ckr(CKR.ATTRIBUTE_READ_ONLY)
      }
      if (template.sensitive === false && object.attributes.sensitive === true) ckr(CKR.ATTRIBUTE_READ_ONLY)
      if (template.extractable === true && object.attributes.extractable === false) ckr(CKR.ATTRIBUTE_READ_ONLY)
      object.attributes = { ...object.attributes, ...template }
    })

  createObject = (handle: number, template: Attribute.Attributes): number =>
    this.onSession("C_CreateObject", handle, (session) => {
      if (template.class === undefined) ckr(CKR.TEMPLATE_INCOMPLETE)
      this.rejectReadOnly(template)
      // CKA_VALUE_LEN of a secret follows from CKA_VALUE: SoftHSM2 and openCryptoki refuse it in the template.
      if (template.class === CKO.SECRET_KEY && template.valueLen !== undefined) ckr(CKR.ATTRIBUTE_READ_ONLY)
      this.requireWritable(session, template)
      const material = Keys.importKey(template)
      const attributes = this.objectAttributes(template, material, false)
      // openCryptoki reads CKA_VALUE_LEN back as 0 for a secret made by C_CreateObject.
      const created = material?.kind === "secret" && session.token.createdSecretValueLen === "zero"
        ? { ...attributes, valueLen: 0 }
        : attributes
      return this.store(session, created, material)
    })

  destroyObject = (handle: number, objectHandle: number): void =>
    this.onSession("C_DestroyObject", handle, (session) => {
      const object = this.object(session, objectHandle)
      if (object.attributes.token === true && !session.rw) ckr(CKR.SESSION_READ_ONLY)
      if (object.attributes.destroyable === false) ckr(CKR.ACTION_PROHIBITED)
      session.token.objects.delete(object.uid)
      this.forgetHandles(session.token, (o) => o === undefined)
    })

  generateKeyPair = (
    handle: number,
    mechanism: Mechanism,
    publicTemplate: Attribute.Attributes,
    privateTemplate: Attribute.Attributes
  ) =>
    this.onSessionAsync("C_GenerateKeyPair", handle, async (session) => {
      this.requireMechanism(session.token, mechanism.type)
      this.rejectReadOnly(publicTemplate)
      this.rejectReadOnly(privateTemplate)
      this.requireWritable(session, { ...publicTemplate, class: CKO.PUBLIC_KEY })
      this.requireWritable(session, { ...privateTemplate, class: CKO.PRIVATE_KEY })
      const pair = await Keys.generatePair(mechanism, publicTemplate)
      // The session or token may have gone while the key was being generated.
      const live = this.session(handle)
      const common = { keyType: pair.keyType, local: true, keyGenMechanism: mechanism.type }
      const publicKey = this.store(
        live,
        this.objectAttributes({ ...publicTemplate, class: CKO.PUBLIC_KEY, ...common }, pair.publicMaterial, true),
        pair.publicMaterial
      )
      const privateKey = this.store(
        live,
        this.objectAttributes({ ...privateTemplate, class: CKO.PRIVATE_KEY, ...common }, pair.privateMaterial, true, {
          ecParams: publicTemplate.ecParams
        }),
        pair.privateMaterial
      )
      return { publicKey, privateKey }
    })

  generateKey = (handle: number, mechanism: Mechanism, template: Attribute.Attributes) =>
    this.onSessionAsync("C_GenerateKey", handle, async (session) => {
      this.requireMechanism(session.token, mechanism.type)
      this.rejectReadOnly(template)
      this.requireWritable(session, { ...template, class: CKO.SECRET_KEY })
      const material = await Keys.generateSecret(mechanism, template)
      const live = this.session(handle)
      const attributes = this.objectAttributes(
        { ...template, class: CKO.SECRET_KEY, keyType: template.keyType ?? CKK.GENERIC_SECRET, local: true },
        material,
        true
      )
      return this.store(live, { ...attributes, keyGenMechanism: mechanism.type }, material)
    })

  sign = (handle: number, mechanism: Mechanism, keyHandle: number, data: Uint8Array) =>
    this.onSessionAsync("C_SignInit", handle, async (session) => {
      const key = this.keyFor(session, keyHandle, mechanism, "sign")
      const spec = Keys.checkSignature(mechanism, key.attributes.keyType, key.attributes.class, key.material, "sign")
      return this.guardAsync("C_Sign", session.token, () => Keys.sign(mechanism, spec, key.material!, data))
    })

  verify = (handle: number, mechanism: Mechanism, keyHandle: number, data: Uint8Array, signature: Uint8Array) =>
    this.onSessionAsync("C_VerifyInit", handle, async (session) => {
      const key = this.keyFor(session, keyHandle, mechanism, "verify")
      const spec = Keys.checkSignature(mechanism, key.attributes.keyType, key.attributes.class, key.material, "verify")
      return this.guardAsync(
        "C_Verify",
        session.token,
        () => Keys.verify(mechanism, spec, key.material!, data, signature)
      )
    })

  decrypt = (handle: number, mechanism: Mechanism, keyHandle: number, data: Uint8Array) =>
    this.onSessionAsync("C_DecryptInit", handle, async (session) => {
      const key = this.keyFor(session, keyHandle, mechanism, "decrypt")
      if (key.attributes.class !== CKO.PRIVATE_KEY || key.material === undefined) ckr(CKR.KEY_TYPE_INCONSISTENT)
      const oaep = Keys.checkDecryption(mechanism, key.material!)
      return this.guardAsync(
        "C_Decrypt",
        session.token,
        async () => Keys.decrypt(oaep, key.material!, data, session.token.undecryptable)
      )
    })

  /**
   * The attributes an object carries: the template, the token's defaults, and what the key material
   * determines.
   */
  private objectAttributes(
    template: Attribute.Attributes,
    material: Keys.KeyMaterial | undefined,
    generated: boolean,
    extra: Attribute.Attributes = {}
  ): Attribute.Attributes {
    const objectClass = template.class
    const base: Attribute.Attributes = {
      token: false,
      private: isPrivate(template),
      modifiable: true,
      copyable: true,
      destroyable: true,
      label: "",
      ...template
    }
    if (material === undefined) return base
    const key: Attribute.Attributes = { id: new Uint8Array(0), derive: false, local: generated, ...base }
    const fromMaterial = Keys.publicAttributes(material, extra.ecParams ?? template.ecParams)
    switch (objectClass) {
      case CKO.PUBLIC_KEY:
        return {
          verify: true,
          encrypt: material.kind === "rsa",
          wrap: material.kind === "rsa",
          ...key,
          ...fromMaterial,
          ...(material.kind === "ec" || material.kind === "edwards" ? { ecPoint: Keys.ecPointOf(material) } : {})
        }
      case CKO.PRIVATE_KEY:
      case CKO.SECRET_KEY: {
        // SoftHSM2's defaults: not sensitive, not extractable, every usage of the key type allowed.
        const withDefaults: Attribute.Attributes = {
          sensitive: false,
          extractable: false,
          sign: true,
          decrypt: material.kind === "rsa",
          unwrap: material.kind === "rsa",
          verify: objectClass === CKO.SECRET_KEY,
          ...key
        }
        return {
          ...withDefaults,
          ...fromMaterial,
          ...Keys.privateAttributes(material),
          alwaysSensitive: generated && withDefaults.sensitive === true,
          neverExtractable: generated && withDefaults.extractable === false
        }
      }
      default:
        return key
    }
  }
}

const lowestFree = (used: { has: (n: number) => boolean }): number => {
  let n = 1
  while (used.has(n)) n++
  return n
}

const timingSafeEqual = (a: string, b: string): boolean => {
  const x = Crypto.createHash("sha256").update(a).digest()
  const y = Crypto.createHash("sha256").update(b).digest()
  return Crypto.timingSafeEqual(x, y)
}
