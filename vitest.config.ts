import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.js"

export default defineConfig({
  test: {
    projects,
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    sequence: { concurrent: false },
    // The test × backend matrix: which suite ran where, and why not elsewhere.
    reporters: ["default", "./test/support/matrixReporter.ts"]
  }
})
