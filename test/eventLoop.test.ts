/**
 * Long token work does not hold the event loop: RSA-4096 generation on a throwaway SoftHSM2 token runs
 * on the threadpool while timers keep firing. Generation takes 1-3 s here; the longest delay measured is
 * 35-52 ms, of which ~20 ms is SoftHSM2's first C_GetAttributeValue of the new key, a synchronous call.
 */
import { assert, describe, it } from "@effect/vitest"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect } from "effect"
import { HsmJwk } from "hsmkey"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { softHsmAvailable } from "./support/softhsm.js"

describe.skipIf(!softHsmAvailable)("the event loop", () => {
  it.live(
    "RSA-4096 generation does not block it: its delay stays under 100 ms while the token works",
    () =>
      Effect.gen(function*() {
        const histogram = monitorEventLoopDelay({ resolution: 1 })
        histogram.enable()
        const start = performance.now()
        const key = yield* HsmJwk.generate({ type: "RSA-4096", label: "loop-rsa4096" })
        const took = performance.now() - start
        histogram.disable()
        assert.strictEqual(key.publicKey.asymmetricKeyDetails?.modulusLength, 4096)
        const maxDelay = histogram.max / 1e6
        assert.isBelow(maxDelay, 100, `event loop delay ${maxDelay.toFixed(1)} ms while generation took ${took} ms`)
        assert.isAbove(histogram.count, 0)
      }).pipe(Effect.provide(SoftHsm.layerPool({ tokenLabel: "loop" }))),
    120_000
  )
})
