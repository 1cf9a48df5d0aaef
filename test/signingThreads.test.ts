/**
 * Signing threads on a throwaway SoftHSM2 token: batches signed beside the event loop verify, and a thread
 * that dies under a batch costs no request.
 */
import { assert, describe, it } from "@effect/vitest"
import { NodePkcs11 } from "@hsmkey/node"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect } from "effect"
import { HsmJwk, Jws, SessionPool } from "hsmkey"
import * as Fs from "node:fs"
import * as SigningThreads from "../packages/node/src/internal/signingThreads.js"
import { softHsmAvailable } from "./support/softhsm.js"

const layer = SoftHsm.layerPool({ tokenLabel: "threads", maxSessions: 4, signingThreads: 2 })

describe.skipIf(!softHsmAvailable)("signing threads", () => {
  it.live("batches of P-256, Ed25519 and RSA signatures from 300 callers each verify; 4 sessions at most", () =>
    Effect.gen(function*() {
      const pool = yield* SessionPool.SessionPool
      for (const type of ["P-256", "Ed25519", "RSA-2048"] as const) {
        const key = yield* HsmJwk.generate({ type, label: `threads-${type}` })
        const signed = yield* Effect.forEach(
          Array.from({ length: 300 }, (_, i) => `${type} payload ${i}`),
          (payload) => Effect.map(Jws.sign(payload, key), (jws) => ({ payload, jws })),
          { concurrency: "unbounded" }
        )
        for (const { jws, payload } of signed) {
          assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(jws, key)).payload), payload)
        }
        assert.isAtMost((yield* pool.stats).open, 4)
      }
    }).pipe(Effect.provide(layer)))

  it.live("a signing thread that exits under its batch costs no request; the next batches get a new thread", () =>
    Effect.gen(function*() {
      const token = yield* SoftHsm.Token
      const key = yield* HsmJwk.generate({ type: "P-256", label: "threads-exit" })
      const library = Fs.realpathSync(token.modulePath)
      // Both threads running, so that the batch dies on a thread rather than on the threadpool meanwhile.
      while ((yield* NodePkcs11.moduleStatus(library)).signingThreads < 2) {
        yield* Effect.forEach(Array.from({ length: 64 }), () => Jws.sign("warm", key), { concurrency: "unbounded" })
      }
      const signing = yield* Effect.fork(Effect.forEach(
        Array.from({ length: 2000 }, (_, i) => `payload ${i}`),
        (payload) => Jws.sign(payload, key),
        { concurrency: 64 }
      ))
      yield* Effect.sleep("20 millis")
      yield* Effect.promise(() => SigningThreads.terminate(library, 0))
      yield* Effect.promise(() => SigningThreads.terminate(library, 1))
      const signed = yield* signing.await
      assert.strictEqual(signed._tag, "Success", String(signed))
      if (signed._tag === "Success") {
        assert.strictEqual(signed.value.length, 2000)
        for (const jws of signed.value) yield* Jws.verify(jws, key)
      }
      const after = yield* Effect.forEach(Array.from({ length: 200 }), () => Jws.sign("after", key), {
        concurrency: "unbounded"
      })
      assert.strictEqual(after.length, 200)
    }).pipe(Effect.provide(layer)))
})
