/**
 * NodePkcs11's process-wide module registry, against the real SoftHSM2 library. This file runs in its
 * own process (vitest `forks`), so it sees the module's whole life.
 */
import { assert, describe, it } from "@effect/vitest"
import { NodePkcs11 } from "@hsmkey/node"
import { Constants, Pkcs11 } from "@hsmkey/pkcs11"
import { Context, Deferred, type Duration, Effect, Exit, Fiber, Layer, Redacted, Scope } from "effect"
import { SessionPool } from "hsmkey"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import pkcs11js from "pkcs11js"
import { softHsmAvailable, softHsmModule, writeSoftHsmConfig } from "./support/softhsm.js"

const modulePath = softHsmModule ?? "/unavailable"

const withSoftHsmConfig = () => {
  const { config, directory } = writeSoftHsmConfig("hsmkey-registry-")
  process.env.SOFTHSM2_CONF = config
  return directory
}

/** A raw pkcs11js C_Initialize: `true` when it initialized, `false` for CKR_CRYPTOKI_ALREADY_INITIALIZED. */
const rawInitialize = (library: pkcs11js.PKCS11): boolean => {
  try {
    library.C_Initialize({ flags: 2 })
    return true
  } catch (error) {
    if (error instanceof pkcs11js.Pkcs11Error && error.code === 0x191) return false
    throw error
  }
}

const status = NodePkcs11.moduleStatus(modulePath).pipe(Effect.orDie)

describe.skipIf(!softHsmAvailable)("NodePkcs11 on SoftHSM2", () => {
  const directory = softHsmAvailable ? withSoftHsmConfig() : ""

  it.live("two layers built by separate programs share one C_Initialize; the last release finalizes once", () =>
    Effect.gen(function*() {
      const before = yield* status
      assert.isFalse(before.loaded)
      const bothHeld = yield* Deferred.make<void>()
      const releaseSecond = yield* Deferred.make<void>()
      const seen: Array<NodePkcs11.ModuleStatus> = []

      // Two independent runtimes, as two unrelated parts of an application would build them.
      const holder = (name: "first" | "second") =>
        Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const pkcs11 = yield* NodePkcs11.make({ modulePath })
          assert.isAbove((yield* pkcs11.slots({ tokenPresent: false })).length, 0)
          if (name === "second") {
            seen.push(yield* status)
            yield* Deferred.succeed(bothHeld, undefined)
            yield* Deferred.await(releaseSecond)
          } else {
            yield* Deferred.await(bothHeld)
          }
        })))

      const first = holder("first")
      const second = holder("second")
      yield* Effect.promise(() => first)
      const afterFirst = yield* status
      yield* Deferred.succeed(releaseSecond, undefined)
      yield* Effect.promise(() => second)
      const after = yield* status

      assert.strictEqual(seen[0].references, 2)
      assert.strictEqual(seen[0].initializeCalls - before.initializeCalls, 1)
      assert.isTrue(afterFirst.loaded)
      assert.strictEqual(afterFirst.references, 1)
      assert.strictEqual(afterFirst.finalizeCalls, before.finalizeCalls)
      assert.isFalse(after.loaded)
      assert.strictEqual(after.finalizeCalls - before.finalizeCalls, 1)

      // Really finalized: a fresh C_Initialize now succeeds instead of CKR_CRYPTOKI_ALREADY_INITIALIZED.
      const raw = new pkcs11js.PKCS11()
      raw.load(modulePath)
      assert.isTrue(rawInitialize(raw))
      raw.C_Finalize()
      raw.close()
    }))

  it.effect("a second spelling of the same file shares the initialization", () =>
    Effect.scoped(Effect.gen(function*() {
      const link = Path.join(directory, "libsofthsm2-link.so")
      if (!Fs.existsSync(link)) Fs.symlinkSync(modulePath, link)
      const a = yield* NodePkcs11.make({ modulePath })
      const b = yield* NodePkcs11.make({ modulePath: link })
      assert.strictEqual(a.moduleId, b.moduleId)
      assert.strictEqual((yield* status).references, 2)
    })))

  it.effect("adopts a library something else initialized, and never finalizes it", () =>
    Effect.gen(function*() {
      const raw = new pkcs11js.PKCS11()
      raw.load(modulePath)
      assert.isTrue(rawInitialize(raw))
      const before = yield* status
      yield* Effect.scoped(Effect.gen(function*() {
        const pkcs11 = yield* NodePkcs11.make({ modulePath })
        assert.isTrue((yield* status).adopted)
        yield* pkcs11.info
      }))
      const after = yield* status
      assert.isFalse(after.loaded)
      assert.strictEqual(after.finalizeCalls, before.finalizeCalls)
      // The other owner's initialization is intact.
      assert.isAbove(raw.C_GetSlotList(false).length, 0)
      raw.C_Finalize()
      raw.close()
    }))

  it.effect("a library whose C_Initialize fails is ModuleLoadFailed with the return value", () =>
    Effect.gen(function*() {
      const saved = process.env.SOFTHSM2_CONF
      process.env.SOFTHSM2_CONF = Path.join(directory, "missing.conf")
      const error = yield* Effect.flip(Effect.scoped(NodePkcs11.make({ modulePath }))).pipe(
        Effect.ensuring(Effect.sync(() => (process.env.SOFTHSM2_CONF = saved)))
      )
      assert.strictEqual(error._tag, "ModuleLoadFailed")
      assert.include(error.reason, "C_Initialize failed")
      assert.strictEqual(error.code, 5)
      // SoftHSM2 says only CKR_GENERAL_ERROR: the message names the configuration to check.
      assert.include(error.message, `SOFTHSM2_CONF is "${Path.join(directory, "missing.conf")}"`)
      assert.include(error.message, "directories.tokendir")
      assert.isFalse((yield* status).loaded)
    }))

  it.effect("a token SoftHSM2 does not show is TokenNotFound naming SOFTHSM2_CONF", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(
        Effect.flatMap(
          NodePkcs11.make({ modulePath }),
          (pkcs11) => Effect.provideService(SessionPool.make({ tokenLabel: "made-elsewhere" }), Pkcs11.Pkcs11, pkcs11)
        )
      ))
      assert.strictEqual(error._tag, "TokenNotFound")
      assert.include(error.message, "No token with label \"made-elsewhere\"; present: no initialized token")
      assert.include(error.message, "set SOFTHSM2_CONF to the configuration the token was made under")
    }))

  it.live("closing waits for a native call in flight, bounded; past the bound it finalizes when the call settles", () =>
    Effect.gen(function*() {
      const { CKM } = Constants
      const signing = (closeTimeout: Duration.DurationInput) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const pkcs11 = yield* Scope.extend(NodePkcs11.make({ modulePath, closeTimeout }), scope)
          const slots = yield* pkcs11.slots()
          const infos = yield* Effect.forEach(slots, (s) => pkcs11.tokenInfo(s))
          const free = infos.find((info) => !info.initialized)!.slotId
          yield* pkcs11.initToken(free, { soPin: Redacted.make("inflight-so"), label: `inflight-${free}` })
          const label = `inflight-${free}`
          const again = yield* Effect.forEach(yield* pkcs11.slots(), (s) => pkcs11.tokenInfo(s))
          const tokenSlot = again.find((info) => info.label === label)!.slotId
          // Generating RSA-4096 takes SoftHSM2 from a tenth of a second to seconds on the threadpool: four of
          // them are in flight when the scope that loaded the library closes.
          const inFlight = yield* Effect.fork(Effect.all(
            Array.from({ length: 4 }, () =>
              Effect.flatMap(pkcs11.openSession(tokenSlot, { rw: true }), (session) =>
                pkcs11.generateKeyPair(session, { type: CKM.RSA_PKCS_KEY_PAIR_GEN }, {
                  publicKey: { modulusBits: 4096, token: false },
                  privateKey: { sign: true, token: false, private: false }
                }))),
            { concurrency: "unbounded" }
          ))
          yield* Effect.sleep("20 millis")
          assert.strictEqual((yield* status).inFlight, 4)
          yield* Scope.close(scope, Exit.void)
          const afterClose = yield* status
          const pairs = yield* Fiber.join(inFlight)
          return { afterClose, pairs, afterSettle: yield* status }
        })
      const waited = yield* signing("10 seconds")
      assert.isFalse(waited.afterClose.loaded, "the close waited for the call, then finalized")
      assert.strictEqual(waited.pairs.length, 4, "every call in flight completed")
      const bounded = yield* signing("1 millis")
      assert.isTrue(bounded.afterClose.loaded, "past the bound, the library stays while calls run")
      assert.isAbove(bounded.afterClose.inFlight, 0)
      assert.strictEqual(bounded.pairs.length, 4)
      assert.isFalse(bounded.afterSettle.loaded, "finalized when the call settled")
    }))

  it.effect("the service works through its layer and releases with the scope", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(NodePkcs11.layer({ modulePath }), scope)
      const pkcs11 = Context.get(context, Pkcs11.Pkcs11)
      assert.strictEqual((yield* pkcs11.info).manufacturerId, "SoftHSM")
      assert.isTrue((yield* status).loaded)
      yield* Scope.close(scope, Exit.void)
      assert.isFalse((yield* status).loaded)
    }))
})

describe("NodePkcs11 load failures", () => {
  it.effect("a missing file is ModuleLoadFailed naming the path", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(NodePkcs11.make({ modulePath: "/nonexistent/libpkcs11.so" })))
      assert.strictEqual(error._tag, "ModuleLoadFailed")
      assert.strictEqual(error.path, "/nonexistent/libpkcs11.so")
      assert.include(error.message, "/nonexistent/libpkcs11.so")
    }))

  it.effect("a file that is not a shared library is ModuleLoadFailed", () =>
    Effect.gen(function*() {
      const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "hsmkey-notlib-")), "not-a-library.so")
      Fs.writeFileSync(file, "plain text")
      const error = yield* Effect.flip(Effect.scoped(NodePkcs11.make({ modulePath: file })))
      assert.strictEqual(error._tag, "ModuleLoadFailed")
      assert.include(error.reason, "not a loadable PKCS#11 library")
    }))

  it.effect("a shared library without C_GetFunctionList is ModuleLoadFailed", () =>
    Effect.gen(function*() {
      // pkcs11js's own addon is a shared object, but no PKCS#11 module.
      const addon = Path.join(
        Path.dirname(createRequire(import.meta.url).resolve("pkcs11js")),
        "build/Release/pkcs11.node"
      )
      const error = yield* Effect.flip(Effect.scoped(NodePkcs11.make({ modulePath: addon })))
      assert.strictEqual(error._tag, "ModuleLoadFailed")
      assert.include(error.reason, "C_GetFunctionList")
    }))
})
