/**
 * A session lent by a `SessionPool`. It travels in context while it is lent, as a database
 * transaction's connection does in `@effect/sql`: `SessionPool.withSession(effect)` provides it, and every
 * key and JOSE operation inside uses it (or borrows a read/write one when it must write and this one is
 * read-only). Outside, operations borrow from the pool on their own.
 *
 * A session is opaque: it says which token it is on and whether it is read/write. It is valid until its
 * lease ends; keys loaded through it outlive it (they keep CKA_ID and label, not a handle). The raw Cryptoki
 * service is `Pkcs11` from `@hsmkey/pkcs11`, for those who want it.
 *
 * @example
 * ```ts
 * import { MemoryPkcs11 } from "@hsmkey/pkcs11"
 * import { Effect, Layer, Redacted } from "effect"
 * import { HsmJwk, HsmSession, SessionPool } from "hsmkey"
 *
 * const userPin = Redacted.make("1234")
 * // A pool on an in-memory token; in production, `HsmLive.layer` of `@hsmkey/node` gives the same.
 * const Hsm = SessionPool.layer({ tokenLabel: "demo", userPin }).pipe(
 *   Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "demo", userPin }] }))
 * )
 *
 * // Inside `withSession`, the lent session is in context: every operation uses it.
 * const program = Effect.gen(function*() {
 *   const session = yield* HsmSession.CurrentSession
 *   assert.strictEqual(session.token.label, "demo")
 *   return yield* HsmJwk.list()
 * }).pipe(SessionPool.withSession())
 *
 * Effect.runPromise(Effect.provide(program, Hsm))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"

/**
 * How a token is named: by label for people, by serial number for identity.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenRef {
  readonly label: string
  readonly serialNumber: string
  /** The library the token is reached through (`Pkcs11.Service.moduleId`). */
  readonly moduleId: string
}

/**
 * A lent session.
 *
 * @since 0.1.0
 * @category models
 */
export interface HsmSession {
  readonly token: TokenRef
  /** Whether the session is read/write; sessions are read-only unless asked for. */
  readonly rw: boolean
}

/**
 * The session the current effect runs in, provided by `SessionPool.withSession`.
 *
 * @since 0.1.0
 * @category tags
 */
export class CurrentSession extends Context.Tag("hsmkey/CurrentSession")<CurrentSession, HsmSession>() {}
