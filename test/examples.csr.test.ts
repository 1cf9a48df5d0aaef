/**
 * examples/csr.ts runs as a user would run it: its stdout is one PEM request, which `openssl req -verify`
 * accepts and whose subject and subjectAltName are the example's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { runTs } from "./support/child.js"
import { softHsmAvailable } from "./support/softhsm.js"

const openssl = (args: ReadonlyArray<string>, input: string) => {
  const result = spawnSync("openssl", args, { input, encoding: "utf8", timeout: 30_000 })
  return { code: result.status, output: `${result.stdout}${result.stderr}` }
}

describe.skipIf(!softHsmAvailable)("examples/csr", () => {
  it.live("prints a request signed in a throwaway SoftHSM2 token, and nothing else, on stdout", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* runTs("examples/csr.ts")
      assert.strictEqual(code, 0, stderr)
      assert.match(
        stdout,
        /^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n$/
      )
      const verify = openssl(["req", "-verify", "-noout"], stdout)
      assert.strictEqual(verify.code, 0, verify.output)
      assert.include(verify.output, "verify OK")
      const subject = openssl(["req", "-subject", "-noout", "-nameopt", "RFC2253"], stdout)
      assert.strictEqual(subject.output.trim(), "subject=CN=api.example.com,O=Example,C=DE")
      const text = openssl(["req", "-text", "-noout"], stdout)
      assert.match(text.output, /Subject Alternative Name:\s+DNS:api\.example\.com\n/)
      assert.match(text.output, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/)
      assert.include(text.output, "Signature Algorithm: ecdsa-with-SHA256")
    }))
})
