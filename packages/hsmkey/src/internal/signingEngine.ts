import { CKR } from "@hsmkey/pkcs11/Constants"
import type { Mechanism, ObjectHandle, Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import { Pkcs11Error, type Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Predicate from "effect/Predicate"
import * as Runtime from "effect/Runtime"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { InvalidSignature, type MechanismUnsupported, type PoolClosed } from "../HsmError.js"
import type { AcquireError } from "../SessionPool.js"
import * as Algorithms from "./algorithms.js"
import * as MechanismSupport from "./mechanismSupport.js"
import type { SigningKey } from "./policy.js"
import type { Session } from "./session.js"
import * as Signer from "./signer.js"
import * as TokenState from "./tokenState.js"

/** The fiber of a caller: its id tells callers apart, its context is the one the Effect path runs in. */
export type Caller = Fiber.RuntimeFiber<unknown, unknown>

/** What signing through the engine can fail with. */
export type SignError = AcquireError | MechanismUnsupported | InvalidSignature | Signer.LookupError

/**
 * Where the engine's lanes get their sessions: opened on the pool's token, counted under its bound, and
 * given back when the scope closes (with the exit that says whether the session died).
 */
export interface LaneSource {
  readonly pkcs11: Pkcs11.Service
  readonly open: Effect.Effect<Session, AcquireError, Scope.Scope>
  /** Lanes at most; each holds one session while it has work or until a lease needs its place. */
  readonly lanes: number
  /** Sign on the calling thread when the library can (the event loop waits for the token meanwhile). */
  readonly inline: boolean
  /**
   * Lanes that sign in batches on signing threads of the library (`Pkcs11.Service.signBatch`), one thread
   * per lane; 0 for none. A lone caller still signs inline when `inline` holds and the lane is idle.
   */
  readonly threads: number
  /**
   * How a signature that failed for a passing reason is tried again, on the Effect path with the session
   * checked (a lost login restored, a dead session replaced, a removed token found again); the failures
   * it sees are those of `isTransient`.
   */
  readonly retry: Schedule.Schedule<unknown, SignError>
  /** What a caller gets that was queued when the pool closed, or came after. */
  readonly closed: () => PoolClosed
}

/**
 * A failure that says nothing about the request, only about the session or the token at that moment: the
 * session was closed or forgotten (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`), its login was lost
 * (`CKR_USER_NOT_LOGGED_IN`), or the token was gone (`CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`). A
 * signature not returned is simply lost, so signing again, in a checked session, is safe. PIN errors,
 * missing keys and mechanisms, and bad signatures are never transient.
 */
export const isTransient = (error: unknown): boolean =>
  (Predicate.isTagged(error, "SessionFailed") && Predicate.hasProperty(error, "reason") &&
    (error.reason === "closed" || error.reason === "not-logged-in")) ||
  Predicate.isTagged(error, "TokenNotPresent")

/**
 * The signing engine of a pool: signatures without a lease each.
 *
 * A lane owns a session of the pool for as long as it has work, and serves requests from one queue in
 * plain code: the key's handle proven once per login epoch and object generation (`Signer`, `TokenState`),
 * the mechanism chosen once per algorithm, one call into the library per signature. A caller that finds a
 * lane free and nothing queued signs at once, on its own fiber; what arrives while lanes are busy waits in
 * the queue and is taken by the next free lane, one request after another with no fiber hand-off between
 * them. Anything off that path (no proven handle yet, a failure, a session to open) runs the Effect code of
 * `Signer` on the lane's session, in the caller's context: a session is checked when a call on it fails
 * (`Session.refresh`: a lost login is restored, a dead session replaced), not before every use.
 */
export interface Engine {
  readonly sign: (
    key: SigningKey,
    alg: Algorithms.Algorithm,
    signingInput: Uint8Array
  ) => Effect.Effect<Uint8Array, SignError>
  /**
   * As `sign`, for the code that has the caller's fiber already and runs once per signature: the signature
   * itself when the fast path made it at once, on the caller's thread, else the effect that gets it (a
   * lane's queue, the Effect path, a failure).
   */
  readonly signIn: (
    caller: Caller,
    key: SigningKey,
    alg: Algorithms.Algorithm,
    signingInput: Uint8Array
  ) => Uint8Array | Effect.Effect<Uint8Array, SignError>
  /** Gives back the sessions of idle lanes, for a lease that waits for a place. */
  readonly releaseIdle: () => void
  /** Ends every lane; queued callers fail with `PoolClosed`. */
  readonly close: Effect.Effect<void>
}

interface Lane {
  /** Its signing thread, for a thread lane. */
  readonly index: number
  session: Session | undefined
  scope: Scope.CloseableScope | undefined
  busy: boolean
  /** A call on its session failed: the session is checked before it serves again. */
  suspect: boolean
  /** A lease waits for a place: the session goes back once the lane's work is done. */
  releaseWhenDone: boolean
  /** The lane's work under way: its session is not closed before it settles. */
  running: Promise<void> | undefined
}

interface Request {
  readonly key: SigningKey
  readonly alg: Algorithms.Algorithm
  readonly input: Uint8Array
  /** The caller's fiber: the Effect path runs with its context (services, tracer, log level). */
  readonly fiber: Caller
  readonly resume: (effect: Effect.Effect<Uint8Array, SignError>) => void
  done: boolean
  /** A transient failure of the fast path, which counts as the first try on the Effect path. */
  prior: SignError | undefined
}

// A lane working through a queue on the calling thread gives the event loop a turn this often.
const SLICE_MILLIS = 1

// How a session whose thread died in C_Sign is given back: as one stuck in an operation, not to be lent.
const operationLeftActive = new Pkcs11Error({
  method: "C_Sign",
  code: CKR.OPERATION_ACTIVE,
  returnValue: "CKR_OPERATION_ACTIVE"
})

// Requests one message to a signing thread carries at most.
const MAX_BATCH = 32

// Callers resumed from a batch before the event loop gets a turn.
const RESUME_CHUNK = 8

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

const eventLoopTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})

/** A signature; a failure of the call, for the caller; or `undefined`: the Effect path must run. */
export type Outcome = Uint8Array | Pkcs11Failure | InvalidSignature | undefined

/** Requests sent to a signing thread: each one's call (`undefined`: the Effect path), and the answers. */
interface Batch {
  readonly requests: ReadonlyArray<Request>
  readonly calls: ReadonlyArray<Call | undefined>
  /** In the order of the calls made; `undefined` when the thread failed. */
  readonly signed: Promise<ReadonlyArray<Uint8Array | Pkcs11Failure> | undefined>
}

/** One call of the fast path, ready to make: what to sign, and what its answer is read against. */
interface Call {
  readonly pkcs11: Pkcs11.Service
  readonly mechanism: Mechanism
  readonly handle: ObjectHandle
  readonly data: Uint8Array
  readonly generation: number
  readonly alg: Algorithms.Algorithm
  readonly expected: number
}

// The way a token computes each algorithm, chosen once: its mechanism list never changes.
const candidates = new WeakMap<
  MechanismSupport.TokenMechanisms,
  Map<Algorithms.Algorithm, Algorithms.Candidate | undefined>
>()

const candidateFor = (mechanisms: MechanismSupport.TokenMechanisms, alg: Algorithms.Algorithm) => {
  let byAlg = candidates.get(mechanisms)
  if (byAlg === undefined) {
    byAlg = new Map()
    candidates.set(mechanisms, byAlg)
  }
  if (!byAlg.has(alg)) byAlg.set(alg, MechanismSupport.signingCandidate(mechanisms, alg))
  return byAlg.get(alg)
}

/**
 * The fast path's call, when the key's handle is proven for this generation and the token's mechanism
 * for `alg` is known; `undefined` sends the request to the Effect path.
 */
const prepare = (session: Session, key: SigningKey, alg: Algorithms.Algorithm, input: Uint8Array): Call | undefined => {
  const pkcs11 = session.pkcs11
  const known = TokenState.knownHandle(session, Signer.cacheKey(key))
  const generation = pkcs11.objectGeneration()
  if (known === undefined || known.generation !== generation) return undefined
  const mechanisms = TokenState.knownMechanisms(session.token)
  const candidate = mechanisms === undefined ? undefined : candidateFor(mechanisms, alg)
  if (candidate === undefined) return undefined
  return {
    pkcs11,
    mechanism: candidate.mechanism,
    handle: known.handle,
    data: candidate.prepare(input),
    generation,
    alg,
    expected: Signer.expectedSize(key, alg)
  }
}

// A call was made, and its answer sends the request to the Effect path, with the session in doubt.
const again: unique symbol = Symbol("hsmkey/signingEngine/again")

/** An outcome, or `again`: what a call made on the fast path is for its caller. */
type Answer = Outcome | typeof again

/** What the token's answer to a call is for its caller. */
const outcomeOf = (call: Call, answer: Uint8Array | Pkcs11Failure): Answer => {
  // A handle the token no longer knows (its login lost, the object gone), or one that may have moved while
  // the call ran, is found and proven again on the Effect path.
  if (!(answer instanceof Uint8Array)) return answer._tag === "ObjectHandleInvalid" ? again : answer
  if (call.pkcs11.objectGeneration() !== call.generation) return again
  return Signer.jwsSignature(Algorithms.specs[call.alg], answer, call.expected) ??
    new InvalidSignature({ alg: call.alg, length: answer.length, expected: call.expected })
}

/** The fast path on this thread (inline) or the threadpool: the outcome, or a promise of it. */
const attempt = (
  session: Session,
  key: SigningKey,
  alg: Algorithms.Algorithm,
  input: Uint8Array,
  inline: boolean
): Answer | Promise<Answer> => {
  const direct = session.pkcs11.signDirect
  const call = direct === undefined ? undefined : prepare(session, key, alg, input)
  if (call === undefined) return undefined
  const answer = direct!(session.handle, call.mechanism, call.handle, call.data, inline)
  return answer instanceof Promise ? answer.then((settled) => outcomeOf(call, settled)) : outcomeOf(call, answer)
}

// Each pool's engine, for the JOSE code that has only the pool's service.
const engines = new WeakMap<object, Engine>()

export const register = (pool: object, engine: Engine): void => {
  engines.set(pool, engine)
}

/** The engine of a pool made by `SessionPool.make`; `undefined` for a service built otherwise. */
export const of = (pool: object): Engine | undefined => engines.get(pool)

export const make = (source: LaneSource): Engine => {
  const lanes: Array<Lane> = Array.from({ length: Math.max(1, source.threads || source.lanes) }, (_, index) => ({
    index,
    session: undefined,
    scope: undefined,
    busy: false,
    suspect: false,
    releaseWhenDone: false,
    running: undefined
  }))
  const queue: Array<Request> = []
  let head = 0
  let closed = false

  const take = (): Request | undefined => {
    while (head < queue.length) {
      const request = queue[head++]
      if (head > 1024 && head * 2 > queue.length) {
        queue.splice(0, head)
        head = 0
      }
      if (!request.done) return request
    }
    queue.length = 0
    head = 0
    return undefined
  }

  const dropSession = (lane: Lane, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
    Effect.suspend(() => {
      const scope = lane.scope
      lane.session = undefined
      lane.scope = undefined
      return scope === undefined ? Effect.void : Scope.close(scope, exit)
    })

  const ensureSession = (lane: Lane): Effect.Effect<Session, AcquireError> =>
    Effect.suspend(() => {
      if (lane.session !== undefined && lane.session.active) return Effect.succeed(lane.session)
      return Effect.flatMap(dropSession(lane, Exit.void), () =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            const opened = yield* restore(Scope.extend(source.open, scope)).pipe(
              Effect.onError((cause) =>
                Scope.close(scope, Exit.failCause(cause))
              )
            )
            lane.scope = scope
            lane.session = opened
            return opened
          })
        ))
    })

  /**
   * Checks the lane's session, as a pool checks one it lends: a lost login is restored; a session the
   * token forgot, or one whose token was removed, is given back and another opened (which finds the token
   * again, or fails when it is gone); a check that fails otherwise fails.
   */
  const checked = (lane: Lane): Effect.Effect<Session, AcquireError> =>
    Effect.gen(function*() {
      const opened = lane.session === undefined || !lane.session.active
      const session = yield* ensureSession(lane)
      lane.suspect = false
      // A session the pool opened for the lane just now was checked as it opened.
      if (opened) return session
      const exit = yield* Effect.exit(session.refresh)
      if (Exit.isSuccess(exit)) return session
      yield* dropSession(lane, exit)
      // A session lost with its token (removed, maybe put back in another slot): the pool finds the token
      // again as it opens the next one, or fails if it is gone for good.
      if (!isSessionLoss(exit.cause)) return yield* Effect.failCause(exit.cause)
      return yield* ensureSession(lane)
    })

  /**
   * The Effect path, taken when the fast one cannot sign (no proven handle for this generation, a failed
   * call, a library that signs one call at a time): the lane's session is checked, unless it was opened
   * just now, then `Signer` finds and proves the handle and signs. A failure reaches the caller; one that
   * shows the session is gone gives it back, so the next request opens another, and any other puts the
   * session in doubt.
   */
  const slow = (lane: Lane, request: Request): Effect.Effect<Uint8Array, SignError> =>
    Effect.flatMap(checked(lane), (session) => Signer.sign(session, request.key, request.alg, request.input)).pipe(
      Effect.tapErrorCause((cause) => {
        if (isSessionLoss(cause)) return dropSession(lane, Exit.failCause(cause))
        lane.suspect = true
        return Effect.void
      })
    )

  // The Effect path's tries, the first of them the fast path's failure when it had one.
  const tries = (lane: Lane, request: Request): Effect.Effect<Uint8Array, SignError> =>
    Effect.suspend(() => {
      const prior = request.prior
      request.prior = undefined
      return prior === undefined ? slow(lane, request) : Effect.fail(prior)
    }).pipe(Effect.retry({ schedule: source.retry, while: (error) => isTransient(error) && !request.done }))

  // The event loop's turn: synchronous signing on this thread (a caller's, or a lane's batch) stops once a
  // slice is used up, and goes on after the event loop ran (timers, I/O, other work).
  let sliceStart = -1
  // Which fiber signed inline in this slice, and whether another did too: a lone caller whose slice is
  // used up takes the event loop's turn and signs inline again; callers in numbers queue up for a batch.
  let sliceFiber = -1
  let sliceShared = false
  const endSlice = () => {
    sliceStart = -1
    sliceFiber = -1
    sliceShared = false
  }
  const withinSlice = (): boolean => {
    if (sliceStart < 0) {
      sliceStart = performance.now()
      setImmediate(endSlice)
      return true
    }
    return performance.now() - sliceStart < SLICE_MILLIS
  }

  const finish = (request: Request, effect: Effect.Effect<Uint8Array, SignError>) => {
    if (request.done) return
    request.done = true
    request.resume(effect)
  }

  // A lane whose session is open and not in doubt: the fast path may use it.
  const ready = (lane: Lane): Session | undefined => {
    const session = lane.session
    return session !== undefined && session.active && !lane.suspect ? session : undefined
  }

  // A fast call's answer on a lane. A failure is the caller's as it is, unless it is transient; any failure,
  // and an answer that sends the request to the Effect path, put the lane's session in doubt: it is checked
  // before it serves again.
  const settled = (lane: Lane, answer: Answer): Outcome => {
    if (answer === undefined || answer instanceof Uint8Array) return answer
    lane.suspect = true
    return answer === again ? undefined : answer
  }

  // Whether an outcome is the caller's answer: a signature, or a failure that is not the retries' to see.
  const final = (outcome: Outcome): outcome is Exclude<Outcome, undefined> =>
    outcome !== undefined && (outcome instanceof Uint8Array || !isTransient(outcome))

  const answerOf = (outcome: Exclude<Outcome, undefined>): Effect.Effect<Uint8Array, SignError> =>
    outcome instanceof Uint8Array ? Effect.succeed(outcome) : Effect.fail(outcome)

  // The Effect path, run with the caller's context: its answer.
  const slowly = (lane: Lane, request: Request): Promise<Exit.Exit<Uint8Array, SignError>> => {
    const runtime = Runtime.make({
      context: request.fiber.currentContext,
      fiberRefs: request.fiber.getFiberRefs(),
      runtimeFlags: Runtime.defaultRuntimeFlags
    })
    return Runtime.runPromiseExit(runtime, tries(lane, request))
  }

  /**
   * How a lane's run gives its answers: at once while more work is queued; the last one once the lane
   * stands idle again, so that its caller, resumed, finds the lane free for its next request (rather than
   * having another lane open a session for it).
   */
  const answers = () => {
    let held: Request | undefined
    let heldAnswer: Effect.Effect<Uint8Array, SignError> = Effect.interrupt
    const flush = () => {
      if (held === undefined) return
      const request = held
      held = undefined
      finish(request, heldAnswer)
    }
    const give = (request: Request, answer: Effect.Effect<Uint8Array, SignError>) => {
      flush()
      if (head < queue.length) return finish(request, answer)
      held = request
      heldAnswer = answer
    }
    return { give, flush }
  }

  /**
   * A thread lane's share of what is queued, sent to its thread in one message when its session can take
   * the fast path; `undefined` when nothing is queued.
   */
  const sendBatch = (lane: Lane, signBatch: NonNullable<Pkcs11.Service["signBatch"]>): Batch | undefined => {
    const idle = lanes.reduce((count, other) => other.busy && other !== lane ? count : count + 1, 0)
    const share = Math.min(MAX_BATCH, Math.ceil((queue.length - head) / Math.max(1, idle)))
    const requests: Array<Request> = []
    for (let request = take(); request !== undefined; request = requests.length < share ? take() : undefined) {
      requests.push(request)
    }
    if (requests.length === 0) return undefined
    const session = ready(lane)
    const calls = requests.map((request) =>
      session === undefined ? undefined : prepare(session, request.key, request.alg, request.input)
    )
    const items = calls.flatMap((call) =>
      call === undefined ? [] : [{ mechanism: call.mechanism, key: call.handle, data: call.data }]
    )
    const signed = items.length === 0
      ? Promise.resolve([])
      : signBatch(lane.index, session!.handle, items).catch(() => undefined)
    return { requests, calls, signed }
  }

  /**
   * A thread lane's work: batch after batch while callers queue up. What the fast path cannot sign, and a
   * batch whose thread failed, go the Effect path on this thread.
   */
  const runThreadLane = async (
    lane: Lane,
    signBatch: NonNullable<Pkcs11.Service["signBatch"]>,
    answer: ReturnType<typeof answers>
  ): Promise<void> => {
    for (let batch = sendBatch(lane, signBatch); batch !== undefined; batch = sendBatch(lane, signBatch)) {
      answer.flush()
      const { calls, requests } = batch
      const signed = await batch.signed
      // The thread failed: its session may be left in an operation, so it goes, and the batch is signed on
      // this thread in a new one; the next batch starts a new thread.
      if (signed === undefined) await Effect.runPromise(dropSession(lane, Exit.fail(operationLeftActive)))
      let next = 0
      for (const [i, request] of requests.entries()) {
        const call = calls[i]
        const answered = call === undefined || signed === undefined ? undefined : signed[next++]
        const outcome = answered === undefined ? undefined : settled(lane, outcomeOf(call!, answered))
        if (final(outcome)) {
          answer.give(request, answerOf(outcome))
        } else {
          request.prior = outcome
          answer.flush()
          answer.give(request, await slowly(lane, request))
        }
        // Callers resumed run on the event loop's thread at once: a few at a time, so that it gets its turn.
        if ((i + 1) % RESUME_CHUNK === 0 && i + 1 < requests.length) {
          answer.flush()
          await yieldToEventLoop()
        }
      }
    }
  }

  /**
   * Works through the queue: in batches on the lane's thread when it has one. Inline, every request on
   * the fast path is signed at once, one after the other with no await between them, so that what queued
   * up while the lane was busy goes in one batch; the lane then stands idle again for callers to sign
   * inline themselves.
   */
  const run = async (lane: Lane): Promise<void> => {
    lane.busy = true
    const answer = answers()
    try {
      const signBatch = source.pkcs11.signBatch
      if (source.threads > 0 && signBatch !== undefined) {
        return await runThreadLane(lane, signBatch, answer)
      }
      for (;;) {
        if (source.inline && !withinSlice()) {
          answer.flush()
          await yieldToEventLoop()
          continue
        }
        const request = take()
        if (request === undefined) return
        const session = ready(lane)
        if (session !== undefined) {
          const fast = attempt(session, request.key, request.alg, request.input, source.inline)
          if (fast instanceof Promise) answer.flush()
          const outcome = settled(lane, fast instanceof Promise ? await fast : fast)
          if (final(outcome)) {
            answer.give(request, answerOf(outcome))
            continue
          }
          request.prior = outcome
        }
        answer.flush()
        answer.give(request, await slowly(lane, request))
      }
    } finally {
      lane.busy = false
      if (lane.releaseWhenDone) {
        lane.releaseWhenDone = false
        release(lane)
      }
      answer.flush()
    }
  }

  const pump = () => {
    for (const lane of lanes) {
      if (head >= queue.length) return
      if (!lane.busy) {
        const running = run(lane).finally(() => {
          if (lane.running === running) lane.running = undefined
        })
        lane.running = running
      }
    }
  }

  const enqueue = (
    fiber: Caller,
    key: SigningKey,
    alg: Algorithms.Algorithm,
    input: Uint8Array,
    prior: SignError | undefined
  ) =>
    Effect.async<Uint8Array, SignError>((resume) => {
      if (closed) return resume(Effect.fail(source.closed()))
      const request: Request = { key, alg, input, fiber, resume, done: false, prior }
      queue.push(request)
      pump()
      // A request not yet served is dropped; one on a lane finishes there, its answer unread.
      return Effect.sync(() => {
        request.done = true
      })
    })

  // The fast path on the caller's thread, when a lane is free, nothing is queued and the slice lasts.
  const signNow = (fiber: Caller, key: SigningKey, alg: Algorithms.Algorithm, input: Uint8Array): Outcome => {
    if (!source.inline || head < queue.length || !withinSlice()) return undefined
    const caller = fiber.id().id
    if (sliceFiber < 0) sliceFiber = caller
    else if (sliceFiber !== caller) sliceShared = true
    for (const lane of lanes) {
      const session = lane.busy ? undefined : ready(lane)
      if (session === undefined) continue
      // Inline answers are never promises: the library signs on this thread.
      return settled(lane, attempt(session, key, alg, input, true) as Answer)
    }
    return undefined
  }

  const signIn = (
    fiber: Caller,
    key: SigningKey,
    alg: Algorithms.Algorithm,
    input: Uint8Array
  ): Uint8Array | Effect.Effect<Uint8Array, SignError> => {
    const outcome = signNow(fiber, key, alg, input)
    if (outcome instanceof Uint8Array) return outcome
    if (final(outcome)) return Effect.fail(outcome)
    // A lone caller whose slice is used up lets the event loop run, then signs inline again; others, and a
    // transient failure, go to a lane's queue.
    const lone = outcome === undefined && source.inline && head >= queue.length && !withinSlice() &&
      !sliceShared && sliceFiber === fiber.id().id
    return lone ? Effect.zipRight(eventLoopTurn, sign(key, alg, input)) : enqueue(fiber, key, alg, input, outcome)
  }

  const sign = (key: SigningKey, alg: Algorithms.Algorithm, input: Uint8Array): Effect.Effect<Uint8Array, SignError> =>
    Effect.withFiberRuntime((fiber) => {
      const signed = signIn(fiber, key, alg, input)
      return signed instanceof Uint8Array ? Effect.succeed(signed) : signed
    })

  const release = (lane: Lane) => {
    const scope = lane.scope
    if (scope === undefined) return
    lane.scope = undefined
    lane.session = undefined
    Effect.runFork(Scope.close(scope, Exit.void))
  }

  // A busy lane gives its session back when its work is done.
  const releaseIdle = () => {
    for (const lane of lanes) {
      if (lane.busy) lane.releaseWhenDone = true
      else release(lane)
    }
  }

  // Queued callers fail with PoolClosed; what a lane signs now (maybe on a thread, in its session) settles
  // before its session is closed.
  const close = Effect.suspend(() => {
    closed = true
    for (let request = take(); request !== undefined; request = take()) finish(request, Effect.fail(source.closed()))
    const running = lanes.flatMap((lane) => lane.running === undefined ? [] : [lane.running])
    return Effect.zipRight(
      running.length === 0 ? Effect.void : Effect.promise(() => Promise.all(running)),
      Effect.forEach(lanes, (lane) => dropSession(lane, Exit.void), { discard: true })
    )
  })

  return { sign, signIn, releaseIdle, close }
}

const failuresOf = (cause: Cause.Cause<unknown>): Array<unknown> => [...Cause.failures(cause)]

// The session cannot serve again: the token forgot it, or the token is gone.
const isSessionLoss = (cause: Cause.Cause<unknown>): boolean =>
  failuresOf(cause).some((error) =>
    Predicate.isTagged(error, "SessionFailed") || Predicate.isTagged(error, "TokenNotPresent")
  )
