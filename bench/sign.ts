/**
 * Signing on one throwaway SoftHSM2 token, measured in one run so that the ratios hold whatever the
 * machine: raw pkcs11js (the ceiling of a hand-written loop), hsmkey's `Jws.sign` through the public API at
 * several pool sizes and caller counts, the session-per-signature pattern, the peers a user would pick
 * instead (graphene-pk11, node-webcrypto-p11), and node:crypto and jose with the key in memory. Every row
 * carries its ratio to the best raw pkcs11js row and the event loop's delay while it ran; then the latency
 * of one sequential caller and the heap growth over many signatures. Results go to `bench/results/`.
 *
 *   pnpm bench                          BENCH_SECONDS=1 per cell by default
 *   BENCH_SECONDS=0.05 pnpm bench       what CI runs, so that it cannot rot (it asserts no speed)
 *   BENCH_RESULTS=DIR pnpm bench        results elsewhere than bench/results
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { HsmLive } from "@hsmkey/node"
import { Constants, Curve, Pkcs11 } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect, Layer, Redacted } from "effect"
import * as Graphene from "graphene-pk11"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import { Crypto as WebCryptoP11 } from "node-webcrypto-p11"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import pkcs11js from "pkcs11js"

const { CKK, CKM, CKO, CKU } = Constants

const seconds = Number(process.env.BENCH_SECONDS ?? "1")
const heapSignatures = Number(process.env.BENCH_HEAP_SIGNATURES ?? "100000")
const latencySamples = Number(process.env.BENCH_LATENCY_SAMPLES ?? "20000")
const resultsDirectory = process.env.BENCH_RESULTS ?? Path.join(import.meta.dirname, "results")
const RAW_SESSIONS = 4
const POOL_SIZES = [1, 2, 4] as const
const CALLERS = [1, 16, 256] as const
// Signing threads per pool: none (lanes on the event loop's thread), one, and two (the default).
const THREADS = [0, 1, 2] as const

interface Row {
  readonly alg: string
  readonly system: string
  readonly perSecond: number
  ratio?: number
  readonly loopP50Ms: number
  readonly loopP99Ms: number
}

const rows: Array<Row> = []

const payload = "bench"

/** Watches the event loop while `run` goes: its delay p50 and p99, in milliseconds. */
const watchingLoop = async <A>(run: () => Promise<A>) => {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  const start = performance.now()
  try {
    const value = await run()
    // A loop that never turned took no sample: it waited the whole run.
    if (histogram.count === 0) {
      const blocked = performance.now() - start
      return { value, p50: blocked, p99: blocked }
    }
    return { value, p50: histogram.percentile(50) / 1e6, p99: histogram.percentile(99) / 1e6 }
  } finally {
    histogram.disable()
  }
}

/** `callers` loops running `op` for the time budget; signatures per second. */
const rate = (callers: number, op: (caller: number) => Promise<unknown> | unknown) =>
  watchingLoop(async () => {
    const end = performance.now() + seconds * 1000
    let count = 0
    const start = performance.now()
    await Promise.all(Array.from({ length: callers }, async (_, caller) => {
      while (performance.now() < end) {
        await op(caller)
        count++
      }
    }))
    return count / ((performance.now() - start) / 1000)
  })

/**
 * As `rate`, each caller a fiber, as an Effect application calls hsmkey; `around` gives each caller's loop
 * what it needs (a pool, provided once per caller as an application's layer provides it).
 */
const rateEffectWith = <E, R>(
  callers: number,
  op: Effect.Effect<unknown, E, R>,
  around: (loop: Effect.Effect<void, E, R>) => Effect.Effect<void, E>
) =>
  Effect.promise(() =>
    watchingLoop(() =>
      Effect.runPromise(
        Effect.gen(function*() {
          const end = performance.now() + seconds * 1000
          let count = 0
          const start = performance.now()
          yield* Effect.forEach(
            Array.from({ length: callers }),
            () =>
              around(Effect.whileLoop({
                while: () => performance.now() < end,
                body: () => op,
                step: () => count++
              })),
            { concurrency: "unbounded", discard: true }
          )
          return count / ((performance.now() - start) / 1000)
        }).pipe(Effect.orDie)
      )
    )
  )

const rateEffect = <E>(callers: number, op: Effect.Effect<unknown, E>) => rateEffectWith(callers, op, (loop) => loop)

const rateOnPool = <E>(
  callers: number,
  op: Effect.Effect<unknown, E, SessionPool.SessionPool>,
  pool: SessionPool.SessionPool.Service
) => rateEffectWith(callers, op, (loop) => Effect.provideService(loop, SessionPool.SessionPool, pool))

const record = (alg: string, system: string, measured: { value: number; p50: number; p99: number }) => {
  rows.push({ alg, system, perSecond: measured.value, loopP50Ms: measured.p50, loopP99Ms: measured.p99 })
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

const cases = [
  {
    alg: "ES256",
    keyType: CKK.EC,
    generate: { type: CKM.EC_KEY_PAIR_GEN },
    publicTemplate: { ecParams: Curve.ecParams("P-256") },
    mechanism: CKM.ECDSA,
    input: Crypto.createHash("sha256").update(payload).digest(),
    webcrypto: { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" },
    node: Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey,
    nodeSign: (key: Crypto.KeyObject) => Crypto.sign("sha256", Buffer.from(payload), { key, dsaEncoding: "ieee-p1363" })
  },
  {
    alg: "EdDSA",
    keyType: CKK.EC_EDWARDS,
    generate: { type: CKM.EC_EDWARDS_KEY_PAIR_GEN },
    publicTemplate: { ecParams: Curve.ecParams("Ed25519") },
    mechanism: CKM.EDDSA,
    input: Buffer.from(payload),
    webcrypto: undefined,
    node: Crypto.generateKeyPairSync("ed25519").privateKey,
    nodeSign: (key: Crypto.KeyObject) => Crypto.sign(null, Buffer.from(payload), key)
  },
  {
    alg: "RS256",
    keyType: CKK.RSA,
    generate: { type: CKM.RSA_PKCS_KEY_PAIR_GEN },
    publicTemplate: { modulusBits: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
    mechanism: CKM.SHA256_RSA_PKCS,
    input: Buffer.from(payload),
    webcrypto: {
      name: "RSASSA-PKCS1-v1_5",
      hash: "SHA-256",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1])
    },
    node: Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey,
    nodeSign: (key: Crypto.KeyObject) => Crypto.sign("sha256", Buffer.from(payload), key)
  }
] as const

const handle = (n: number) => {
  const buffer = Buffer.alloc(8)
  buffer.writeBigUInt64LE(BigInt(n))
  return buffer
}

const program = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const token = yield* SoftHsm.Token
  const pin = Redacted.value(token.userPin)
  const slots = yield* pkcs11.slots()
  const infos = yield* Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot))
  const slot = infos.find((info) => info.serialNumber === token.serialNumber)!.slotId
  const setup = yield* Effect.acquireRelease(
    pkcs11.openSession(slot, { rw: true }),
    (s) => Effect.orDie(pkcs11.closeSession(s))
  )
  yield* pkcs11.login(setup, token.userPin)

  // Pools first: hsmkey initializes the library with OS locking; the raw loops and the peers adopt it.
  const pools = new Map<string, SessionPool.SessionPool.Service>()
  for (const size of POOL_SIZES) {
    for (const threads of THREADS.filter((threads) => threads <= size)) {
      pools.set(
        `${size}/${threads}`,
        yield* SessionPool.make({
          tokenSerial: token.serialNumber,
          userPin: token.userPin,
          maxSessions: size,
          signingThreads: threads
        })
      )
    }
  }
  // What a program gets that sets only the pool's size: the latency and heap rows use it.
  pools.set(
    "defaults",
    yield* SessionPool.make({ tokenSerial: token.serialNumber, userPin: token.userPin, maxSessions: 4 })
  )
  pools.set(
    "threadpool",
    yield* SessionPool.make({
      tokenSerial: token.serialNumber,
      userPin: token.userPin,
      maxSessions: 4,
      inlineSigning: false,
      signingThreads: 0
    })
  )

  const raw = new pkcs11js.PKCS11()
  raw.load(token.modulePath)
  try {
    raw.C_Initialize({ flags: Constants.CKF.OS_LOCKING_OK })
  } catch {
    // CKR_CRYPTOKI_ALREADY_INITIALIZED: the library is the process's, initialized by hsmkey.
  }
  const rawSessions = Array.from({ length: RAW_SESSIONS }, () => raw.C_OpenSession(handle(slot), 6))
  try {
    raw.C_Login(rawSessions[0], CKU.USER, pin)
  } catch {
    // CKR_USER_ALREADY_LOGGED_IN: login belongs to the token.
  }

  const graphene = Graphene.Module.load(token.modulePath, "SoftHSM2")
  try {
    graphene.initialize()
  } catch {
    // As above: already initialized, with OS locking.
  }
  const grapheneSlots = graphene.getSlots(true)
  const grapheneSlotIndex = Array.from({ length: grapheneSlots.length }, (_, i) => grapheneSlots.items(i))
    .findIndex((s) => s.getToken().serialNumber.trim() === token.serialNumber)
  const grapheneSession = grapheneSlots.items(grapheneSlotIndex).open(Graphene.SessionFlag.SERIAL_SESSION)
  const webcrypto = new WebCryptoP11({
    library: token.modulePath,
    slot: grapheneSlotIndex,
    pin,
    readWrite: true
  })

  const heapRuns: Array<{ signatures: number; growthMb: number }> = []
  const latencies: Array<{ alg: string; system: string; p50Us: number; p99Us: number }> = []

  for (const [index, c] of cases.entries()) {
    const id = new Uint8Array([index + 1])
    const pair = yield* pkcs11.generateKeyPair(setup, c.generate, {
      publicKey: { ...c.publicTemplate, class: CKO.PUBLIC_KEY, verify: true, token: true, id },
      privateKey: {
        class: CKO.PRIVATE_KEY,
        keyType: c.keyType,
        private: true,
        sensitive: true,
        sign: true,
        token: true,
        id
      }
    })
    const rawKey = handle(pair.privateKey)
    const rawMechanism = { mechanism: c.mechanism }
    const out = Buffer.alloc(1024)
    const rawSign = () => {
      raw.C_SignInit(rawSessions[0], rawMechanism, rawKey)
      raw.C_Sign(rawSessions[0], c.input, out)
    }

    // The raw rows run before the hsmkey rows and again after them: the best of both is the reference, so
    // that a machine that speeds up during the run cannot flatter hsmkey.
    const rawRows = (again: string) =>
      Effect.gen(function*() {
        record(c.alg, `raw pkcs11js sync, 1 session${again}`, yield* Effect.promise(() => rate(1, rawSign)))
        record(
          c.alg,
          `raw pkcs11js async, ${RAW_SESSIONS} sessions${again}`,
          yield* Effect.promise(() =>
            rate(RAW_SESSIONS, async (lane) => {
              raw.C_SignInit(rawSessions[lane], rawMechanism, rawKey)
              await raw.C_SignAsync(rawSessions[lane], c.input, Buffer.alloc(1024))
            })
          )
        )
      })
    yield* rawRows("")

    const key = yield* Effect.provideService(HsmJwk.fromHsm({ id }), SessionPool.SessionPool, pools.get("4/2")!)
    const jws = Jws.sign(payload, key)
    for (const threads of THREADS) {
      for (const size of POOL_SIZES.filter((size) => threads <= size)) {
        for (const callers of CALLERS) {
          const lanes = threads === 0 ? "inline lanes" : `${threads} signing threads`
          record(
            c.alg,
            `hsmkey Jws.sign, pool of ${size}, ${lanes}, ${callers} callers`,
            yield* rateOnPool(callers, jws, pools.get(`${size}/${threads}`)!)
          )
        }
      }
    }
    for (const callers of [16, 256]) {
      record(
        c.alg,
        `hsmkey Jws.sign, pool of 4 signing on the threadpool, ${callers} callers`,
        yield* rateOnPool(callers, jws, pools.get("threadpool")!)
      )
    }
    yield* rawRows(", again")
    // What a program gets that provides HsmLive.hsmSession around each signature.
    const perSignature = Layer.fresh(HsmLive.hsmSession({
      modulePath: token.modulePath,
      tokenSerial: token.serialNumber,
      userPin: token.userPin,
      rw: false
    }))
    record(
      c.alg,
      "hsmkey session per signature (HsmLive.hsmSession), 16 callers",
      yield* rateEffect(16, Effect.provide(Jws.sign(payload, key), perSignature))
    )

    const grapheneKey = grapheneSession.find({ class: CKO.PRIVATE_KEY, id: Buffer.from(id) }).items(0).toType<
      Graphene.PrivateKey
    >()
    record(
      c.alg,
      "graphene-pk11 sync, 1 session",
      yield* Effect.promise(() => rate(1, () => grapheneSession.createSign(c.mechanism, grapheneKey).once(c.input)))
    )
    if (c.webcrypto !== undefined) {
      const algorithm = c.webcrypto
      const pairP11 = yield* Effect.promise(() =>
        webcrypto.subtle.generateKey(
          algorithm as never,
          false,
          ["sign", "verify"]
        ) as Promise<{ readonly privateKey: unknown }>
      )
      const data = Buffer.from(payload)
      record(
        c.alg,
        // One caller: it signs in one session, and a second concurrent sign fails CKR_OPERATION_ACTIVE.
        "node-webcrypto-p11 subtle.sign, 1 caller",
        yield* Effect.promise(() =>
          rate(1, () => webcrypto.subtle.sign(algorithm as never, pairP11.privateKey as never, data))
        )
      )
    }

    record(c.alg, "node:crypto, key in memory", yield* Effect.promise(() => rate(1, () => c.nodeSign(c.node))))
    record(
      c.alg,
      "jose CompactSign, key in memory",
      yield* Effect.promise(() =>
        rate(1, () => new jose.CompactSign(Buffer.from(payload)).setProtectedHeader({ alg: c.alg }).sign(c.node))
      )
    )

    // One sequential caller: the time of each signature, raw and the whole Jws.sign in turn, so that both
    // see the same moments of the machine.
    const sampleRaw = new Float64Array(latencySamples)
    const sampleJws = new Float64Array(latencySamples)
    const pool = pools.get("defaults")!
    yield* Effect.gen(function*() {
      for (let i = 0; i < latencySamples; i++) {
        let start = performance.now()
        rawSign()
        sampleRaw[i] = performance.now() - start
        start = performance.now()
        yield* jws
        sampleJws[i] = performance.now() - start
      }
    }).pipe(Effect.provideService(SessionPool.SessionPool, pool))
    for (
      const [system, samples] of [["raw pkcs11js sync, 1 session", sampleRaw], ["hsmkey Jws.sign", sampleJws]] as const
    ) {
      samples.sort()
      latencies.push({
        alg: c.alg,
        system,
        p50Us: percentile(samples, 0.5) * 1000,
        p99Us: percentile(samples, 0.99) * 1000
      })
    }

    if (c.alg === "ES256") {
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      const before = process.memoryUsage().heapUsed
      yield* Effect.forEach(Array.from({ length: 16 }), (_, lane) =>
        Effect.gen(function*() {
          for (let i = lane; i < heapSignatures; i += 16) yield* jws
        }).pipe(Effect.provideService(SessionPool.SessionPool, pool)), { concurrency: "unbounded", discard: true })
      gc?.()
      heapRuns.push({ signatures: heapSignatures, growthMb: (process.memoryUsage().heapUsed - before) / 2 ** 20 })
    }
  }
  grapheneSession.close()
  for (const session of rawSessions) raw.C_CloseSession(session)
  raw.close()

  for (const alg of new Set(rows.map((row) => row.alg))) {
    const ofAlg = rows.filter((row) => row.alg === alg)
    const best = Math.max(...ofAlg.filter((row) => row.system.startsWith("raw")).map((row) => row.perSecond))
    for (const row of ofAlg) row.ratio = row.perSecond / best
  }
  const report = {
    secondsPerCell: seconds,
    node: process.version,
    cpus: Os.availableParallelism(),
    rows,
    latency: latencies,
    heap: heapRuns
  }
  Fs.mkdirSync(resultsDirectory, { recursive: true })
  Fs.writeFileSync(Path.join(resultsDirectory, "sign.json"), JSON.stringify(report, null, 2) + "\n")
  const markdown = toMarkdown(report)
  Fs.writeFileSync(Path.join(resultsDirectory, "sign.md"), markdown)
  console.log(markdown)
})

const toMarkdown = (report: {
  readonly secondsPerCell: number
  readonly node: string
  readonly cpus: number
  readonly rows: ReadonlyArray<Row>
  readonly latency: ReadonlyArray<{ alg: string; system: string; p50Us: number; p99Us: number }>
  readonly heap: ReadonlyArray<{ signatures: number; growthMb: number }>
}) => {
  const lines = [
    `# Signing on one SoftHSM2 token (${report.secondsPerCell} s per cell, Node ${report.node}, ${report.cpus} CPUs)`,
    "",
    "Signatures per second of a compact JWS (raw rows: the token's signature alone); ratio to the best raw",
    "pkcs11js row of the same algorithm; event-loop delay while the row ran.",
    "",
    "| alg | system | signatures/s | × best raw | loop p50 ms | loop p99 ms |",
    "|---|---|---:|---:|---:|---:|",
    ...report.rows.map((row) =>
      `| ${row.alg} | ${row.system} | ${row.perSecond.toFixed(0)} | ${(row.ratio ?? 0).toFixed(2)} | ` +
      `${row.loopP50Ms.toFixed(2)} | ${row.loopP99Ms.toFixed(2)} |`
    ),
    "",
    "One sequential caller, time per signature (a pool of 4 with the defaults: 2 signing threads):",
    "",
    "| alg | system | p50 µs | p99 µs |",
    "|---|---|---:|---:|",
    ...report.latency.map((row) =>
      `| ${row.alg} | ${row.system} | ${row.p50Us.toFixed(1)} | ${row.p99Us.toFixed(1)} |`
    ),
    "",
    ...report.heap.map((run) =>
      `Heap growth over ${run.signatures} ES256 Jws.sign (16 callers, pool of 4, 2 signing threads, after GC): ${
        run.growthMb.toFixed(2)
      } MB`
    ),
    ""
  ]
  return lines.join("\n")
}

NodeRuntime.runMain(program.pipe(Effect.scoped, Effect.provide(SoftHsm.layer({ tokenLabel: "hsmkey-bench" }))))
