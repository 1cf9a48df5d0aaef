/**
 * A certificate signing request from a key that never leaves the token: on a throwaway SoftHSM2 token,
 * generate a P-256 key, make a PKCS#10 request for a subject with a DNS subjectAltName, and print its PEM.
 * Only the PEM goes to stdout (logs and errors go to stderr), so the output pipes into openssl:
 *
 *   pnpm tsx examples/csr.ts | openssl req -verify -noout -text
 */
import { NodeRuntime } from "@effect/platform-node"
import { SoftHsm } from "@hsmkey/softhsm"
import { Csr } from "@hsmkey/x509"
import { Console, Effect, Logger } from "effect"
import { HsmJwk } from "hsmkey"

const program = Effect.gen(function*() {
  const key = yield* HsmJwk.generate({ type: "P-256", label: "api-tls" })
  const csr = yield* Csr.create({
    key,
    subject: "CN=api.example.com,O=Example,C=DE",
    subjectAltNames: ["DNS:api.example.com"]
  })
  yield* Console.log(csr.pem.trimEnd())
})

program.pipe(
  Effect.provide(SoftHsm.layerPool({ tokenLabel: "hsmkey-csr" })),
  Effect.tapErrorCause(Effect.logError),
  // stdout is the request's alone.
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
