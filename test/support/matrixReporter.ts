/**
 * Prints, after the run, which backend-parameterized test ran on which backend: ran, FAILED, not offered
 * (and why), or skipped because the backend is absent. It also writes the table to
 * `test-results/backend-matrix.md`, which CI prints.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Reporter, TestCase, TestModule } from "vitest/node"

const BACKENDS = ["MemoryPkcs11", "SoftHSM2", "openCryptoki"] as const

type Cell = string

const topSuite = (test: TestCase): string | undefined => {
  let parent = test.parent
  let name: string | undefined
  while (parent.type === "suite") {
    name = parent.name
    parent = parent.parent
  }
  return name
}

const cellOf = (test: TestCase): Cell => {
  const meta = test.meta().hsmkey
  const state = test.result().state
  if (state === "failed") return "FAILED"
  if (state === "skipped" || state === "pending") return "skipped (backend absent)"
  if (meta !== undefined && !meta.offered) return `not offered: ${meta.reason}`
  return "ran"
}

export default class MatrixReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const rows = new Map<string, Map<string, Cell>>()
    for (const module of testModules) {
      const file = Path.relative(process.cwd(), module.moduleId)
      for (const test of module.children.allTests()) {
        // A matrix test sets its meta when it runs; one that never ran sits under its backend's describe.
        const state = test.result().state
        // A test whose backend's layer failed to build fails with no meta: it is shown failed, not left out.
        const backend = test.meta().hsmkey?.backend ??
          (state === "skipped" || state === "pending" || state === "failed" ? topSuite(test) : undefined)
        if (backend === undefined || !(BACKENDS as ReadonlyArray<string>).includes(backend)) continue
        const key = `${file} › ${test.name}`
        const row = rows.get(key) ?? new Map<string, Cell>()
        row.set(backend, cellOf(test))
        rows.set(key, row)
      }
    }
    if (rows.size === 0) return
    const counts = Object.fromEntries(BACKENDS.map((b) => [b, { ran: 0, notOffered: 0, other: 0 }]))
    const lines = [
      `| test | ${BACKENDS.join(" | ")} |`,
      `| --- | ${BACKENDS.map(() => "---").join(" | ")} |`
    ]
    const notRun: Array<string> = []
    for (const [name, row] of [...rows].sort(([a], [b]) => a.localeCompare(b))) {
      const cells = BACKENDS.map((backend) => {
        const cell = row.get(backend) ?? "—"
        const count = counts[backend]
        if (cell === "ran") count.ran++
        else if (cell.startsWith("not offered")) count.notOffered++
        else if (cell !== "—") count.other++
        return cell
      })
      const line = `| ${name} | ${cells.join(" | ")} |`
      lines.push(line)
      if (cells.some((cell) => cell !== "ran")) notRun.push(line)
    }
    const summary = BACKENDS.map((b) =>
      `${b}: ${counts[b].ran} ran, ${counts[b].notOffered} not offered, ${counts[b].other} skipped or failed`
    ).join("; ")
    const text = `# Tests by backend\n\n${summary}\n\n${lines.join("\n")}\n`
    Fs.mkdirSync("test-results", { recursive: true })
    Fs.writeFileSync(Path.join("test-results", "backend-matrix.md"), text)
    process.stdout.write(
      `\nTests by backend (${rows.size} tests; table in test-results/backend-matrix.md)\n${summary}\n`
    )
    if (notRun.length > 0) {
      process.stdout.write(`Not run on every backend:\n${lines.slice(0, 2).join("\n")}\n${notRun.join("\n")}\n`)
    }
  }
}
