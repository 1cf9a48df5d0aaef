import * as FifoSemaphore from "@hsmkey/pkcs11/internal/fifoSemaphore"
import type { Pkcs11, SessionHandle, SlotId, TokenInfo } from "@hsmkey/pkcs11/Pkcs11"
import { PinExpired, PinIncorrect, PinLocked, PinNotInitialized, type Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import { PinMismatch } from "../HsmError.js"
import type { TokenRef } from "../HsmSession.js"
import * as Metrics from "./metrics.js"
import * as TokenLookup from "./tokenLookup.js"
import * as UnclosedSessions from "./unclosedSessions.js"

/**
 * The login state of one token, shared by every pool of the process on it.
 *
 * PKCS#11 login belongs to the application and the token, not to a session: a logout on any session
 * logs out all of them, and closing the last session logs out. So one login session per token stays
 * open while a pool with a PIN lives on the token, leases never log out, and the last pool
 * with a PIN to close logs out.
 */
export interface Entry {
  readonly key: string
  readonly token: TokenRef
  readonly pkcs11: Pkcs11.Service
  /** The keyed digest of the PIN the pools on the token share, while any of them has one. */
  pinDigest: string | undefined
  /** Pools on the token. */
  references: number
  /** Pools on the token that came with a PIN: the login lasts as long as one of them. */
  pinHolders: number
  /** The token's slot now; forgotten when the token is lost, since a re-inserted token moves. */
  slot: SlotId | undefined
  loginSession: SessionHandle | undefined
  /**
   * Whether this process's `C_Login` logged the token in. When the token answered that it was logged
   * in already, someone else in the process holds the login, and it is theirs to end.
   */
  ownLogin: boolean
  /**
   * Whether this process's own login may have outlived its login session: the session was closed on a
   * token still there, after a passing fault, while other sessions may hold the login.
   */
  loginKept: boolean
  /**
   * Changes at every login and loss, to a value unique in the process: object handles found in an
   * earlier epoch may be stale, even across pools that come and go.
   */
  epoch: number
  /**
   * How many times the token was found gone: session numbers from before a loss may be another's since,
   * while a login restored leaves them the pool's.
   */
  losses: number
  readonly lock: FifoSemaphore.FifoSemaphore
  readonly unclosed: UnclosedSessions.UnclosedSessions
}

/** What logging in can fail with: a PIN the token refuses or another pool's PIN, a token gone. */
export type LoginError = PinMismatch | Pkcs11Failure

interface Registry {
  epochs: number
  readonly entries: Map<string, Entry>
  /** Digests of PINs a token rejected, per token: the process never tries them again. */
  readonly rejected: Map<string, Set<string>>
  readonly lock: FifoSemaphore.FifoSemaphore
  readonly digestKey: Buffer
}

// One registry per process, shared by every copy of this package: login state is per process.
const processWide = globalThis as unknown as Record<symbol, unknown>
const registry = (processWide[Symbol.for("hsmkey/LoginRegistry")] ??= {
  epochs: 0,
  entries: new Map(),
  rejected: new Map(),
  lock: FifoSemaphore.unsafeMake(1),
  digestKey: Crypto.randomBytes(32)
}) as Registry

// PINs are compared by a keyed digest that never leaves the process, never by their text.
const digest = (pin: Redacted.Redacted<string>): string =>
  Crypto.createHmac("sha256", registry.digestKey).update(Redacted.value(pin)).digest("hex")

const nextEpoch = (): number => ++registry.epochs

const rejectedOf = (key: string): Set<string> => {
  let set = registry.rejected.get(key)
  if (set === undefined) {
    set = new Set()
    registry.rejected.set(key, set)
  }
  return set
}

const isPublic = (state: string) => state === "ro-public" || state === "rw-public"

/**
 * How a pool treats a PIN one wrong attempt away from locking (`CKF_USER_PIN_FINAL_TRY`): by default it
 * does not try it, so that a mistyped PIN cannot lock the token.
 */
export interface LoginPolicy {
  readonly loginOnFinalTry: boolean
}

const defaultPolicy: LoginPolicy = { loginOnFinalTry: false }

/**
 * Refuses to log in when the user PIN was never set, is locked, one more wrong PIN could lock it (unless
 * the policy accepts the risk), or it must be changed first.
 */
export const checkPinFlags = (
  info: TokenInfo,
  policy: LoginPolicy = defaultPolicy
): Effect.Effect<void, PinNotInitialized | PinLocked | PinExpired> => {
  if (!info.userPinInitialized) return Effect.fail(new PinNotInitialized({ method: "C_Login", token: info.label }))
  if (info.userPin.locked) return Effect.fail(new PinLocked({ method: "C_Login", token: info.label, reason: "locked" }))
  if (info.userPin.finalTry && !policy.loginOnFinalTry) {
    return Effect.fail(new PinLocked({ method: "C_Login", token: info.label, reason: "final-try" }))
  }
  if (info.userPin.toBeChanged) {
    return Effect.fail(new PinExpired({ method: "C_Login", token: info.label, reason: "to-be-changed" }))
  }
  return Effect.void
}

/**
 * The token's slot now, found by serial number when it is not known.
 */
export const currentSlot = (entry: Entry): Effect.Effect<SlotId, Pkcs11Failure> =>
  entry.slot !== undefined
    ? Effect.succeed(entry.slot)
    : Effect.tap(TokenLookup.slotOf(entry.pkcs11, entry.token.serialNumber), (slot) => {
      entry.slot = slot
    })

/**
 * Logs in on a new login session. Must run under `entry.lock`; uninterruptible, so that a session that
 * logged in is never left open and unknown.
 */
const loginFresh = (entry: Entry, pin: Redacted.Redacted<string>, policy: LoginPolicy) =>
  Effect.uninterruptible(Effect.gen(function*() {
    const pkcs11 = entry.pkcs11
    const slot = yield* currentSlot(entry)
    yield* checkPinFlags(yield* pkcs11.tokenInfo(slot), policy)
    const session = yield* pkcs11.openSession(slot)
    yield* loginOn(entry, session, pin).pipe(Effect.tapError(() => entry.unclosed.close(session)))
    entry.loginSession = session
    if (!entry.ownLogin) {
      yield* Effect.logWarning(
        `Token "${entry.token.label}" was logged in already by other code in this process: its PIN was not checked, and hsmkey will not log it out`
      )
    }
  }))

/**
 * Logs in on a session, noting whether the login is this process's own; a rejected PIN is remembered
 * and never tried again by this process.
 */
const loginOn = (entry: Entry, session: SessionHandle, pin: Redacted.Redacted<string>) =>
  entry.pkcs11.login(session, pin).pipe(
    Effect.tap((result) => {
      entry.ownLogin = result === "logged-in" || (result === "already-logged-in" && entry.loginKept)
      entry.loginKept = false
      entry.epoch = nextEpoch()
      return Metrics.countLogin(entry.token.label)
    }),
    Effect.tapError((error) =>
      Effect.sync(() => {
        if (error._tag !== "PinIncorrect") return
        const rejected = digest(pin)
        rejectedOf(entry.key).add(rejected)
        // Pools still holding the rejected PIN fail on their own; a pool with another PIN may now join.
        if (entry.pinDigest === rejected) entry.pinDigest = undefined
      })
    ),
    Effect.withSpan("SessionPool.login", { attributes: { "hsm.token": entry.token.label }, captureStackTrace: false })
  )

/**
 * Fails when this PIN may not log in: the process saw the token reject it, or the token is shared under
 * another PIN.
 */
const checkPin = (entry: Entry, pin: Redacted.Redacted<string>): Effect.Effect<void, PinIncorrect | PinMismatch> => {
  const pinDigest = digest(pin)
  if (rejectedOf(entry.key).has(pinDigest)) {
    return Effect.fail(new PinIncorrect({ method: "C_Login", token: entry.token.label }))
  }
  if (entry.pinDigest !== undefined && entry.pinDigest !== pinDigest) {
    return Effect.fail(new PinMismatch({ token: entry.token.label }))
  }
  return Effect.void
}

/**
 * Makes sure the token is logged in for a pool with this PIN: the first pool logs in, later pools with
 * the same PIN share that login, and a pool without a PIN needs none.
 */
export const ensureLoggedIn = (
  entry: Entry,
  pin: Redacted.Redacted<string> | undefined,
  policy: LoginPolicy = defaultPolicy
): Effect.Effect<void, LoginError> =>
  pin === undefined ? Effect.void : entry.lock.withPermit(Effect.suspend(() =>
    Effect.zipRight(
      checkPin(entry, pin),
      entry.loginSession === undefined ? loginFresh(entry, pin, policy) : Effect.void
    )
  ))

/**
 * Logs in on the login session if it lost its login, or on a new one if it is gone.
 */
const restoreLogin = (
  entry: Entry,
  pin: Redacted.Redacted<string>,
  policy: LoginPolicy
): Effect.Effect<void, LoginError> => {
  const loginSession = entry.loginSession
  if (loginSession === undefined) return loginFresh(entry, pin, policy)
  return entry.pkcs11.sessionInfo(loginSession).pipe(
    Effect.flatMap((info) =>
      isPublic(info.state)
        ? Effect.flatMap(entry.pkcs11.tokenInfo(info.slotId), (token) => checkPinFlags(token, policy)).pipe(
          Effect.zipRight(loginOn(entry, loginSession, pin))
        )
        : Effect.void
    ),
    Effect.catchTag("SessionFailed", (error) => {
      if (error.reason !== "closed") return Effect.fail(error)
      entry.loginSession = undefined
      return loginFresh(entry, pin, policy)
    })
  )
}

/**
 * Logs in again after a lease found its session logged out, once for all the leases that saw the same
 * epoch: the first re-logs in, the others find the epoch moved on. A pool without a PIN never does.
 */
export const relogin = (
  entry: Entry,
  pin: Redacted.Redacted<string> | undefined,
  observedEpoch: number,
  policy: LoginPolicy = defaultPolicy
): Effect.Effect<void, LoginError> =>
  pin === undefined ?
    Effect.void :
    entry.lock.withPermit(Effect.suspend(() =>
      entry.epoch === observedEpoch
        ? Effect.zipRight(checkPin(entry, pin), restoreLogin(entry, pin, policy))
        : Effect.void
    ))

/**
 * Finds out whether the token is gone after a call answered so (`CKR_DEVICE_REMOVED`,
 * `CKR_TOKEN_NOT_PRESENT`). A removal ends every session of the token, so a login session that still
 * answers shows the token never left: the answer was passing, and the login, the slot and every handle
 * stand. Otherwise the slot and the login session are forgotten: the next use finds the token again by
 * serial number and logs in anew, and the new epoch retires every handle found before.
 */
export const confirmLost = (entry: Entry): Effect.Effect<boolean> =>
  entry.lock.withPermit(Effect.suspend(() => {
    const session = entry.loginSession
    if (session === undefined) return Effect.as(forget(entry), true)
    return entry.pkcs11.sessionInfo(session).pipe(
      Effect.matchEffect({
        onSuccess: () => Effect.succeed(false),
        onFailure: () => Effect.as(forget(entry), true)
      })
    )
  }))

const forget = (entry: Entry): Effect.Effect<void> => {
  const session = entry.loginSession
  entry.loginSession = undefined
  entry.slot = undefined
  entry.epoch = nextEpoch()
  entry.losses++
  // Unless the token is gone, this process's login may outlive its session: other sessions keep it (or a
  // close that fails leaves the session itself), and the next C_Login is answered "logged in already".
  // When the token is gone, that C_Login logs in afresh.
  entry.loginKept = entry.ownLogin
  return session === undefined ? Effect.void : entry.unclosed.close(session)
}

// Ends the login this process made; a login someone else made is theirs to end. A login kept alive by
// other sessions after its own session was closed is ended on a session opened for the purpose.
const endLogin = (entry: Entry): Effect.Effect<void> =>
  entry.lock.withPermit(Effect.suspend(() => {
    const session = entry.loginSession
    const kept = entry.loginKept
    const own = entry.ownLogin
    entry.loginSession = undefined
    entry.ownLogin = false
    entry.loginKept = false
    const ending = session !== undefined
      ? Effect.zipRight(own ? logoutOn(entry, session) : Effect.void, entry.unclosed.close(session))
      : !kept
      ? Effect.void
      : Effect.acquireUseRelease(
        Effect.flatMap(currentSlot(entry), (slot) => entry.pkcs11.openSession(slot)),
        (opened) => logoutOn(entry, opened),
        (opened) => entry.unclosed.close(opened)
      ).pipe(
        Effect.catchAll((error) =>
          Effect.logDebug(`Ending the login of token "${entry.token.label}" failed: ${error.message}`)
        )
      )
    // A login session whose close failed while the token still had it gets a last try.
    return Effect.zipRight(ending, entry.unclosed.closeLast)
  }))

const loggedOutAlready = new Set([
  "CKR_USER_NOT_LOGGED_IN",
  "CKR_DEVICE_REMOVED",
  "CKR_TOKEN_NOT_PRESENT",
  "CKR_SESSION_HANDLE_INVALID",
  "CKR_SESSION_CLOSED"
])

const logoutOn = (entry: Entry, session: SessionHandle): Effect.Effect<void> =>
  entry.pkcs11.logout(session).pipe(
    Effect.catchAll((error) =>
      // A token that lost the login meanwhile (removed and put back, logged out by other code), or whose login
      // session is gone with it, is where the logout would have left it.
      "returnValue" in error && loggedOutAlready.has(error.returnValue)
        ? Effect.logDebug(`Token "${entry.token.label}" was logged out already: ${error.message}`)
        : Effect.logWarning(`Logging out of token "${entry.token.label}" failed: ${error.message}`)
    )
  )

const release = (entry: Entry, withPin: boolean): Effect.Effect<void> =>
  registry.lock.withPermit(Effect.suspend(() => {
    entry.references--
    if (entry.references === 0) registry.entries.delete(entry.key)
    if (!withPin) return Effect.void
    entry.pinHolders--
    if (entry.pinHolders > 0) return Effect.void
    entry.pinDigest = undefined
    return endLogin(entry)
  }))

/**
 * Takes a reference to the token's login state for a pool, for the scope's lifetime. A PIN this process
 * saw rejected fails at once, without a `C_Login`; a PIN other than the one the token is shared under
 * fails with `PinMismatch`, since the token would not check it.
 */
export const acquire = (
  pkcs11: Pkcs11.Service,
  token: TokenInfo,
  pin: Redacted.Redacted<string> | undefined
): Effect.Effect<Entry, PinIncorrect | PinMismatch, Scope.Scope> =>
  Effect.acquireRelease(
    registry.lock.withPermit(Effect.suspend((): Effect.Effect<Entry, PinIncorrect | PinMismatch> => {
      const key = `${pkcs11.moduleId}\u0000${token.serialNumber}`
      let entry = registry.entries.get(key)
      if (entry === undefined) {
        const created: Entry = {
          key,
          token: { label: token.label, serialNumber: token.serialNumber, moduleId: pkcs11.moduleId },
          pkcs11,
          pinDigest: undefined,
          references: 0,
          pinHolders: 0,
          slot: token.slotId,
          loginSession: undefined,
          ownLogin: false,
          loginKept: false,
          epoch: nextEpoch(),
          lock: FifoSemaphore.unsafeMake(1),
          losses: 0,
          unclosed: UnclosedSessions.make(pkcs11, token.label, () => created.losses)
        }
        entry = created
        registry.entries.set(key, entry)
      }
      const joined = entry
      const admitted = pin === undefined ? Effect.void : checkPin(joined, pin)
      return admitted.pipe(
        Effect.map(() => {
          if (pin !== undefined) {
            joined.pinDigest = digest(pin)
            joined.pinHolders++
          }
          joined.references++
          return joined
        }),
        Effect.tapError(() =>
          Effect.sync(() => {
            if (joined.references === 0) registry.entries.delete(key)
          })
        )
      )
    })),
    (entry) => release(entry, pin !== undefined)
  )

/**
 * How many session pools of this process are on the token now.
 */
export const poolsOn = (pkcs11: Pkcs11.Service, serialNumber: string): number =>
  registry.entries.get(`${pkcs11.moduleId}\u0000${serialNumber}`)?.references ?? 0

/**
 * Forgets the PINs the token rejected: after its PIN was set or changed, one of them may be right now.
 */
export const forgetRejected = (pkcs11: Pkcs11.Service, serialNumber: string): void => {
  registry.rejected.delete(`${pkcs11.moduleId}\u0000${serialNumber}`)
}
