/**
 * What a JavaScript caller or a network peer can hand the signing functions beyond their types: anything
 * that is not a payload, a signer or an option gives a typed error, never a defect and never a silently
 * coerced value (`Jws.sign(42)` once signed an empty payload). Properties run 1,000 times each; the cases
 * they found are kept below as named regressions.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Cause, Effect, Exit, FastCheck, Layer, ManagedRuntime, Redacted } from "effect"
import { HsmJwk, Jwe, Jws, Jwt, SessionPool } from "hsmkey"

const userPin = Redacted.make("hostile-user-4711")
const emulator = MemoryPkcs11.layer({ tokens: [{ label: "hostile", userPin }] })
const poolLayer = SessionPool.layer({ tokenLabel: "hostile", userPin, maxSessions: 2 }).pipe(Layer.provide(emulator))

/** A typed failure with `tag`: not a defect, not an interruption, not a success. */
const failsWith = (exit: Exit.Exit<unknown, { readonly _tag: string }>, tag: string): boolean =>
  Exit.isFailure(exit) && Cause.isFailType(exit.cause) && exit.cause.error._tag === tag

describe("hostile input to signing", () => {
  it.live(
    "Jws.sign, signFlattened and signMany take text or bytes; anything else is InvalidOptions",
    () =>
      Effect.gen(function*() {
        const runtime = ManagedRuntime.make(poolLayer)
        yield* Effect.addFinalizer(() => runtime.disposeEffect)
        const key = yield* Effect.promise(() => runtime.runPromise(HsmJwk.generate({ type: "P-256", label: "k" })))
        yield* Effect.promise(() =>
          FastCheck.assert(
            FastCheck.asyncProperty(FastCheck.anything({ withTypedArray: true }), async (payload) => {
              const text = typeof payload === "string" || payload instanceof Uint8Array
              for (
                const signing of [
                  Effect.asVoid(Jws.sign(payload as never, key)),
                  Effect.asVoid(Jws.signFlattened(payload as never, key)),
                  Effect.asVoid(Jws.signMany([payload as never], key))
                ]
              ) {
                const exit: Exit.Exit<unknown, { readonly _tag: string }> = await runtime.runPromiseExit(signing)
                if (text ? !Exit.isSuccess(exit) : !failsWith(exit, "InvalidOptions")) return false
              }
              return true
            }),
            { numRuns: 1000 }
          )
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.scoped("named regressions: a number, null, an array, signers that are not signers, a concurrency not whole", () =>
    Effect.gen(function*() {
      const key = yield* HsmJwk.generate({ type: "P-256", label: "regressions" })
      for (const payload of [42, null, undefined, [1, 2], { a: 1 }, true]) {
        const error = yield* Effect.flip(Jws.sign(payload as never, key))
        assert.strictEqual(error._tag, "InvalidOptions", String(payload))
      }
      for (const signers of [[null], ["key"], [{}], "signers", []]) {
        const error = yield* Effect.flip(Jws.signGeneral("payload", signers as never))
        assert.strictEqual(error._tag, "InvalidOptions", JSON.stringify(signers))
      }
      for (const concurrency of [Number.NaN, 0, 1.5, -1, Infinity]) {
        const error = yield* Effect.flip(Jws.signMany(["a", "b"], key, { concurrency }))
        assert.strictEqual(error._tag, "InvalidOptions", String(concurrency))
      }
      const [one] = yield* Jws.signMany(["a"], key, { concurrency: 1 })
      assert.strictEqual(new TextDecoder().decode((yield* Jws.verify(one, key)).payload), "a")
    }).pipe(Effect.provide(poolLayer)))

  it.scoped("a key that is no HsmJwk or HsmSecretKey is InvalidOptions from a failed Effect, never a throw or a defect", () =>
    Effect.gen(function*() {
      const rsa = yield* HsmJwk.generate({ type: "RSA-2048", label: "not-a-key-rsa", use: "enc" })
      const jwe = yield* Jwe.encrypt("x", rsa, { enc: "A128GCM" })
      const header = Buffer.from(JSON.stringify({ alg: "ES256" })).toString("base64url")
      // { alg: "ES256" } died in the policy, building an AlgorithmMismatch without a key type; null threw
      // from the call itself, reading key.kid for the span.
      for (
        const key of [null, undefined, 5, "key", {}, { alg: "ES256" }, { kid: "k", alg: "ES256", keyType: "P-256" }]
      ) {
        const calls: ReadonlyArray<
          readonly [string, () => Effect.Effect<unknown, { readonly _tag: string }, SessionPool.SessionPool>]
        > = [
          ["Jws.sign", () => Jws.sign("x", key as never)],
          ["Jws.signFlattened", () => Jws.signFlattened("x", key as never)],
          ["Jws.signEncoded", () => Jws.signEncoded(header, "x", key as never)],
          ["Jws.signMany", () => Jws.signMany(["x"], key as never)],
          ["Jws.signMany of none", () => Jws.signMany([], key as never)],
          ["Jws.signGeneral", () => Jws.signGeneral("x", [{ key: key as never }])],
          ["Jwt.sign", () => Jwt.sign({}, key as never)],
          ["Jwe.encrypt", () => Jwe.encrypt("x", key as never, { enc: "A128GCM" })],
          ["Jwe.decrypt", () => Jwe.decrypt(jwe, key as never)]
        ]
        for (const [name, call] of calls) {
          const what = `${name} with ${JSON.stringify(key)}`
          let effect: Effect.Effect<unknown, { readonly _tag: string }, SessionPool.SessionPool>
          try {
            effect = call()
          } catch (error) {
            assert.fail(`${what} threw: ${String(error)}`)
          }
          const exit = yield* Effect.exit(effect)
          assert.isTrue(
            failsWith(exit, "InvalidOptions"),
            `${what}: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "a success"}`
          )
        }
      }
    }).pipe(Effect.provide(poolLayer)))
})

describe("hostile options to Jwt.sign", () => {
  it.scoped("durations that are not finite and non-negative, and registered claims that are not strings, are InvalidOptions", () =>
    Effect.gen(function*() {
      const key = yield* HsmJwk.generate({ type: "P-256", label: "jwt-options" })
      // Once: Infinity signed "exp": null, NaN signed exp == iat, a garbage string was a defect.
      for (const expiresIn of [Infinity, Number.NaN, "garbage", -1000, "-5 minutes"]) {
        const error = yield* Effect.flip(Jwt.sign({ sub: "s" }, key, { expiresIn: expiresIn as never }))
        assert.strictEqual(error._tag, "InvalidOptions", String(expiresIn))
        const before = yield* Effect.flip(Jwt.sign({ sub: "s" }, key, { notBefore: expiresIn as never }))
        assert.strictEqual(before._tag, "InvalidOptions", String(expiresIn))
      }
      for (const name of ["issuer", "subject", "jti", "typ"] as const) {
        const error = yield* Effect.flip(Jwt.sign({ sub: "s" }, key, { [name]: 5 as never }))
        assert.strictEqual(error._tag, "InvalidOptions", name)
      }
      const jwt = yield* Jwt.sign({ sub: "s" }, key, { expiresIn: "1 minute", issuer: "me" })
      const { payload: claims } = yield* Jwt.verify(jwt, key, { issuer: "me" })
      assert.strictEqual(claims.exp, (claims.iat as number) + 60)
    }).pipe(Effect.provide(poolLayer)))
})
