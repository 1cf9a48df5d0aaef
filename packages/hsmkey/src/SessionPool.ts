/**
 * A bounded, self-healing pool of logged-in PKCS#11 sessions on one token.
 *
 * Login belongs to the token, not to a session (a logout on any session logs out all of them), so the
 * pool logs in once per token and process, on a session of its own kept for its lifetime, and shares
 * that login with every other pool of the process on the token. Leases never log out; the last pool with
 * a PIN to close does. A token that other code of the process logged in already answers
 * `CKR_USER_ALREADY_LOGGED_IN` without checking the PIN: the pool uses that login, logs a warning, and
 * leaves the logout to whoever logged in. Sessions are checked when lent: a closed one is replaced, a
 * logged-out token is logged in again (once, for all leases), and a removed token fails its callers with
 * `TokenNotPresent` until it is found again by serial number, in whatever slot it reappears.
 *
 * Signatures take no lease: the pool's signing lanes keep a few sessions while there are signatures to
 * make and sign one call per signature, checking a lane's session when a call on it fails.
 *
 * @since 0.1.0
 */
import { CKR } from "@hsmkey/pkcs11/Constants"
import * as FifoSemaphore from "@hsmkey/pkcs11/internal/fifoSemaphore"
import { Pkcs11, type SessionHandle, type SlotId } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Pool from "effect/Pool"
import * as Predicate from "effect/Predicate"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type * as Capabilities from "./Capabilities.js"
import {
  InvalidOptions,
  type PinMismatch,
  PoolClosed,
  PoolTimeout,
  type TokenAmbiguous,
  type TokenNotFound
} from "./HsmError.js"
import { CurrentSession, type HsmSession, type TokenRef } from "./HsmSession.js"
import * as CapabilitiesReader from "./internal/capabilities.js"
import * as LoginRegistry from "./internal/loginRegistry.js"
import * as Metrics from "./internal/metrics.js"
import * as Session from "./internal/session.js"
import * as SigningEngine from "./internal/signingEngine.js"
import * as TokenLookup from "./internal/tokenLookup.js"
import * as UnclosedSessions from "./internal/unclosedSessions.js"

/**
 * Options of a pool. Name the token by exactly one of `tokenLabel` and `tokenSerial`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionPoolOptions {
  readonly tokenLabel?: string | undefined
  readonly tokenSerial?: string | undefined
  /**
   * The user PIN. Without one the pool never logs in: its sessions are public, unless a pool with a
   * PIN keeps the token logged in.
   */
  readonly userPin?: Redacted.Redacted<string> | undefined
  /**
   * Sessions the pool may hold open at once, read-only and read/write together (default 8). Capped by
   * the token's own limit, less the pool's login session.
   */
  readonly maxSessions?: number | undefined
  /**
   * How long a caller waits before `PoolTimeout` (default 30 seconds). It bounds each wait on its own:
   * first for a turn among the pool's callers, then, when a new session must be opened, for a free
   * place under `maxSessions`; so the longest wait is about twice this. Opening a session and logging
   * in are not waits and are not cut short.
   */
  readonly acquireTimeout?: Duration.DurationInput | undefined
  /** How long an unused session stays open (default 5 minutes). */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  /**
   * Log in even when the token says one more wrong PIN locks it (`CKF_USER_PIN_FINAL_TRY`). By default
   * the pool refuses with `PinLocked` (`reason: "final-try"`), so that a mistyped PIN cannot lock the
   * token; openCryptoki sets the flag after two wrong PINs and locks at the third. An operator who knows
   * the PIN is right opts in here: one login attempt is made, and a wrong PIN then locks the token.
   */
  readonly loginOnFinalTry?: boolean | undefined
  /**
   * Signing lanes: sessions the pool keeps for signatures while there are signatures to make (default
   * up to 4, never more than `maxSessions`). A lane gives its session back to a lease that waits for a
   * place.
   */
  readonly signingLanes?: number | undefined
  /**
   * Sign on the event loop's thread when the library can (default `true`). pkcs11js's synchronous call
   * costs a few microseconds where a threadpool hop costs tens, so a token that signs in microseconds
   * (SoftHSM2, a local HSM) signs fastest inline; the event loop then waits for each signature. Set
   * `false` for a token whose signatures take milliseconds (a network HSM, RSA-4096): each then runs on
   * libuv's threadpool.
   */
  readonly inlineSigning?: boolean | undefined
  /**
   * Signing threads (default 2, never more than `maxSessions`; 0 for none): lanes that sign on worker
   * threads of the library, each taking what queued up while it was busy as one batch, one message per
   * batch, so that the token's work runs beside the event loop rather than on it. A lone caller still
   * signs inline while the lanes are idle. Libraries without such threads (the emulator, one that must be
   * called one call at a time) sign on lanes of the event loop's thread (`signingLanes`). Threads on
   * every core share them with the event loop: on two cores, two threads under load sign EdDSA and RS256
   * twice as fast as one and put the event loop's delay p99 at 3-9 ms, where one thread, or none, keeps it
   * under 4 ms (`pnpm bench` measures both on the machine at hand).
   */
  readonly signingThreads?: number | undefined
  /**
   * How a signature is tried again after a failure that is about the session or the token, not the request
   * (default: up to 5 more times, at once; `Schedule.stop` for never). Retried: the session
   * closed or forgotten (`SessionFailed` with `reason: "closed"`), its login lost (`"not-logged-in"`), the
   * token gone (`TokenNotPresent`). Each try runs in a checked session: a lost login is restored, a dead
   * session replaced, a removed token found again. Never retried: PIN errors, keys or mechanisms not
   * found, bad signatures. A caller who stops waiting (interrupted, timed out) ends the retries. Signing is
   * idempotent: a signature not returned is simply lost. Signatures in a session the caller holds
   * (`withSession`) are not retried: that session is the caller's.
   */
  readonly signingRetry?: Schedule.Schedule<unknown, SigningEngine.SignError> | undefined
}

/**
 * What a pool counts now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Sessions open, lent out or idle, besides the login session. */
  readonly open: number
  readonly leased: number
  /** Callers waiting for a session. */
  readonly waiting: number
  readonly maxSessions: number
}

/**
 * A pool of sessions on one token.
 *
 * @since 0.1.0
 * @category tags
 */
export class SessionPool extends Context.Tag("hsmkey/SessionPool")<SessionPool, SessionPool.Service>() {}

/**
 * The types that go with the `SessionPool` tag.
 *
 * @since 0.1.0
 */
export declare namespace SessionPool {
  /**
   * What the pool offers: sessions lent for a scope or for one effect, the token's capabilities and its
   * state.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly token: TokenRef
    /** What the token can do, read once from its mechanism list. */
    readonly capabilities: Effect.Effect<Capabilities.Capabilities, Pkcs11Failure>
    /**
     * Lends a session until the scope closes: read-only unless `rw` is asked for. Work uses it once it is
     * in context: `Effect.provideService(work, CurrentSession, session)`, or `layerSession`.
     */
    readonly session: (options?: SessionOptions) => Effect.Effect<HsmSession, AcquireError, Scope.Scope>
    /**
     * Runs `effect` in a session lent for its duration, in context as `CurrentSession`: every key and JOSE
     * operation inside uses it. Nested in a session of this token that serves (read/write where asked),
     * it uses that one.
     */
    readonly withSession: <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      options?: SessionOptions
    ) => Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession>>
    readonly stats: Effect.Effect<Stats>
  }
}

/**
 * How a session is lent: read-only unless `rw` is asked for. Key generation and import in a read-only
 * session in context borrow a read/write one beside it, which a pool of one session never has free (it
 * waits until `PoolTimeout`): lend `{ rw: true }` for work that writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionOptions {
  readonly rw?: boolean | undefined
}

/**
 * What lending a session can fail with: no session in time, a PIN the pool cannot log in with again (a
 * lost login is restored on the way), a token gone, a session the token refuses.
 *
 * @since 0.1.0
 * @category models
 */
export type AcquireError = PoolTimeout | PoolClosed | PinMismatch | Pkcs11Failure

/**
 * What building a pool can fail with: options that name no token or a bad size, no such token or more
 * than one, a PIN the token refuses or that differs from the one another pool of the process logged in
 * with, the token's own failures.
 *
 * @since 0.1.0
 * @category models
 */
export type MakeError = InvalidOptions | TokenNotFound | TokenAmbiguous | PinMismatch | Pkcs11Failure

interface Pooled {
  readonly handle: SessionHandle
  readonly slot: SlotId
  readonly rw: boolean
  leased: boolean
  /**
   * The token said the session is gone (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`). It is not
   * closed again: tokens such as openCryptoki hand its number to the next session opened, maybe another
   * pool's.
   */
  dead: boolean
}

interface Kind {
  readonly rw: boolean
  readonly gate: FifoSemaphore.FifoSemaphore
  readonly pool: Pool.Pool<Pooled, AcquireError>
  readonly items: Set<Pooled>
}

const DEFAULT_MAX_SESSIONS = 8
const DEFAULT_SIGNING_LANES = 4
// Measured on two cores (SoftHSM2): two threads sign EdDSA and RS256 twice as fast as one or as inline lanes
// under load; the event loop's delay p99 is then 3-9 ms (the OS shares the cores), 1-4 ms with one.
const DEFAULT_SIGNING_THREADS = 2
// At once: each try runs in a checked session, and no clock is involved (a TestClock would hold a delay).
// A fault that lasts fails within microseconds all the same.
const DEFAULT_SIGNING_RETRY = Schedule.recurs(5)

// These read any failure: a lease ends with whatever error its user's effect had.
const isLost = (error: unknown): boolean => Predicate.isTagged(error, "TokenNotPresent")

// A session that answered CKR_OPERATION_ACTIVE is stuck in an operation.
const isStuck = (error: unknown): boolean =>
  Predicate.isTagged(error, "Pkcs11Error") && Predicate.hasProperty(error, "code") &&
  error.code === CKR.OPERATION_ACTIVE

/**
 * Builds a pool in the current scope: finds the token, logs in (or shares this process's login), and
 * closes every session and logs out (if it was the last pool with a PIN on the token) when the scope
 * closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: SessionPoolOptions) => Effect.Effect<
  SessionPool.Service,
  MakeError,
  Pkcs11 | Scope.Scope
> = Effect.fn("SessionPool.make")(function*(options: SessionPoolOptions) {
  const pkcs11 = yield* Pkcs11
  const selector = yield* TokenLookup.selectorOf(options)
  const requested = options.maxSessions ?? DEFAULT_MAX_SESSIONS
  if (!Number.isInteger(requested) || requested < 1) {
    return yield* new InvalidOptions({ detail: `maxSessions must be a positive integer, not ${requested}` })
  }
  const signingLanes = options.signingLanes
  if (signingLanes !== undefined && (!Number.isInteger(signingLanes) || signingLanes < 1)) {
    return yield* new InvalidOptions({ detail: `signingLanes must be a positive integer, not ${signingLanes}` })
  }
  const signingThreads = options.signingThreads
  if (signingThreads !== undefined && (!Number.isInteger(signingThreads) || signingThreads < 0)) {
    return yield* new InvalidOptions({ detail: `signingThreads must be a whole number, not ${signingThreads}` })
  }
  const acquireTimeout = Duration.decode(options.acquireTimeout ?? "30 seconds")
  const idleTimeToLive = Duration.decode(options.idleTimeToLive ?? "5 minutes")

  // The library outlives the pool's sessions and every call made through them, whatever closes first.
  yield* pkcs11.retain
  const info = yield* TokenLookup.find(pkcs11, selector)
  const entry = yield* LoginRegistry.acquire(pkcs11, info, options.userPin)
  const policy: LoginRegistry.LoginPolicy = { loginOnFinalTry: options.loginOnFinalTry === true }
  yield* LoginRegistry.ensureLoggedIn(entry, options.userPin, policy)
  const token = entry.token
  const label = token.label

  // The login session counts against the token's limit; "unlimited" and "unavailable" set none.
  const reserve = options.userPin === undefined ? 0 : 1
  const tokenCap = typeof info.maxSessions === "number" ? Math.max(1, info.maxSessions - reserve) : Infinity
  const maxSessions = Math.min(requested, tokenCap)
  const maxRw = Math.min(maxSessions, typeof info.maxRwSessions === "number" ? info.maxRwSessions : Infinity)
  if (maxSessions < requested) {
    yield* Effect.logInfo(`Token "${label}" allows ${info.maxSessions} sessions: the pool holds at most ${maxSessions}`)
  }

  const metrics = Metrics.forToken(label)
  const poolTimeout = () => new PoolTimeout({ token: label, timeoutMillis: Duration.toMillis(acquireTimeout) })
  const poolClosed = () => new PoolClosed({ token: label })
  // A wait for a turn or a place ends at acquireTimeout, or as the pool closes.
  const waitEnded = (ended: FifoSemaphore.Ended): PoolTimeout | PoolClosed =>
    ended === "closed" ? poolClosed() : poolTimeout()

  // Open sessions of both kinds share one bound.
  const bound = yield* FifoSemaphore.make(maxSessions)
  const unclosed = UnclosedSessions.make(pkcs11, label, () => entry.losses)
  const kinds: { ro?: Kind; rw?: Kind } = {}
  let leased = 0

  // A call answered that the token is gone: when it is, every session goes with it; when the answer was
  // passing (the token still holds the login session), only the session that gave it.
  const tokenLost: Effect.Effect<boolean> = Effect.gen(function*() {
    if (!(yield* LoginRegistry.confirmLost(entry))) return false
    for (const kind of [kinds.ro, kinds.rw]) {
      if (kind === undefined) continue
      yield* Effect.forEach(kind.items, (item) => kind.pool.invalidate(item), { discard: true })
    }
    return true
  })

  // Before waiting for a free place, give back an idle session of the other kind: it would otherwise
  // hold its place until it expires.
  const evictIdle = (rw: boolean) =>
    Effect.suspend(() => {
      const other = rw ? kinds.ro : kinds.rw
      if (bound.available > 0 || other === undefined) return Effect.void
      for (const item of other.items) {
        if (!item.leased) return other.pool.invalidate(item)
      }
      return Effect.void
    })

  const openSession = (rw: boolean, items: Set<Pooled>): Effect.Effect<Pooled, AcquireError, Scope.Scope> =>
    Effect.gen(function*() {
      yield* evictIdle(rw)
      yield* bound.takeScopedWithin(acquireTimeout, waitEnded)
      const slot = yield* LoginRegistry.currentSlot(entry)
      yield* LoginRegistry.ensureLoggedIn(entry, options.userPin, policy)
      yield* unclosed.retry
      const item = yield* Effect.acquireRelease(
        Effect.map(pkcs11.openSession(slot, { rw }), (handle): Pooled => ({
          handle,
          slot,
          rw,
          leased: false,
          dead: false
        })),
        (item) => item.dead ? Effect.void : unclosed.close(item.handle)
      )
      items.add(item)
      yield* Effect.addFinalizer(() => Effect.sync(() => items.delete(item)))
      return item
    }).pipe(Effect.tapError((error) => isLost(error) ? LoginRegistry.confirmLost(entry) : Effect.void))

  const makeKind = (rw: boolean, max: number) =>
    Effect.gen(function*() {
      const items = new Set<Pooled>()
      const pool = yield* Pool.makeWithTTL({
        acquire: openSession(rw, items),
        min: 0,
        max,
        concurrency: 1,
        timeToLive: idleTimeToLive,
        timeToLiveStrategy: "usage"
      })
      // Effect's Pool wakes every waiter on each return (O(n²) for n waiters): callers queue here
      // instead, so that no more than `max` of them ever wait inside it.
      return { rw, gate: yield* FifoSemaphore.make(max), pool, items } satisfies Kind
    })

  // Closed again after the kinds' pools closed their sessions, before the login ends.
  yield* Effect.addFinalizer(() => unclosed.closeLast)
  kinds.ro = yield* makeKind(false, maxSessions)
  kinds.rw = yield* makeKind(true, maxRw)

  /**
   * Checks a session before lending it: `undefined` when it can be lent, or the error that shows the
   * token forgot it. A lost login is restored on the way.
   */
  const validate = (item: Pooled) =>
    Effect.gen(function*() {
      const observed = entry.epoch
      const sessionInfo = yield* pkcs11.sessionInfo(item.handle).pipe(Effect.either)
      if (sessionInfo._tag === "Left") {
        const error = sessionInfo.left
        if (UnclosedSessions.isClosed(error)) return error
        if (isLost(error) && !(yield* tokenLost)) return error
        return yield* Effect.fail(error)
      }
      const state = sessionInfo.right.state
      if (options.userPin !== undefined && (state === "ro-public" || state === "rw-public")) {
        yield* Effect.logInfo(`Token "${label}" lost its login; logging in again`)
        yield* LoginRegistry.relogin(entry, options.userPin, observed, policy)
      }
      return undefined
    })

  // Every session may have died at once: try each, and one fresh one.
  const borrow = (kind: Kind): Effect.Effect<Pooled, AcquireError, Scope.Scope> =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      for (let attempt = 0;; attempt++) {
        const attemptScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const item = yield* Scope.extend(kind.pool.get, attemptScope)
        const dead = yield* validate(item).pipe(Effect.tapError(() => Scope.close(attemptScope, Exit.void)))
        if (dead === undefined) return item
        // A session that answered a passing fault is closed; one the token forgot cannot be.
        item.dead = UnclosedSessions.isClosed(dead)
        yield* kind.pool.invalidate(item)
        yield* Scope.close(attemptScope, Exit.void)
        if (attempt > maxSessions) return yield* dead
      }
    })

  // When a lease ends: a session its user saw die goes, with a token gone all of them go, and while
  // someone waits for a place the session is closed rather than kept idle.
  const onLeaseEnd = (kind: Kind, item: Pooled) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
    Effect.gen(function*() {
      item.leased = false
      leased--
      yield* metrics.setInUse(leased)
      yield* giveBack(kind, item, exit)
    })

  const giveBack = (kind: Kind, item: Pooled, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const failures = Exit.isFailure(exit) ? [...Cause.failures(exit.cause)] : []
      const saidGone = failures.some(isLost)
      if (saidGone && (yield* tokenLost)) return
      // Only a failure on this session says it is gone: the lease may have used other sessions too.
      if (failures.some((failure) => UnclosedSessions.isClosed(failure) && failure.session === item.handle)) {
        item.dead = true
      }
      const unusable = item.dead || saidGone || failures.some(isStuck)
      if (unusable || bound.waiting > 0) yield* kind.pool.invalidate(item)
    })

  const sessionOf = (item: Pooled, lease: { ended: boolean }): Session.Session => ({
    handle: item.handle,
    slotId: item.slot,
    rw: item.rw,
    token,
    pkcs11,
    get epoch() {
      return entry.epoch
    },
    get active() {
      return !lease.ended
    },
    refresh: Effect.flatMap(validate(item), (dead) => dead === undefined ? Effect.void : Effect.fail(dead))
  })

  // Callers waiting when the pool closes, and callers after, fail with PoolClosed rather than an interruption:
  // the close ends their waits for a turn and for a place, and a caller let through checks again before it
  // borrows. No race with the close: a race runs its sides on fibers that inherit the caller's
  // interruptibility and awaits the loser's interruption, so an uninterruptible caller (an acquireRelease's
  // acquire, a finalizer, HttpApp.toWebHandler) would wait for the pool to close even after its borrow
  // succeeded; and sides made interruptible would end the wait at an interruption of the caller, which
  // reaches a fiber's children even while the fiber is uninterruptible.
  //
  // An interruptible caller's borrow still races the close, so that a borrow under way when the pool closes
  // (a session being opened, a login) is interrupted before the pool's sessions are closed, rather than
  // opening one after them that nothing would close.
  let closed = false
  const closing = yield* Deferred.make<void>()
  const closedNow = Effect.zipRight(Deferred.await(closing), Effect.fail(poolClosed()))
  const unlessClosed = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | PoolClosed, R> =>
    Effect.suspend((): Effect.Effect<A, E | PoolClosed, R> =>
      closed
        ? Effect.fail(poolClosed())
        : Effect.checkInterruptible((interruptible) => interruptible ? Effect.raceFirst(self, closedNow) : self)
    )

  // A signing lane's session: taken as a lease is, not counted as one, given back when the lane ends it.
  const openLane: Effect.Effect<Session.Session, AcquireError, Scope.Scope> = Effect.gen(function*() {
    const kind = kinds.ro!
    const lane = { ended: false }
    yield* kind.gate.takeScopedWithin(acquireTimeout, waitEnded)
    const item = yield* unlessClosed(borrow(kind))
    yield* Effect.addFinalizer((exit) => {
      lane.ended = true
      return giveBack(kind, item, exit)
    })
    return sessionOf(item, lane)
  })

  const engine = SigningEngine.make({
    pkcs11,
    open: unlessClosed(openLane),
    closed: poolClosed,
    lanes: Math.min(maxSessions, signingLanes ?? DEFAULT_SIGNING_LANES),
    inline: options.inlineSigning !== false && pkcs11.signsInline,
    threads: pkcs11.signBatch === undefined ? 0 : Math.min(maxSessions, signingThreads ?? DEFAULT_SIGNING_THREADS),
    retry: options.signingRetry ?? DEFAULT_SIGNING_RETRY
  })
  yield* Effect.addFinalizer(() => engine.close)

  const session = (options?: SessionOptions): Effect.Effect<HsmSession, AcquireError, Scope.Scope> =>
    Effect.gen(function*() {
      const kind = options?.rw === true ? kinds.rw! : kinds.ro!
      if (kind.gate.available === 0 || bound.available === 0) engine.releaseIdle()
      const lease = { ended: false }
      const start = yield* Clock.currentTimeMillis
      // The lease lives in a scope of its own, closed at once if the lease cannot be had (a timeout, an
      // interruption, an error) and otherwise with the caller's scope.
      const leaseScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      // Uninterruptible from the borrow to the finalizer that ends the lease, so the count stays true.
      const item = yield* Effect.uninterruptibleMask((restore) =>
        restore(
          unlessClosed(
            Effect.zipRight(kind.gate.takeScopedWithin(acquireTimeout, waitEnded), unlessClosed(borrow(kind)))
          )
        )
          .pipe(
            Scope.extend(leaseScope),
            Effect.onError((cause) => Scope.close(leaseScope, Exit.failCause(cause))),
            Effect.tap((item) => {
              item.leased = true
              leased++
              return Scope.addFinalizerExit(leaseScope, (exit) => {
                lease.ended = true
                return onLeaseEnd(kind, item)(exit)
              })
            })
          )
      )
      yield* metrics.recordWait((yield* Clock.currentTimeMillis) - start)
      yield* metrics.setInUse(leased)
      return Session.toPublic(sessionOf(item, lease))
    }).pipe(
      metrics.countErrors,
      Effect.withSpan("SessionPool.acquire", {
        attributes: { "hsm.token": label, "hsm.rw": options?.rw === true },
        captureStackTrace: false
      })
    )

  // Read once, on first use; a failure (a token briefly gone) is not remembered.
  let knownCapabilities: Capabilities.Capabilities | undefined
  const capabilities: Effect.Effect<Capabilities.Capabilities, Pkcs11Failure> = Effect.suspend(() =>
    knownCapabilities !== undefined ? Effect.succeed(knownCapabilities) : Effect.gen(function*() {
      const slot = yield* LoginRegistry.currentSlot(entry)
      knownCapabilities = yield* CapabilitiesReader.read(pkcs11, slot, yield* pkcs11.tokenInfo(slot))
      return knownCapabilities
    })
  )

  const lendFor = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: SessionOptions
  ): Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession>> =>
    Effect.scoped(Effect.flatMap(session(options), (lent) => Effect.provideService(effect, CurrentSession, lent)))

  const withSession = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: SessionOptions
  ): Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession>> =>
    Effect.flatMap(
      Effect.serviceOption(CurrentSession),
      (current): Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession>> =>
        // Nested in a session that serves already (this token, read/write where asked): that one.
        current._tag === "Some" && Session.serving(current, token, options?.rw === true) !== undefined
          ? Effect.provideService(effect, CurrentSession, current.value)
          : lendFor(effect, options)
    )

  const service: SessionPool.Service = {
    token,
    capabilities,
    session,
    withSession,
    stats: Effect.sync(() => ({
      open: (kinds.ro?.items.size ?? 0) + (kinds.rw?.items.size ?? 0),
      leased,
      waiting: (kinds.ro?.gate.waiting ?? 0) + (kinds.rw?.gate.waiting ?? 0) + bound.waiting,
      maxSessions
    }))
  }
  SigningEngine.register(service, engine)
  // Runs first as the pool's scope closes: waiters are told before sessions go.
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      closed = true
      kinds.ro?.gate.close()
      kinds.rw?.gate.close()
      bound.close()
      return Deferred.succeed(closing, undefined)
    })
  )
  return service
})

/**
 * A layer providing a `SessionPool`; it needs `Pkcs11`.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jws, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin, maxSessions: 4 }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "P-256", label: "signing" })
 *   const jws = yield* Jws.sign("hello", key)
 *   const { payload } = yield* Jws.verify(jws, key)
 *   assert.strictEqual(new TextDecoder().decode(payload), "hello")
 * })
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: SessionPoolOptions): Layer.Layer<SessionPool, MakeError, Pkcs11> =>
  Layer.scoped(SessionPool, make(options))

/**
 * A layer providing a `SessionPool` with its options read from `Config`:
 * `SessionPool.layerConfig({ tokenLabel: Config.string("HSM_TOKEN"), userPin: Config.redacted("HSM_PIN") })`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { SessionPool } from "hsmkey"
 *
 * // HSM_TOKEN and HSM_PIN are read when the layer is built; the PIN stays Redacted.
 * const Pool = SessionPool.layerConfig({
 *   tokenLabel: Config.string("HSM_TOKEN"),
 *   userPin: Config.redacted("HSM_PIN"),
 *   maxSessions: Config.integer("HSM_POOL_SIZE").pipe(Config.withDefault(8))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<SessionPoolOptions>
): Layer.Layer<SessionPool, MakeError | ConfigError.ConfigError, Pkcs11> =>
  Layer.scoped(SessionPool, Effect.flatMap(Config.unwrap(options), make))

/**
 * A layer with a session of the pool in context as `CurrentSession`, lent for the layer's lifetime: for a
 * program or a script that works in one session. The session is checked at every use, as at lending (a lost
 * login is restored).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSession = (
  options?: SessionOptions
): Layer.Layer<CurrentSession, AcquireError, SessionPool> => Layer.scoped(CurrentSession, session(options))

/**
 * Lends a session of the pool in context until the scope closes. Work uses it once it is in context:
 * `Effect.provideService(work, CurrentSession, session)`; `withSession` does both.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, HsmSession, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const session = yield* SessionPool.session()
 *     assert.strictEqual(session.token.label, "demo")
 *     // Work with the session in context uses it.
 *     return yield* HsmJwk.list().pipe(Effect.provideService(HsmSession.CurrentSession, session))
 *   })
 * )
 *
 * Effect.runPromise(Effect.provide(program, Hsm)).then((keys) => assert.deepStrictEqual(keys, []))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const session = (
  options?: SessionOptions
): Effect.Effect<HsmSession, AcquireError, SessionPool | Scope.Scope> =>
  Effect.flatMap(SessionPool, (pool) => pool.session(options))

/**
 * Runs `effect` in a session of the pool in context, lent for its duration and in context as
 * `CurrentSession`: the keys it loads or makes and the JOSE it signs all use that one session, one
 * operation at a time. Nested in a session of the pool's token that serves (read/write where asked), it
 * uses that one rather than lend another.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, Jwt, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * // Both steps run in one session lent for the whole, not one each.
 * const program = Effect.gen(function*() {
 *   const key = yield* HsmJwk.generate({ type: "Ed25519", label: "access-tokens" })
 *   return yield* Jwt.sign({ scope: "api" }, key, { subject: "alice", expiresIn: "15 minutes" })
 * }).pipe(SessionPool.withSession({ rw: true }))
 *
 * Effect.runPromise(Effect.provide(program, Hsm)).then((jwt) => assert.strictEqual(jwt.split(".").length, 3))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const withSession: {
  (options?: SessionOptions): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession> | SessionPool>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: SessionOptions
  ): Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession> | SessionPool>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: SessionOptions
  ): Effect.Effect<A, E | AcquireError, Exclude<R, CurrentSession> | SessionPool> =>
    Effect.flatMap(SessionPool, (pool) => pool.withSession(effect, options))
)
