/**
 * Tests that run on every backend that offers what they need. A test declares its needs (key types,
 * algorithms, mechanisms, backend features); on a backend whose capabilities (hsmkey's own
 * `Capabilities`, read from the live token) or features do not offer them, it is reported as not offered,
 * with the reason, in the test × backend matrix the run prints (`./matrixReporter.ts`). It is never
 * skipped in silence.
 */
import type { TestContext } from "@effect/vitest"
import { Constants } from "@hsmkey/pkcs11"
import { Effect } from "effect"
import { type Algorithm, Capabilities, type HsmJwk } from "hsmkey"
import type { BackendName, Feature } from "./backends.js"
import { TestToken } from "./backends.js"

declare module "vitest" {
  interface TaskMeta {
    /** The backend a matrix test ran on, and whether it was offered there. */
    hsmkey?: { readonly backend: BackendName; readonly offered: boolean; readonly reason?: string }
  }
}

export interface Needs {
  /** Key types hsmkey generates on the token. */
  readonly generate?: ReadonlyArray<HsmJwk.GenerateType>
  /** Key types the token can use once imported. */
  readonly import?: ReadonlyArray<HsmJwk.GenerateType>
  /** JWS algorithms the token signs with. */
  readonly sign?: ReadonlyArray<string>
  /** JWE key management algorithms the token decrypts with. */
  readonly decrypt?: ReadonlyArray<Algorithm.KeyManagementAlgorithm>
  /** Mechanisms the token lists. */
  readonly mechanisms?: ReadonlyArray<number>
  /** HMAC secrets generated in the token. */
  readonly secrets?: boolean
  readonly features?: ReadonlyArray<Feature>
  /** Key types the token must NOT generate: for tests of how hsmkey refuses what a token lacks. */
  readonly lacksGenerate?: ReadonlyArray<HsmJwk.GenerateType>
  /** JWE algorithms the token must NOT decrypt with, likewise. */
  readonly lacksDecrypt?: ReadonlyArray<Algorithm.KeyManagementAlgorithm>
}

/** What a backend lacks of `needs`, or `undefined` when it offers them all. */
export const unmet = (needs: Needs, token: TestToken["Type"]): string | undefined => {
  const capabilities = token.capabilities
  const missing = [
    ...(needs.generate ?? []).filter((type) => !Capabilities.canGenerate(capabilities, type)).map((t) =>
      `generating ${t}`
    ),
    ...(needs.import ?? []).filter((type) => !Capabilities.canImport(capabilities, type)).map((t) => `using ${t}`),
    ...(needs.sign ?? []).filter((alg) => !Capabilities.canSign(capabilities, alg)).map((alg) => `signing ${alg}`),
    ...(needs.decrypt ?? []).filter((alg) => !Capabilities.canDecrypt(capabilities, alg)).map((alg) =>
      `decrypting ${alg}`
    ),
    ...(needs.mechanisms ?? []).map(Constants.mechanismName).filter((name) => !capabilities.mechanisms.includes(name)),
    ...(needs.secrets === true && capabilities.secrets.generate === undefined ? ["HMAC secrets"] : []),
    ...(needs.features ?? []).filter((feature) => !token.features.has(feature)),
    ...(needs.lacksGenerate ?? []).filter((type) => Capabilities.canGenerate(capabilities, type)).map((t) =>
      `a token without ${t} (this one generates it)`
    ),
    ...(needs.lacksDecrypt ?? []).filter((alg) => Capabilities.canDecrypt(capabilities, alg)).map((alg) =>
      `a token without ${alg} (this one decrypts it)`
    )
  ]
  return missing.length === 0 ? undefined : `needs ${missing.join(", ")}`
}

interface Tester<R> {
  <A, E>(name: string, self: (ctx: TestContext) => Effect.Effect<A, E, R>, timeout?: number): void
}

/**
 * A test on the backend in context that runs only where `needs` are offered, and says so either way.
 */
export const offered = <R>(it: { readonly effect: Tester<R | TestToken> }) =>
<A, E>(
  name: string,
  needs: Needs,
  self: (ctx: TestContext) => Effect.Effect<A, E, R | TestToken>,
  timeout?: number
): void =>
  it.effect(name, (ctx) =>
    Effect.flatMap(TestToken, (token) => {
      const reason = unmet(needs, token)
      ctx.task.meta.hsmkey = reason === undefined
        ? { backend: token.backend, offered: true }
        : { backend: token.backend, offered: false, reason }
      return reason === undefined ? Effect.asVoid(self(ctx)) : Effect.void
    }), timeout)
