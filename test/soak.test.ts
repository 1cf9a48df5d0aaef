/**
 * The soak as CI runs it: `pnpm soak --seconds 30` (15 s on the emulator with random faults, 15 s on a
 * throwaway SoftHSM2 token with logouts and sessions closed behind the pool's back), in a child process
 * as a developer runs it. Its invariants must all hold: no defect, no wrong result, every request ended
 * by its deadline, the last 2 s all signed, no session or login left, the heap within 32 MB.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { root } from "./support/child.js"
import { softHsmAvailable } from "./support/softhsm.js"

interface Report {
  readonly backend: string
  readonly requests: number
  readonly failed: number
  readonly counts: Record<string, number>
  readonly faults: Record<string, number>
  readonly leftOpen: { readonly sessions: number; readonly loggedIn: boolean }
  readonly heapMb: { readonly afterWarmup: number; readonly atEnd: number }
  readonly invariants: Record<string, boolean>
}

describe.skipIf(!softHsmAvailable)("the soak", () => {
  it.live("30 s on the emulator and SoftHSM2 with faults: every invariant holds", () =>
    Effect.gen(function*() {
      const run = yield* Effect.promise(() =>
        promisify(execFile)(
          process.execPath,
          ["--expose-gc", "--import", "tsx", "scripts/soak.ts", "--seconds", "30"],
          {
            cwd: root,
            timeout: 120_000,
            maxBuffer: 16 * 1024 * 1024
          }
        ).then((out) => ({ code: 0, stdout: out.stdout }), (error: { code?: number; stdout?: string }) => ({
          code: error.code ?? -1,
          stdout: error.stdout ?? ""
        }))
      )
      console.log(run.stdout.split("\n").filter((line) => !line.startsWith("SOAK-SUMMARY")).join("\n"))
      const summary = run.stdout.split("\n").find((line) => line.startsWith("SOAK-SUMMARY "))
      assert.isDefined(summary, run.stdout)
      const reports: ReadonlyArray<Report> = JSON.parse(summary!.slice("SOAK-SUMMARY ".length))
      assert.deepStrictEqual(reports.map((r) => r.backend), ["MemoryPkcs11", "SoftHSM2"])
      for (const report of reports) {
        for (const [invariant, holds] of Object.entries(report.invariants)) {
          assert.isTrue(holds, `${report.backend}: ${invariant}`)
        }
        // It did work and met faults: a soak that signs nothing, or meets none, proves nothing.
        assert.isAbove(report.requests, 1000, report.backend)
        assert.isAbove(Object.values(report.faults).reduce((a, b) => a + b, 0), 20, report.backend)
        assert.deepStrictEqual(report.leftOpen, { sessions: 0, loggedIn: false })
      }
      assert.strictEqual(run.code, 0)
    }), 180_000)
})
