import type { TestProjectConfiguration } from "vitest/config"

// Every project runs its files in child processes (`forks`): a PKCS#11 library is initialized once per
// process, and worker threads would share SoftHSM2 between test files.
const project = (name: string, include: ReadonlyArray<string>): TestProjectConfiguration => ({
  extends: true,
  test: { name, include: [...include] }
})

export default [
  project("pkcs11", ["packages/pkcs11/test/**/*.test.ts"]),
  project("softhsm", ["packages/softhsm/test/**/*.test.ts"]),
  project("hsmkey", ["packages/hsmkey/test/**/*.test.ts"]),
  project("x509", ["packages/x509/test/**/*.test.ts"]),
  project("platform", ["packages/platform/test/**/*.test.ts"]),
  project("cli", ["packages/cli/test/**/*.test.ts"]),
  project("conformance", ["test/**/*.test.ts"])
]
