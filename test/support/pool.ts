import { Pkcs11 } from "@hsmkey/pkcs11"
import { Cause, Effect, Exit, Layer, type Scope } from "effect"
import { Capabilities, type HsmError, HsmJwk, SessionPool } from "hsmkey"
import * as Crypto from "node:crypto"
import { assert } from "vitest"
import { TestToken } from "./backends.js"
import { type RawSession, sessionOn } from "./rawSession.js"

/**
 * A backend with a `SessionPool` on its test token.
 */
export const withPool = <E, R>(backendLayer: Layer.Layer<R, E>) =>
  Layer.provideMerge(
    Layer.unwrapEffect(
      Effect.map(TestToken, (token) => SessionPool.layer({ tokenLabel: token.label, userPin: token.userPin }))
    ),
    backendLayer
  )

/** A label no other test uses. */
export const unique = (prefix: string) => `${prefix}-${Crypto.randomBytes(4).toString("hex")}`

/** Runs `effect` in a read/write session of the pool, in context. */
export const rw = <A, E, R>(effect: Effect.Effect<A, E, R>) => SessionPool.withSession(effect, { rw: true })

export type { RawSession } from "./rawSession.js"

/** A raw session on the test token (see `sessionOn`), closed with the scope. */
export const rawSession = (
  options: { readonly rw?: boolean } = {}
): Effect.Effect<RawSession, unknown, Pkcs11.Pkcs11 | TestToken | Scope.Scope> =>
  Effect.flatMap(TestToken, (token) => sessionOn(token.serialNumber, options))

/** The typed failure of an effect; a success or a defect (which would say "bug") fails the test. */
export const typedFailure = <A>(effect: Effect.Effect<A, HsmError.HsmError, any>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    if (Exit.isSuccess(exit)) return undefined as never
    assert.isTrue(Cause.isFailType(exit.cause), `expected a typed failure, got ${Cause.pretty(exit.cause)}`)
    return (exit.cause as Cause.Fail<HsmError.HsmError>).error
  })

/**
 * The cheapest key type hsmkey generates and signs with on the test token (P-256, else Ed25519, else
 * RSA-2048), for tests where any signing key will do: openCryptoki has no EC.
 */
export const quickType = Effect.map(TestToken, (token): HsmJwk.GenerateType => {
  const type = (["P-256", "Ed25519", "RSA-2048"] as const).find((t) => Capabilities.canGenerate(token.capabilities, t))
  if (type === undefined) throw new Error(`token ${token.label} generates none of P-256, Ed25519, RSA-2048`)
  return type
})

/** Asserts a typed failure's tag first (naming what came instead), then each of the fields given. */
export const assertFailure = (
  error: HsmError.HsmError,
  expected: { readonly _tag: string } & Record<string, unknown>
) => {
  assert.strictEqual(error._tag, expected._tag, error.message)
  for (const [name, value] of Object.entries(expected)) {
    assert.deepStrictEqual((error as unknown as Record<string, unknown>)[name], value, name)
  }
}

/**
 * The `Pkcs11` in context, noting the handle of every session opened through it: a pool built on it
 * shows which sessions it opened, for a test to look at or close them behind its back.
 */
export const watchedPkcs11 = Effect.map(Pkcs11.Pkcs11, (inner) => {
  const opened: Array<Pkcs11.SessionHandle> = []
  const service: Pkcs11.Pkcs11.Service = {
    ...inner,
    openSession: (slot, options) => Effect.tap(inner.openSession(slot, options), (handle) => void opened.push(handle))
  }
  return { opened, service }
})

/**
 * A pool of 4 on the test token over a watched `Pkcs11` (its sessions in `opened`), and a key of the
 * cheapest type made through it, in the current scope.
 */
export const watchedPool = (keyLabel: string) =>
  Effect.gen(function*() {
    const token = yield* TestToken
    const { opened, service } = yield* watchedPkcs11
    const pool = yield* Effect.provideService(
      SessionPool.make({ tokenLabel: token.label, userPin: token.userPin, maxSessions: 4 }),
      Pkcs11.Pkcs11,
      service
    )
    const type = yield* quickType
    const key = yield* Effect.provideService(
      HsmJwk.generate({ type, label: unique(keyLabel) }),
      SessionPool.SessionPool,
      pool
    )
    return { opened, pool, key }
  })
