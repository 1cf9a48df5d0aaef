/**
 * Signing throughput on a throwaway SoftHSM2 token, measured in one run so the ratios hold whatever the
 * machine: hsmkey's Pkcs11 service against raw pkcs11js (the overhead of the Effect boundary), a whole
 * `Jws.sign` through the pool against jose with the key in memory, and both against node:crypto (the cost
 * of keeping the key in a token).
 *
 *   pnpm bench            (BENCH_SECONDS=0.5 per measurement by default)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Constants, Curve, Pkcs11 } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Console, Effect, Redacted } from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import pkcs11js from "pkcs11js"

const { CKK, CKM, CKO, CKU } = Constants

const seconds = Number(process.env.BENCH_SECONDS ?? "0.5")
const SESSIONS = 4

/** Runs `op` for the time budget, `lanes` at a time, and returns operations per second. */
const rate = async (lanes: number, op: (lane: number) => Promise<unknown> | unknown): Promise<number> => {
  const end = performance.now() + seconds * 1000
  let count = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    while (performance.now() < end) {
      await op(lane)
      count++
    }
  }))
  return count / ((performance.now() - start) / 1000)
}

/** As `rate`, with each lane a fiber running Effects, as an Effect application calls the service. */
const rateEffect = <E>(lanes: number, op: (lane: number) => Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    const end = performance.now() + seconds * 1000
    let count = 0
    const start = performance.now()
    yield* Effect.forEach(
      Array.from({ length: lanes }, (_, lane) => lane),
      (lane) =>
        Effect.whileLoop({
          while: () => performance.now() < end,
          body: () => op(lane),
          step: () => count++
        }),
      { concurrency: "unbounded", discard: true }
    )
    return count / ((performance.now() - start) / 1000)
  })

const cases = [
  {
    alg: "ES256",
    keyType: CKK.EC,
    generate: { type: CKM.EC_KEY_PAIR_GEN },
    publicTemplate: { ecParams: Curve.ecParams("P-256") },
    mechanism: { type: CKM.ECDSA },
    input: Crypto.createHash("sha256").update("bench").digest(),
    node: Crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey,
    nodeSign: (key: Crypto.KeyObject) => Crypto.sign("sha256", Buffer.from("bench"), { key, dsaEncoding: "ieee-p1363" })
  },
  {
    alg: "EdDSA",
    keyType: CKK.EC_EDWARDS,
    generate: { type: CKM.EC_EDWARDS_KEY_PAIR_GEN },
    publicTemplate: { ecParams: Curve.ecParams("Ed25519") },
    mechanism: { type: CKM.EDDSA },
    input: Buffer.from("bench"),
    node: Crypto.generateKeyPairSync("ed25519").privateKey,
    nodeSign: (key: Crypto.KeyObject) => Crypto.sign(null, Buffer.from("bench"), key)
  },
  {
    alg: "RS256",
    keyType: CKK.RSA,
    generate: { type: CKM.RSA_PKCS_KEY_PAIR_GEN },
    publicTemplate: { modulusBits: 2048 },
    mechanism: { type: CKM.SHA256_RSA_PKCS },
    input: Buffer.from("bench"),
    node: Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey,
    nodeSign: (key: Crypto.KeyObject) => Crypto.sign("sha256", Buffer.from("bench"), key)
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
  const slots = yield* pkcs11.slots()
  const infos = yield* Effect.forEach(slots, (slot) => pkcs11.tokenInfo(slot))
  const slot = infos.find((info) => info.serialNumber === token.serialNumber)!.slotId
  const sessions = yield* Effect.forEach(
    Array.from({ length: SESSIONS }),
    () => Effect.acquireRelease(pkcs11.openSession(slot, { rw: true }), (s) => Effect.orDie(pkcs11.closeSession(s)))
  )
  yield* pkcs11.login(sessions[0], token.userPin)

  // The raw baseline shares the library hsmkey initialized (C_Initialize answers 401), so it sees the
  // same token and login state.
  const raw = new pkcs11js.PKCS11()
  raw.load(token.modulePath)
  try {
    raw.C_Initialize({ flags: Constants.CKF.OS_LOCKING_OK })
  } catch {
    // CKR_CRYPTOKI_ALREADY_INITIALIZED: expected.
  }
  const rawSessions = Array.from({ length: SESSIONS }, () => raw.C_OpenSession(handle(slot), 6))
  try {
    raw.C_Login(rawSessions[0], CKU.USER, Redacted.value(token.userPin))
  } catch {
    // CKR_USER_ALREADY_LOGGED_IN: login belongs to the token.
  }

  const pool = yield* SessionPool.make({
    tokenSerial: token.serialNumber,
    userPin: token.userPin,
    maxSessions: SESSIONS
  })
  const rows: Array<Record<string, string>> = []
  for (const c of cases) {
    const id = new Uint8Array([rows.length + 1])
    const pair = yield* pkcs11.generateKeyPair(sessions[0], c.generate, {
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
    const rawMechanism = { mechanism: c.mechanism.type }
    const out = Buffer.alloc(1024)

    const rawSync = yield* Effect.promise(() =>
      rate(1, () => {
        raw.C_SignInit(rawSessions[0], rawMechanism, rawKey)
        raw.C_Sign(rawSessions[0], c.input, out)
      })
    )
    const rawAsync = yield* Effect.promise(() =>
      rate(SESSIONS, async (lane) => {
        raw.C_SignInit(rawSessions[lane], rawMechanism, rawKey)
        await raw.C_SignAsync(rawSessions[lane], c.input, Buffer.alloc(1024))
      })
    )
    const rawAsyncOne = yield* Effect.promise(() =>
      rate(1, async () => {
        raw.C_SignInit(rawSessions[0], rawMechanism, rawKey)
        await raw.C_SignAsync(rawSessions[0], c.input, Buffer.alloc(1024))
      })
    )
    const oneSession = yield* rateEffect(1, () => pkcs11.sign(sessions[0], c.mechanism, pair.privateKey, c.input))
    // Sixteen callers over four sessions: the per-session queue decides who goes next.
    const pooled = yield* rateEffect(
      16,
      (lane) => pkcs11.sign(sessions[lane % SESSIONS], c.mechanism, pair.privateKey, c.input)
    )
    const node = yield* Effect.promise(() => rate(1, () => c.nodeSign(c.node)))
    // The whole product path: a compact JWS built, signed in the token through the pool, serialized.
    const key = yield* Effect.provideService(HsmJwk.fromHsm({ id }), SessionPool.SessionPool, pool)
    const jws = yield* rateEffect(
      16,
      () => Effect.provideService(Jws.sign("bench", key), SessionPool.SessionPool, pool)
    )
    const joseInMemory = yield* Effect.promise(() =>
      rate(1, () => new jose.CompactSign(Buffer.from("bench")).setProtectedHeader({ alg: c.alg }).sign(c.node))
    )
    rows.push({
      alg: c.alg,
      "raw sync 1 session": rawSync.toFixed(0),
      "raw async 1 session": rawAsyncOne.toFixed(0),
      "raw async 4 sessions": rawAsync.toFixed(0),
      "hsmkey 1 session": oneSession.toFixed(0),
      "hsmkey 16 callers / 4 sessions": pooled.toFixed(0),
      "node:crypto": node.toFixed(0),
      "hsmkey/raw async (1 session)": (oneSession / rawAsyncOne).toFixed(2),
      "hsmkey/raw (4 sessions)": (pooled / rawAsync).toFixed(2),
      "hsmkey/node:crypto": (pooled / node).toFixed(2),
      "Jws.sign via pool": jws.toFixed(0),
      "jose in memory": joseInMemory.toFixed(0),
      "Jws.sign/jose": (jws / joseInMemory).toFixed(2)
    })
  }
  for (const session of rawSessions) raw.C_CloseSession(session)
  raw.close()
  yield* Console.log(`signatures per second, ${seconds} s per measurement, one run:`)
  yield* Console.table(rows)
})

NodeRuntime.runMain(program.pipe(Effect.scoped, Effect.provide(SoftHsm.layer({ tokenLabel: "hsmkey-bench" }))))
