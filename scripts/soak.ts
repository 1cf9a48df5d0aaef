/**
 * The soak: `pnpm soak --seconds N [--backend memory|softhsm|all]`.
 *
 * For N seconds (shared between the backends), 16 callers mix JWS signing and verification, JWT signing
 * and verification, JWE decryption and key loading over a pool of 4, each request with a 2 s deadline,
 * while faults come every 250 ms: injected return codes, lost logins, slow calls and a removed token on
 * the emulator; logouts and sessions closed behind the pool's back on SoftHSM2. Faults stop two seconds
 * before the end. It prints counts by operation and outcome, p50/p99 latency, the heap and open sessions
 * over time, and checks its invariants: no defect and no wrong result, every request ended by its
 * deadline, every request in the last two seconds succeeded, no session or login left once the pool
 * closed, the heap after the run within 32 MB of the heap after the warm-up, the PIN's text in no span, log
 * line or failure (spans are made for a tracer of the application's). It exits 1 when one fails,
 * and ends with a `SOAK-SUMMARY` line of JSON for tests.
 */
import { Constants, MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Cause, Data, Effect, Exit, Fiber, HashMap, Logger, LogLevel, Random, Redacted } from "effect"
import { HsmJwk, Jwe, Jws, Jwt, SessionPool } from "hsmkey"
import { parseArgs } from "node:util"
import { observingTracer } from "../test/support/tracing.js"

const { CKR } = Constants

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "60" }, backend: { type: "string", default: "all" } }
})
const seconds = Number(values.seconds)
const backendNames = values.backend === "all" ? ["memory", "softhsm"] : [values.backend]
if (!Number.isFinite(seconds) || seconds < 6 || backendNames.some((b) => b !== "memory" && b !== "softhsm")) {
  console.error("usage: pnpm soak --seconds N (at least 6) [--backend memory|softhsm|all]")
  process.exit(2)
}

const CALLERS = 16
const DEADLINE_MILLIS = 2000
const SLACK_MILLIS = 500
const QUIET_MILLIS = 2000
const WARMUP_MILLIS = 1000
const HEAP_BOUND_MB = 32
const label = "soak"
const memoryPin = Redacted.make("soak-user-4711")

class DeadlineExceeded extends Data.TaggedError("DeadlineExceeded") {}
class WrongResult extends Data.TaggedError("WrongResult") {}

/** Latencies in logarithmic buckets (5 % wide from 10 µs): p50 and p99 in constant memory. */
class Latencies {
  private readonly buckets = new Float64Array(400)
  private count = 0
  add(millis: number) {
    const index = Math.min(399, Math.max(0, Math.floor(Math.log(millis / 0.01) / Math.log(1.05))))
    this.buckets[index]++
    this.count++
  }
  quantile(q: number): number {
    let seen = 0
    for (let i = 0; i < 400; i++) {
      seen += this.buckets[i]
      if (seen >= q * this.count) return 0.01 * 1.05 ** (i + 1)
    }
    return Infinity
  }
}

interface Tally {
  readonly counts: Map<string, number>
  readonly latencies: Map<string, Latencies>
  late: number
  lastFailureAt: number
}

const gc = (globalThis as { gc?: () => void }).gc
const heapMb = () => {
  gc?.()
  return process.memoryUsage().heapUsed / 2 ** 20
}

type Fault = Effect.Effect<string, unknown>

interface Backend {
  readonly name: string
  readonly pin: Redacted.Redacted<string>
  /** Faults this backend can be given, each returning its name. */
  readonly faults: (opened: ReadonlyArray<Pkcs11.SessionHandle>) => ReadonlyArray<Fault>
  /** Ends the faults still pending when the quiet time begins (an injected code not met yet). */
  readonly quiet: Effect.Effect<void>
  /** Sessions and login left on the token once the pool closed. */
  readonly leftOpen: (
    opened: ReadonlyArray<Pkcs11.SessionHandle>
  ) => Effect.Effect<{ sessions: number; loggedIn: boolean }, unknown>
}

const memoryBackend = Effect.gen(function*() {
  const control = yield* MemoryPkcs11.Control
  const failNext = (method: MemoryPkcs11.Method, code: number, name: string): Fault =>
    Effect.as(control.failNext({ method, code, times: 3 }), `3 × ${name} on ${method}`)
  return {
    name: "MemoryPkcs11",
    pin: memoryPin,
    faults: () => [
      failNext("C_Sign", CKR.SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"),
      failNext("C_Sign", CKR.SESSION_CLOSED, "CKR_SESSION_CLOSED"),
      failNext("C_Sign", CKR.USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"),
      failNext("C_Sign", CKR.DEVICE_REMOVED, "CKR_DEVICE_REMOVED"),
      failNext("C_Sign", CKR.GENERAL_ERROR, "CKR_GENERAL_ERROR"),
      failNext("C_Decrypt", CKR.DEVICE_ERROR, "CKR_DEVICE_ERROR"),
      failNext("C_FindObjectsInit", CKR.SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"),
      failNext("C_GetSessionInfo", CKR.DEVICE_REMOVED, "CKR_DEVICE_REMOVED"),
      failNext("C_CloseSession", CKR.GENERAL_ERROR, "CKR_GENERAL_ERROR"),
      Effect.as(control.forceLogout(label), "a lost login"),
      Effect.as(control.delayNext({ method: "C_Sign", duration: "100 millis", times: 8 }), "8 slow C_Sign"),
      Effect.as(
        Effect.zipRight(
          control.removeToken(label),
          Effect.zipRight(Effect.sleep("50 millis"), control.insertToken(label))
        ),
        "the token removed for 50 ms"
      )
    ],
    quiet: control.clearFaults,
    leftOpen: () =>
      Effect.map(
        control.stats(label),
        (stats) => ({ sessions: stats.openSessions, loggedIn: stats.loggedIn !== undefined })
      )
  } satisfies Backend
})

const softHsmBackend = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const token = yield* SoftHsm.Token
  const slot = Effect.gen(function*() {
    for (const s of yield* pkcs11.slots()) {
      if ((yield* pkcs11.tokenInfo(s)).serialNumber === token.serialNumber) return s
    }
    return yield* Effect.dieMessage("the soak token is gone")
  })
  const raw = <A, E>(use: (session: Pkcs11.SessionHandle) => Effect.Effect<A, E>) =>
    Effect.flatMap(
      slot,
      (s) =>
        Effect.acquireUseRelease(pkcs11.openSession(s), use, (session) => Effect.ignore(pkcs11.closeSession(session)))
    )
  return {
    name: "SoftHSM2",
    pin: token.userPin,
    faults: (opened) => [
      Effect.as(raw((session) => pkcs11.logout(session)), "a logout by other code"),
      Effect.as(Effect.flatMap(slot, (s) => pkcs11.closeAllSessions(s)), "C_CloseAllSessions by other code"),
      Effect.suspend(() => {
        const victim = opened[Math.floor(Math.random() * opened.length)]
        return Effect.as(Effect.ignore(pkcs11.closeSession(victim)), "a pool session closed by other code")
      })
    ],
    quiet: Effect.void,
    leftOpen: (opened) =>
      Effect.gen(function*() {
        let sessions = 0
        for (const handle of opened) if ((yield* Effect.either(pkcs11.sessionInfo(handle)))._tag === "Right") sessions++
        const state = yield* raw((session) => Effect.map(pkcs11.sessionInfo(session), (info) => info.state))
        return { sessions, loggedIn: state !== "ro-public" }
      })
  } satisfies Backend
})

/**
 * Looks for the PIN's text in everything the run reports: every span (name and attributes, under a tracer
 * of the application's), every log line at any level (message, annotations, cause), and every failure a
 * caller got (message, `String`, `JSON.stringify`).
 */
const pinScanner = (pin: Redacted.Redacted<string>) => {
  const text = Redacted.value(pin)
  const seen = { spans: 0, logLines: 0, failures: 0, found: 0 }
  const scan = (value: unknown) => {
    const shown = typeof value === "string"
      ? value
      : JSON.stringify(value, (_, v) => typeof v === "bigint" ? v.toString() : v) ?? String(value)
    if (shown.includes(text)) seen.found++
  }
  const tracer = observingTracer({
    ended: (span) => {
      seen.spans++
      scan(span.name)
      scan([...span.attributes])
    },
    event: (name, attributes) => scan([name, attributes])
  })
  // The pool's notes (a login restored, ...) would drown the samples: they are scanned, and only warnings
  // and above are printed.
  const logger = Logger.make((options) => {
    seen.logLines++
    scan(String(options.message))
    scan([...HashMap.toEntries(options.annotations)])
    scan(Cause.pretty(options.cause))
    if (LogLevel.greaterThanEqual(options.logLevel, LogLevel.Warning)) Logger.defaultLogger.log(options)
  })
  const failure = (error: unknown) => {
    seen.failures++
    scan(String(error))
    scan(error instanceof Error ? error.message : "")
    scan(error)
  }
  return { seen, tracer, logger, failure }
}

const soak = (backend: Backend, millis: number) =>
  Effect.gen(function*() {
    const inner = yield* Pkcs11.Pkcs11
    const opened: Array<Pkcs11.SessionHandle> = []
    const watched: Pkcs11.Pkcs11.Service = {
      ...inner,
      openSession: (s, options) => Effect.tap(inner.openSession(s, options), (h) => void opened.push(h))
    }
    const tally: Tally = { counts: new Map(), latencies: new Map(), late: 0, lastFailureAt: 0 }
    const pins = pinScanner(backend.pin)
    const faults = new Map<string, number>()
    const samples: Array<string> = []
    let running = true
    let heapAfterWarmup = 0
    const start = performance.now()
    const heapAtEnd = yield* Effect.scoped(Effect.gen(function*() {
      const pool = yield* Effect.provideService(
        SessionPool.make({ tokenLabel: label, userPin: backend.pin, maxSessions: 4 }),
        Pkcs11.Pkcs11,
        watched
      )
      const inPool = <A, E>(effect: Effect.Effect<A, E, SessionPool.SessionPool>) =>
        Effect.provideService(effect, SessionPool.SessionPool, pool)
      const signing = yield* inPool(HsmJwk.generate({ type: "Ed25519", label: "soak-sig" }))
      const decrypting = yield* inPool(
        HsmJwk.generate({ type: "RSA-2048", label: "soak-enc", use: "enc", alg: "RSA-OAEP" })
      )
      const secret = "the soak's plaintext"
      // RSA-OAEP with SHA-1: SoftHSM2 has no OAEP with SHA-256.
      const jwe = yield* Jwe.encrypt(secret, decrypting, { alg: "RSA-OAEP", enc: "A256GCM" })
      const signed = yield* inPool(Jws.sign("a token made once", signing))

      const operations: ReadonlyArray<readonly [string, (n: number) => Effect.Effect<unknown, unknown>]> = [
        ["Jws.sign+verify", (n) =>
          inPool(Jws.sign(`payload ${n}`, signing)).pipe(
            Effect.flatMap((jws) => Jws.verify(jws, signing)),
            Effect.filterOrFail((v) => new TextDecoder().decode(v.payload) === `payload ${n}`, () => new WrongResult())
          )],
        ["Jws.verify", () => Jws.verify(signed, signing)],
        ["Jwt.sign+verify", (n) =>
          inPool(Jwt.sign({ sub: `subject ${n}` }, signing, { expiresIn: "5 minutes" })).pipe(
            Effect.flatMap((jwt) => Jwt.verify(jwt, signing)),
            Effect.filterOrFail((v) => v.payload.sub === `subject ${n}`, () => new WrongResult())
          )],
        ["Jwe.decrypt", () =>
          inPool(Jwe.decrypt(jwe, decrypting)).pipe(
            Effect.filterOrFail((d) => new TextDecoder().decode(d.plaintext) === secret, () => new WrongResult())
          )],
        ["HsmJwk.fromHsm", () =>
          inPool(HsmJwk.fromHsm({ label: "soak-sig" })).pipe(
            Effect.filterOrFail((k) => k.kid === signing.kid, () => new WrongResult())
          )]
      ]
      // Signing is what applications do most.
      const weights = [5, 1, 2, 1, 1]
      const pick = Effect.map(Random.nextIntBetween(0, weights.reduce((a, b) => a + b)), (r) => {
        for (let i = 0; i < weights.length; i++) {
          if ((r -= weights[i]) < 0) return operations[i]
        }
        return operations[0]
      })

      const request = (n: number) =>
        Effect.gen(function*() {
          const [name, operation] = yield* pick
          const begun = performance.now()
          const exit = yield* Effect.exit(
            operation(n).pipe(
              Effect.timeoutFail({ duration: DEADLINE_MILLIS, onTimeout: () => new DeadlineExceeded() })
            )
          )
          const ended = performance.now()
          const took = ended - begun
          if (took > DEADLINE_MILLIS + SLACK_MILLIS) tally.late++
          const outcome = Exit.isSuccess(exit)
            ? "ok"
            : exit.cause._tag === "Fail" && typeof (exit.cause.error as { _tag?: unknown })._tag === "string"
            ? (exit.cause.error as { _tag: string })._tag
            : "defect"
          const key = `${name} ${outcome}`
          tally.counts.set(key, (tally.counts.get(key) ?? 0) + 1)
          if (outcome === "defect") console.error(Exit.isFailure(exit) ? exit.cause.toString() : "")
          if (Exit.isFailure(exit) && exit.cause._tag === "Fail") pins.failure(exit.cause.error)
          let latencies = tally.latencies.get(name)
          if (latencies === undefined) tally.latencies.set(name, latencies = new Latencies())
          latencies.add(took)
          if (outcome !== "ok") {
            tally.lastFailureAt = Math.max(tally.lastFailureAt, begun)
            // A client waits a little after a failure; asking again at once would starve the process.
            yield* Effect.sleep("5 millis")
          }
        })

      const callers = yield* Effect.fork(Effect.forEach(
        Array.from({ length: CALLERS }, (_, caller) => caller),
        (caller) =>
          Effect.gen(function*() {
            for (let n = 0; running; n++) yield* request(caller * 1e9 + n)
          }),
        { concurrency: "unbounded", discard: true }
      ))
      const faulting = yield* Effect.fork(Effect.gen(function*() {
        yield* Effect.sleep(WARMUP_MILLIS)
        while (performance.now() - start < millis - QUIET_MILLIS) {
          const all = backend.faults(opened)
          const name = yield* all[yield* Random.nextIntBetween(0, all.length)]
          faults.set(name, (faults.get(name) ?? 0) + 1)
          yield* Effect.sleep("250 millis")
        }
        yield* backend.quiet
      }))
      const sampling = yield* Effect.fork(Effect.gen(function*() {
        yield* Effect.sleep(WARMUP_MILLIS)
        heapAfterWarmup = heapMb()
        for (;;) {
          const stats = yield* pool.stats
          const done = [...tally.counts.values()].reduce((a, b) => a + b, 0)
          const line = `  t=${((performance.now() - start) / 1000).toFixed(0).padStart(4)} s  requests=${
            String(done).padStart(7)
          }  heap=${heapMb().toFixed(1).padStart(6)} MB  sessions open=${stats.open}  leased=${stats.leased}`
          samples.push(line)
          console.log(line)
          yield* Effect.sleep(Math.max(1000, millis / 10))
        }
      }))
      yield* Effect.sleep(millis)
      running = false
      yield* Fiber.join(faulting)
      yield* Fiber.join(callers)
      yield* Fiber.interrupt(sampling)
      return heapMb()
    })).pipe(
      Effect.withTracer(pins.tracer),
      Effect.provide(Logger.replace(Logger.defaultLogger, pins.logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    const left = yield* backend.leftOpen(opened)
    const counts = Object.fromEntries([...tally.counts].sort(([a], [b]) => a.localeCompare(b)))
    const latency = Object.fromEntries(
      [...tally.latencies].map((
        [name, l]
      ) => [name, { p50: +l.quantile(0.5).toFixed(2), p99: +l.quantile(0.99).toFixed(2) }])
    )
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    const failed = Object.entries(counts).filter(([k]) => !k.endsWith(" ok")).reduce((a, [, v]) => a + v, 0)
    const invariants = {
      "no defect": !Object.keys(counts).some((k) => k.endsWith(" defect")),
      "no wrong result": !Object.keys(counts).some((k) => k.endsWith(" WrongResult")),
      "every request ended by its deadline": tally.late === 0,
      "the last 2 s all succeeded": tally.lastFailureAt < start + millis - QUIET_MILLIS + DEADLINE_MILLIS / 4,
      "no session left open": left.sessions === 0,
      "no login left": !left.loggedIn,
      "the PIN in no span, log line or failure": pins.seen.found === 0 && pins.seen.spans > 0,
      [`heap within ${HEAP_BOUND_MB} MB of the warm-up's`]: heapAtEnd - heapAfterWarmup < HEAP_BOUND_MB
    }
    return {
      backend: backend.name,
      seconds: millis / 1000,
      requests: total,
      failed,
      counts,
      faults: Object.fromEntries(faults),
      latencyMillis: latency,
      heapMb: { afterWarmup: +heapAfterWarmup.toFixed(1), atEnd: +heapAtEnd.toFixed(1) },
      leftOpen: left,
      pinScan: pins.seen,
      samples,
      invariants
    }
  })

const runOn = (name: string, millis: number) => {
  if (name === "memory") {
    const emulator = MemoryPkcs11.layer({ tokens: [{ label, userPin: memoryPin }] })
    return Effect.flatMap(memoryBackend, (backend) => soak(backend, millis)).pipe(Effect.provide(emulator))
  }
  const softhsm = SoftHsm.layer({ tokenLabel: label })
  return Effect.flatMap(softHsmBackend, (backend) => soak(backend, millis)).pipe(Effect.provide(softhsm))
}

const main = Effect.gen(function*() {
  const share = (seconds * 1000) / backendNames.length
  const reports = []
  for (const name of backendNames) {
    console.log(
      `\nsoak on ${name} for ${(share / 1000).toFixed(0)} s: ${CALLERS} callers, a pool of 4, faults every 250 ms`
    )
    const report = yield* runOn(name, share)
    reports.push(report)
    console.log(
      `\n${report.backend}: ${report.requests} requests, ${report.failed} failed (typed), faults ${
        JSON.stringify(report.faults)
      }`
    )
    for (const [key, count] of Object.entries(report.counts)) console.log(`  ${key.padEnd(40)} ${count}`)
    for (const [op, l] of Object.entries(report.latencyMillis)) {
      console.log(`  ${op.padEnd(20)} p50 ${l.p50} ms  p99 ${l.p99} ms`)
    }
    console.log(`  heap ${report.heapMb.afterWarmup} MB after the warm-up, ${report.heapMb.atEnd} MB at the end`)
    const scanned = report.pinScan
    console.log(
      `  PIN looked for in ${scanned.spans} spans, ${scanned.logLines} log lines, ${scanned.failures} failures: found ${scanned.found} times`
    )
    for (const [invariant, holds] of Object.entries(report.invariants)) {
      console.log(`  ${holds ? "holds " : "BROKEN"}  ${invariant}`)
    }
  }
  const ok = reports.every((r) => Object.values(r.invariants).every(Boolean))
  console.log(`SOAK-SUMMARY ${JSON.stringify(reports.map(({ samples: _, ...r }) => r))}`)
  console.log(ok ? "\nevery invariant holds" : "\nan invariant is broken")
  return ok
})

Effect.runPromise(main.pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  (ok) => process.exit(ok ? 0 : 1),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
