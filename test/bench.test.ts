/**
 * `pnpm bench` keeps running: a fraction of a second per cell, and every row it must report has a number.
 * It asserts that the benchmark ran and wrote its results, never a speed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { runTs } from "./support/child.js"
import { softHsmAvailable } from "./support/softhsm.js"

interface Report {
  readonly rows: ReadonlyArray<{ alg: string; system: string; perSecond: number; ratio: number; loopP99Ms: number }>
  readonly latency: ReadonlyArray<{ alg: string; system: string; p50Us: number; p99Us: number }>
  readonly heap: ReadonlyArray<{ signatures: number; growthMb: number }>
}

describe.skipIf(!softHsmAvailable)("bench", () => {
  it.live("pnpm bench runs every row on SoftHSM2 and writes JSON and Markdown results", () =>
    Effect.gen(function*() {
      // Its own directory: a developer's results from a real run stay where they are.
      const results = Fs.mkdtempSync(Path.join(Os.tmpdir(), "hsmkey-bench-"))
      const { code, stderr, stdout } = yield* runTs("bench/sign.ts", {
        BENCH_RESULTS: results,
        BENCH_SECONDS: "0.1",
        BENCH_HEAP_SIGNATURES: "200",
        BENCH_LATENCY_SAMPLES: "50"
      }, { timeoutMillis: 240_000 })
      assert.strictEqual(code, 0, stderr)
      const report = JSON.parse(Fs.readFileSync(Path.join(results, "sign.json"), "utf8")) as Report
      const markdown = Fs.readFileSync(Path.join(results, "sign.md"), "utf8")
      assert.include(stdout, "| alg | system | signatures/s |")
      for (const alg of ["ES256", "EdDSA", "RS256"]) {
        const systems = report.rows.filter((row) => row.alg === alg).map((row) => row.system)
        for (
          const expected of [
            "raw pkcs11js sync, 1 session",
            "raw pkcs11js async, 4 sessions",
            "hsmkey Jws.sign, pool of 1, inline lanes, 1 callers",
            "hsmkey Jws.sign, pool of 4, inline lanes, 256 callers",
            "hsmkey Jws.sign, pool of 4, 2 signing threads, 16 callers",
            "hsmkey Jws.sign, pool of 4 signing on the threadpool, 16 callers",
            "hsmkey session per signature (HsmLive.hsmSession), 16 callers",
            "graphene-pk11 sync, 1 session",
            "node:crypto, key in memory",
            "jose CompactSign, key in memory"
          ]
        ) assert.include(systems, expected, `${alg}: ${expected}`)
        assert.isTrue(report.latency.some((row) => row.alg === alg && row.system === "hsmkey Jws.sign"))
      }
      for (const row of report.rows) {
        assert.isTrue(row.perSecond > 0 && Number.isFinite(row.ratio), `${row.alg} ${row.system} measured`)
        assert.include(markdown, `| ${row.alg} | ${row.system} |`)
      }
      assert.strictEqual(report.heap[0]?.signatures, 200)
      Fs.rmSync(results, { recursive: true, force: true })
    }))
})
