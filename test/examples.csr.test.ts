/**
 * examples/csr.ts runs as a user would run it: its stdout is one PEM request, which `openssl req -verify`
 * accepts and whose subject and subjectAltName are the example's; and the code of @hsmkey/x509's README is
 * the example's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { root, runTs } from "./support/child.js"
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

describe("@hsmkey/x509 README", () => {
  it("shows only code that examples/csr.ts holds, as it holds it", () => {
    const readme = Fs.readFileSync(Path.join(root, "packages/x509/README.md"), "utf8")
    const example = Fs.readFileSync(Path.join(root, "examples/csr.ts"), "utf8")
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!)
    assert.isAtLeast(blocks.length, 1)
    for (const block of blocks) assert.include(example, block)
  })
})
