import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Attribute from "../Attribute.js"
import { CK_EFFECTIVELY_INFINITE, CK_UNAVAILABLE_INFORMATION, CKF, CKR, CKS, CKU, mechanismName } from "../Constants.js"
import type {
  Count,
  LoginResult,
  Mechanism,
  MechanismInfo,
  ObjectHandle,
  PinStatus,
  Pkcs11,
  SessionHandle,
  SessionLimit,
  SessionState,
  SlotId,
  TokenInfo,
  UserType
} from "../Pkcs11.js"
import { type FailureContext, fromReturnValue, Pkcs11Error, type Pkcs11Failure } from "../Pkcs11Error.js"
import { type Driver, isCryptokiError, type RawTokenInfo } from "./driver.js"
import * as FifoSemaphore from "./fifoSemaphore.js"

const userTypes: Record<UserType, number> = { "user": CKU.USER, "so": CKU.SO, "context-specific": CKU.CONTEXT_SPECIFIC }

const sessionStates: Record<number, SessionState> = {
  [CKS.RO_PUBLIC_SESSION]: "ro-public",
  [CKS.RO_USER_FUNCTIONS]: "ro-user",
  [CKS.RW_PUBLIC_SESSION]: "rw-public",
  [CKS.RW_USER_FUNCTIONS]: "rw-user",
  [CKS.RW_SO_FUNCTIONS]: "rw-so"
}

// What a direct signature's throw is for its caller: the library's answer as a failure; anything else is a
// bug, and stays a throw.
const signFailure = (error: unknown, session: number, mechanism: Mechanism): Pkcs11Failure => {
  if (!isCryptokiError(error)) throw error
  return fromReturnValue(error.method, error.code, { session, mechanism: mechanism.type })
}

// C_InitToken reads exactly 32 bytes of label, blank padded.
const LABEL_BYTES = 32

const slotId = (n: number) => n as SlotId
const sessionHandle = (n: number) => n as SessionHandle
const objectHandle = (n: number) => n as ObjectHandle

const trimPadding = (s: string): string => s.replace(/[\s\0]+$/u, "")

const limit = (n: number): SessionLimit =>
  n === CK_EFFECTIVELY_INFINITE ? "unlimited" : n === CK_UNAVAILABLE_INFORMATION ? "unavailable" : n

const count = (n: number): Count => n === CK_UNAVAILABLE_INFORMATION ? "unavailable" : n

const pinStatus = (flags: number, countLow: number, finalTry: number, locked: number, toBeChanged: number) =>
  ({
    countLow: (flags & countLow) !== 0,
    finalTry: (flags & finalTry) !== 0,
    locked: (flags & locked) !== 0,
    toBeChanged: (flags & toBeChanged) !== 0
  }) satisfies PinStatus

export const toTokenInfo = (slot: number, raw: RawTokenInfo): TokenInfo => ({
  slotId: slotId(slot),
  label: trimPadding(raw.label),
  manufacturerId: trimPadding(raw.manufacturerId),
  model: trimPadding(raw.model),
  serialNumber: trimPadding(raw.serialNumber),
  flags: raw.flags,
  initialized: (raw.flags & CKF.TOKEN_INITIALIZED) !== 0,
  loginRequired: (raw.flags & CKF.LOGIN_REQUIRED) !== 0,
  userPinInitialized: (raw.flags & CKF.USER_PIN_INITIALIZED) !== 0,
  writeProtected: (raw.flags & CKF.WRITE_PROTECTED) !== 0,
  userPin: pinStatus(
    raw.flags,
    CKF.USER_PIN_COUNT_LOW,
    CKF.USER_PIN_FINAL_TRY,
    CKF.USER_PIN_LOCKED,
    CKF.USER_PIN_TO_BE_CHANGED
  ),
  soPin: pinStatus(raw.flags, CKF.SO_PIN_COUNT_LOW, CKF.SO_PIN_FINAL_TRY, CKF.SO_PIN_LOCKED, CKF.SO_PIN_TO_BE_CHANGED),
  maxSessions: limit(raw.maxSessionCount),
  openSessions: count(raw.sessionCount),
  maxRwSessions: limit(raw.maxRwSessionCount),
  openRwSessions: count(raw.rwSessionCount),
  minPinLength: raw.minPinLen,
  maxPinLength: raw.maxPinLen
})

const toMechanismInfo = (type: number, raw: { minKeySize: number; maxKeySize: number; flags: number }) =>
  ({
    type,
    minKeySize: raw.minKeySize,
    maxKeySize: raw.maxKeySize,
    flags: raw.flags,
    sign: (raw.flags & CKF.SIGN) !== 0,
    verify: (raw.flags & CKF.VERIFY) !== 0,
    encrypt: (raw.flags & CKF.ENCRYPT) !== 0,
    decrypt: (raw.flags & CKF.DECRYPT) !== 0,
    generate: (raw.flags & CKF.GENERATE) !== 0,
    generateKeyPair: (raw.flags & CKF.GENERATE_KEY_PAIR) !== 0
  }) satisfies MechanismInfo

/** How long closing a library waits for the native calls still in flight, unless told otherwise. */
export const DEFAULT_CLOSE_TIMEOUT: Duration.Duration = Duration.seconds(10)

/**
 * Drops a hold on the driver's library. When it was the last, waits (at most `timeout`) for the library
 * to be finalized after the native calls in flight settle; past that, it is left to be finalized when
 * they do, and a warning says so.
 */
export const release = (driver: Driver, timeout: Duration.DurationInput): Effect.Effect<void> =>
  Effect.suspend(() => {
    const closed = driver.release()
    if (closed === undefined) return Effect.void
    // A release runs uninterruptibly: the wait itself must be interruptible for the bound to cut it short.
    return Effect.interruptible(Effect.promise(() => closed)).pipe(
      Effect.timeoutOption(timeout),
      Effect.flatMap(Option.match({
        onNone: () =>
          Effect.logWarning(
            `Native calls into ${driver.moduleId} were still running ${
              Duration.format(timeout)
            } after its last user closed: it will be finalized when they settle`
          ),
        onSome: () => Effect.void
      }))
    )
  })

/**
 * The `Pkcs11` service over a driver: what both backends share, so that they cannot differ in it.
 */
export const make = (
  driver: Driver,
  options: { readonly closeTimeout?: Duration.DurationInput | undefined } = {}
): Pkcs11.Service => {
  const closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
  // PKCS#11 sessions hold one active operation each; a second fiber on the same session waits its turn.
  const locks = new Map<number, FifoSemaphore.FifoSemaphore>()
  const sessionSlots = new Map<number, number>()
  const slotLabels = new Map<number, string>()

  // A library unsafe to call from two threads at once has one lock for every call (see registry).
  const exclusive = driver.exclusive
  const lockOf = (session: number): FifoSemaphore.FifoSemaphore => {
    if (exclusive !== undefined) return exclusive
    let lock = locks.get(session)
    if (lock === undefined) {
      lock = FifoSemaphore.unsafeMake(1)
      locks.set(session, lock)
    }
    return lock
  }

  // Native calls that run off the event loop's thread and take no session lock (`signDirect`'s promise,
  // `signBatch`). Closing their session, or every session of its slot, waits until they settle: SoftHSM2
  // frees a session under a C_Sign running on another thread, and the process dies (free(): invalid pointer).
  const offThread = new Map<number, { calls: number; readonly idle: Array<() => void> }>()
  const enterOffThread = (session: number) => {
    let entry = offThread.get(session)
    if (entry === undefined) offThread.set(session, entry = { calls: 0, idle: [] })
    entry.calls++
  }
  const leaveOffThread = (session: number) => {
    const entry = offThread.get(session)!
    if (--entry.calls > 0) return
    offThread.delete(session)
    for (const resume of entry.idle) resume()
  }
  // Resumes once the calls off the event loop's thread on a busy session have settled.
  const settled = (session: number): Effect.Effect<void> =>
    Effect.async<void>((resume) => void offThread.get(session)!.idle.push(() => resume(Effect.void)))
  // Sessions being closed: a signature asked for on one meanwhile is refused at once (CKR_SESSION_CLOSED),
  // or a lane signing without pause would keep its session busy forever.
  const closing = new Set<number>()
  const whenIdle = <A>(
    sessions: () => ReadonlyArray<number>,
    call: Effect.Effect<A, Pkcs11Failure>
  ): Effect.Effect<A, Pkcs11Failure> => {
    const marked = new Set<number>()
    // The check and the call it guards run in one synchronous step: no signature can start between them.
    const settle: Effect.Effect<A, Pkcs11Failure> = Effect.suspend(() => {
      const now = sessions()
      for (const session of now) {
        closing.add(session)
        marked.add(session)
      }
      const busy = now.find((session) => offThread.has(session))
      return busy === undefined ? call : Effect.zipRight(settled(busy), settle)
    })
    return Effect.ensuring(
      settle,
      Effect.sync(() => {
        for (const session of marked) closing.delete(session)
      })
    )
  }
  const closingFailure = (session: number, mechanism: Mechanism) =>
    fromReturnValue("C_Sign", CKR.SESSION_CLOSED, { session, mechanism: mechanism.type })

  const forget = (session: number) => {
    // A lock with callers still queued stays: they must not share a reused handle with new callers.
    if (exclusive !== undefined) return void sessionSlots.delete(session)
    const lock = locks.get(session)
    if (lock !== undefined && lock.waiting === 0) locks.delete(session)
    sessionSlots.delete(session)
  }

  const failure = (error: unknown, context?: FailureContext): Effect.Effect<never, Pkcs11Failure> =>
    isCryptokiError(error) ? Effect.fail(fromReturnValue(error.method, error.code, context)) : Effect.die(error)

  const attemptNow = <A>(f: () => A, context?: FailureContext): Effect.Effect<A, Pkcs11Failure> =>
    Effect.suspend(() => {
      try {
        return Effect.succeed(f())
      } catch (error) {
        return failure(error, context)
      }
    })

  // Inside `onSession` the call already holds its session's lock (the exclusive one, for such a library).
  const attempt = attemptNow

  // A call on no session takes the exclusive lock of a library that needs one.
  const standalone = <A>(f: () => A, context?: FailureContext): Effect.Effect<A, Pkcs11Failure> =>
    exclusive === undefined ? attemptNow(f, context) : exclusive.withPermit(attemptNow(f, context))

  // Native threadpool calls cannot be cancelled: an interrupted caller waits for the call to settle,
  // so the session is not reused while the token still works on it and the buffers stay referenced.
  const attemptAsync = <A>(f: () => Promise<A>, context?: FailureContext): Effect.Effect<A, Pkcs11Failure> =>
    Effect.uninterruptible(
      Effect.async<A, Pkcs11Failure>((resume) => {
        f().then(
          (a) => resume(Effect.succeed(a)),
          (error) => resume(failure(error, context))
        )
      })
    )

  const spanAttributes = (extra: Record<string, unknown>): Record<string, unknown> => ({
    "pkcs11.module": driver.moduleId,
    ...extra
  })

  const sessionAttributes = (session: number, extra: Record<string, unknown> = {}) => {
    const slot = sessionSlots.get(session)
    const label = slot === undefined ? undefined : slotLabels.get(slot)
    return spanAttributes(
      label === undefined ? { "pkcs11.session": session, ...extra } : {
        "pkcs11.session": session,
        "pkcs11.token": label,
        ...extra
      }
    )
  }

  const traced = <A, E>(
    method: string,
    attributes: Record<string, unknown>
  ) =>
  (effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.withSpan(effect, `Pkcs11.${method}`, { kind: "client", attributes, captureStackTrace: false })

  const onSession = <A>(method: string, session: number, effect: Effect.Effect<A, Pkcs11Failure>, extra = {}) =>
    lockOf(session).withPermit(effect).pipe(traced(method, sessionAttributes(session, extra)))

  const tokenLabelOf = (session: number): string | undefined => {
    const slot = sessionSlots.get(session)
    const cached = slot === undefined ? undefined : slotLabels.get(slot)
    if (cached !== undefined) return cached
    try {
      const info = driver.getSessionInfo(session)
      const label = trimPadding(driver.getTokenInfo(info.slotId).label)
      slotLabels.set(info.slotId, label)
      return label
    } catch {
      // Context for an error message only; the caller already has the real failure.
      return undefined
    }
  }

  const mechanismAttributes = (mechanism: Mechanism) => ({ "pkcs11.mechanism": mechanismName(mechanism.type) })

  // pkcs11js hands an empty buffer to the library as a NULL pointer: SoftHSM2 answers CKR_ARGUMENTS_BAD
  // and leaves the operation initialized, so the session refuses every later one (CKR_OPERATION_ACTIVE).
  // Empty input is refused here, before any operation starts.
  const nonEmpty = <A>(method: string, data: Uint8Array, effect: Effect.Effect<A, Pkcs11Failure>) =>
    data.length > 0
      ? effect
      : Effect.fail(new Pkcs11Error({ method, code: CKR.ARGUMENTS_BAD, returnValue: "CKR_ARGUMENTS_BAD" }))

  return {
    moduleId: driver.moduleId,

    objectGeneration: driver.objectGeneration,

    retain: Effect.acquireRelease(
      Effect.suspend(() =>
        driver.retain() ? Effect.void : Effect.fail(
          new Pkcs11Error({
            method: "C_Initialize",
            code: CKR.CRYPTOKI_NOT_INITIALIZED,
            returnValue: "CKR_CRYPTOKI_NOT_INITIALIZED"
          })
        )
      ),
      () => release(driver, closeTimeout)
    ),

    info: standalone(() => driver.getInfo()).pipe(traced("C_GetInfo", spanAttributes({}))),

    slots: (options) =>
      standalone(() => driver.getSlotList(options?.tokenPresent ?? true).map(slotId)).pipe(
        traced("C_GetSlotList", spanAttributes({}))
      ),

    slotInfo: (slot) =>
      standalone(() => {
        const raw = driver.getSlotInfo(slot)
        return {
          slotId: slot,
          description: trimPadding(raw.description),
          manufacturerId: trimPadding(raw.manufacturerId),
          tokenPresent: (raw.flags & CKF.TOKEN_PRESENT) !== 0,
          removable: (raw.flags & CKF.REMOVABLE_DEVICE) !== 0,
          hardware: (raw.flags & CKF.HW_SLOT) !== 0
        }
      }).pipe(traced("C_GetSlotInfo", spanAttributes({ "pkcs11.slot": slot }))),

    tokenInfo: (slot) =>
      standalone(() => {
        const info = toTokenInfo(slot, driver.getTokenInfo(slot))
        slotLabels.set(slot, info.label)
        return info
      }).pipe(traced("C_GetTokenInfo", spanAttributes({ "pkcs11.slot": slot }))),

    mechanisms: (slot) =>
      standalone(() => driver.getMechanismList(slot)).pipe(
        traced("C_GetMechanismList", spanAttributes({ "pkcs11.slot": slot }))
      ),

    mechanismInfo: (slot, type) =>
      standalone(() => toMechanismInfo(type, driver.getMechanismInfo(slot, type)), { mechanism: type }).pipe(
        traced("C_GetMechanismInfo", spanAttributes({ "pkcs11.slot": slot, "pkcs11.mechanism": mechanismName(type) }))
      ),

    initToken: (slot, { label, soPin }) =>
      Effect.suspend(() => {
        const bytes = Buffer.byteLength(label, "utf8")
        if (bytes > LABEL_BYTES) {
          return Effect.fail(
            new Pkcs11Error({ method: "C_InitToken", code: CKR.ARGUMENTS_BAD, returnValue: "CKR_ARGUMENTS_BAD" })
          )
        }
        const padded = label + " ".repeat(LABEL_BYTES - bytes)
        return standalone(() => {
          driver.initToken(slot, Redacted.value(soPin), padded)
          slotLabels.set(slot, label)
        }, { token: label })
      }).pipe(traced("C_InitToken", spanAttributes({ "pkcs11.slot": slot, "pkcs11.token": label }))),

    openSession: (slot, options) =>
      standalone(() => {
        const flags = CKF.SERIAL_SESSION | (options?.rw === true ? CKF.RW_SESSION : 0)
        const session = driver.openSession(slot, flags)
        sessionSlots.set(session, slot)
        return sessionHandle(session)
      }).pipe(traced("C_OpenSession", spanAttributes({ "pkcs11.slot": slot, "pkcs11.rw": options?.rw === true }))),

    closeSession: (session) =>
      onSession(
        "C_CloseSession",
        session,
        whenIdle(
          () => [session],
          attempt(() => {
            driver.closeSession(session)
            forget(session)
          }, { session })
        )
      ),

    closeAllSessions: (slot) => {
      const close = attemptNow(() => {
        driver.closeAllSessions(slot)
        for (const [session, sessionSlot] of sessionSlots) {
          if (sessionSlot === slot) forget(session)
        }
      })
      const sessionsOfSlot = () => [...sessionSlots].filter(([, s]) => s === slot).map(([session]) => session)
      // Every call on a session of the slot settles first: those under a session's lock, and those off
      // the event loop's thread. A library with one lock for every call needs that lock only.
      const closeAll = exclusive !== undefined ? exclusive.withPermit(close) : Effect.scoped(Effect.gen(function*() {
        const held = new Set<number>()
        for (let more = sessionsOfSlot(); more.length > 0; more = sessionsOfSlot().filter((s) => !held.has(s))) {
          for (const session of more) {
            yield* lockOf(session).takeScoped
            held.add(session)
          }
        }
        return yield* whenIdle(sessionsOfSlot, close)
      }))
      return closeAll.pipe(traced("C_CloseAllSessions", spanAttributes({ "pkcs11.slot": slot })))
    },

    sessionInfo: (session) =>
      onSession(
        "C_GetSessionInfo",
        session,
        attempt(() => {
          const raw = driver.getSessionInfo(session)
          const state = sessionStates[raw.state]
          if (state === undefined) throw new Error(`C_GetSessionInfo returned the unknown session state ${raw.state}`)
          sessionSlots.set(session, raw.slotId)
          return {
            slotId: slotId(raw.slotId),
            state,
            rw: (raw.flags & CKF.RW_SESSION) !== 0,
            deviceError: raw.deviceError
          }
        }, { session })
      ),

    login: (session, pin, userType = "user") =>
      onSession(
        "C_Login",
        session,
        Effect.suspend((): Effect.Effect<LoginResult, Pkcs11Failure> => {
          try {
            driver.login(session, userTypes[userType], Redacted.value(pin))
            return Effect.succeed("logged-in")
          } catch (error) {
            if (isCryptokiError(error) && error.code === CKR.USER_ALREADY_LOGGED_IN) {
              return Effect.succeed("already-logged-in")
            }
            return failure(error, { session, token: tokenLabelOf(session) })
          }
        }),
        { "pkcs11.user": userType }
      ),

    logout: (session) => onSession("C_Logout", session, attempt(() => driver.logout(session), { session })),

    initPin: (session, pin) =>
      onSession("C_InitPIN", session, attempt(() => driver.initPin(session, Redacted.value(pin)), { session })),

    setPin: (session, oldPin, newPin) =>
      onSession(
        "C_SetPIN",
        session,
        Effect.suspend(() =>
          attempt(() => driver.setPin(session, Redacted.value(oldPin), Redacted.value(newPin)), {
            session,
            token: tokenLabelOf(session)
          })
        )
      ),

    findObjects: (session, template) =>
      onSession(
        "C_FindObjects",
        session,
        attempt(() => driver.findObjects(session, template).map(objectHandle), { session })
      ),

    getAttributes: <N extends Attribute.Name>(session: SessionHandle, object: ObjectHandle, names: ReadonlyArray<N>) =>
      onSession(
        "C_GetAttributeValue",
        session,
        attempt(() => driver.getAttributes(session, object, names) as Attribute.Read<N>, { session })
      ),

    setAttributes: (session, object, template) =>
      onSession(
        "C_SetAttributeValue",
        session,
        attempt(() => driver.setAttributes(session, object, template), { session })
      ),

    createObject: (session, template) =>
      onSession(
        "C_CreateObject",
        session,
        attempt(() => objectHandle(driver.createObject(session, template)), { session })
      ),

    destroyObject: (session, object) =>
      onSession("C_DestroyObject", session, attempt(() => driver.destroyObject(session, object), { session })),

    generateKeyPair: (session, mechanism, templates) =>
      onSession(
        "C_GenerateKeyPair",
        session,
        attemptAsync(
          () =>
            driver.generateKeyPair(session, mechanism, templates.publicKey, templates.privateKey).then((pair) => ({
              publicKey: objectHandle(pair.publicKey),
              privateKey: objectHandle(pair.privateKey)
            })),
          { session, mechanism: mechanism.type }
        ),
        mechanismAttributes(mechanism)
      ),

    generateKey: (session, mechanism, template) =>
      onSession(
        "C_GenerateKey",
        session,
        attemptAsync(() => driver.generateKey(session, mechanism, template).then(objectHandle), {
          session,
          mechanism: mechanism.type
        }),
        mechanismAttributes(mechanism)
      ),

    sign: (session, mechanism, key, data) =>
      onSession(
        "C_Sign",
        session,
        nonEmpty(
          "C_Sign",
          data,
          attemptAsync(() => driver.sign(session, mechanism, key, data), { session, mechanism: mechanism.type })
        ),
        mechanismAttributes(mechanism)
      ),

    signsInline: exclusive === undefined && driver.signNow !== undefined,

    signDirect: exclusive !== undefined ? undefined : (session, mechanism, key, data, inline) => {
      if (data.length === 0) {
        return new Pkcs11Error({ method: "C_Sign", code: CKR.ARGUMENTS_BAD, returnValue: "CKR_ARGUMENTS_BAD" })
      }
      const signNow = driver.signNow
      if (inline && signNow !== undefined) {
        try {
          return signNow(session, mechanism, key, data)
        } catch (error) {
          return signFailure(error, session, mechanism)
        }
      }
      if (closing.has(session)) return closingFailure(session, mechanism)
      enterOffThread(session)
      return driver.sign(session, mechanism, key, data).then(
        (signature) => {
          leaveOffThread(session)
          return signature
        },
        (error) => {
          leaveOffThread(session)
          return signFailure(error, session, mechanism)
        }
      )
    },

    signBatch: exclusive !== undefined || driver.signBatch === undefined ?
      undefined :
      (thread, session, items) => {
        if (closing.has(session)) return Promise.resolve(items.map((item) => closingFailure(session, item.mechanism)))
        enterOffThread(session)
        return driver.signBatch!(thread, session, items).then(
          (results) => {
            leaveOffThread(session)
            return results.map((result, i) =>
              result instanceof Uint8Array
                ? result
                : fromReturnValue(result.method, result.code, { session, mechanism: items[i].mechanism.type })
            )
          },
          (error) => {
            leaveOffThread(session)
            throw error
          }
        )
      },

    verify: (session, mechanism, key, data, signature) =>
      onSession(
        "C_Verify",
        session,
        nonEmpty(
          "C_Verify",
          data,
          attemptAsync(() => driver.verify(session, mechanism, key, data, signature), {
            session,
            mechanism: mechanism.type
          })
        ),
        mechanismAttributes(mechanism)
      ),

    decrypt: (session, mechanism, key, data) =>
      onSession(
        "C_Decrypt",
        session,
        nonEmpty(
          "C_Decrypt",
          data,
          attemptAsync(() => driver.decrypt(session, mechanism, key, data), { session, mechanism: mechanism.type })
        ),
        mechanismAttributes(mechanism)
      )
  }
}
