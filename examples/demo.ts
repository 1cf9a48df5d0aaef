/**
 * The main job: provision a throwaway SoftHSM2 token, pool sessions on it, generate keys inside it,
 * sign JWTs with each from many fibers at once, publish the public keys as a JWKS, verify every token
 * with jose (no HSM involved), and clean everything up.
 *
 *   pnpm demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Pkcs11 } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Console, Effect } from "effect"
import { HsmJwk, Jwks, Jwt, SessionPool } from "hsmkey"
import * as jose from "jose"

const TOKENS_PER_KEY = 300

const program = Effect.gen(function*() {
  const pool = yield* SessionPool.SessionPool
  const library = yield* (yield* Pkcs11.Pkcs11).info
  const token = yield* SoftHsm.Token
  yield* Console.log(`${library.manufacturerId} ${library.libraryVersion}, Cryptoki ${library.cryptokiVersion}`)
  yield* Console.log(`throwaway token "${token.label}" (serial ${token.serialNumber}) under ${token.configPath}`)

  // Keys are made in one read/write session; the private halves never leave the token.
  const keys = yield* SessionPool.withSession(
    Effect.all([
      HsmJwk.generate({ type: "P-256", label: "demo-es256" }),
      HsmJwk.generate({ type: "Ed25519", label: "demo-eddsa" }),
      Effect.flatMap(
        HsmJwk.generate({ type: "RSA-2048", label: "demo-ps256" }),
        (key) => HsmJwk.withAlgorithm(key, "PS256")
      )
    ]),
    { rw: true }
  )

  // What a relying party fetches; it needs no HSM to verify.
  const jwks = jose.createLocalJWKSet(Jwks.fromKeys(keys))

  for (const key of keys) {
    // Many concurrent signers share the pool's few sessions and its single login.
    const tokens = yield* Effect.forEach(
      Array.from({ length: TOKENS_PER_KEY }, (_, i) => i),
      (i) => Jwt.sign({ order: i }, key, { issuer: "hsmkey-demo", subject: `user-${i}`, expiresIn: "5 minutes" }),
      { concurrency: "unbounded" }
    )
    for (const jwt of tokens) {
      yield* Effect.promise(() => jose.jwtVerify(jwt, jwks, { issuer: "hsmkey-demo" }))
    }
    yield* Console.log(
      `${key.alg.padEnd(6)} ${TOKENS_PER_KEY} JWTs signed in the token by key ${
        key.kid.slice(0, 12)
      }…, verified by jose`
    )
  }
  const stats = yield* pool.stats
  yield* Console.log(
    `at most ${stats.maxSessions} pooled sessions and one login served ${TOKENS_PER_KEY * keys.length} signatures`
  )
  yield* Console.log("done; the token and its directory are deleted as the program ends")
})

// A throwaway SoftHSM2 token, and a pool of 4 sessions on it.
NodeRuntime.runMain(program.pipe(Effect.provide(SoftHsm.layerPool({ tokenLabel: "hsmkey-demo", maxSessions: 4 }))))
