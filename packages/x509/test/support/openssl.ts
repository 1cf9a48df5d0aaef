import { Effect } from "effect"
import { spawnSync } from "node:child_process"

export interface OpensslResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `openssl` with `input` on its standard input, as a user checking a request would. */
export const openssl = (args: ReadonlyArray<string>, input: string): Effect.Effect<OpensslResult> =>
  Effect.sync(() => {
    const result = spawnSync("openssl", args, { input, encoding: "utf8", timeout: 30_000 })
    if (result.error !== undefined) throw result.error
    return { code: result.status, stdout: result.stdout, stderr: result.stderr }
  })

/** What `openssl req` says of a PEM request: whether it verifies, its public key, subject and text. */
export const inspectRequest = (pem: string) =>
  Effect.gen(function*() {
    const verify = yield* openssl(["req", "-verify", "-noout"], pem)
    const publicKey = yield* openssl(["req", "-pubkey", "-noout"], pem)
    const subject = yield* openssl(["req", "-subject", "-noout", "-nameopt", "RFC2253,-esc_msb"], pem)
    const text = yield* openssl(["req", "-text", "-noout"], pem)
    return {
      verified: verify.code === 0 && /verify OK/.test(verify.stdout + verify.stderr),
      verifyOutput: verify.stdout + verify.stderr,
      publicKey: publicKey.stdout,
      subject: subject.stdout.replace(/^subject=/, "").replace(/\n$/, ""),
      text: text.stdout
    }
  })
