import { assert, describe, it } from "@effect/vitest"
import { NodePkcs11 } from "@hsmkey/node"
import { Constants, Pkcs11 } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { softHsmAvailable, softHsmModule, writeSoftHsmConfig } from "../../../test/support/softhsm.js"

const { CKO } = Constants

const tokenSlot = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const token = yield* SoftHsm.Token
  for (const slot of yield* pkcs11.slots()) {
    if ((yield* pkcs11.tokenInfo(slot)).serialNumber === token.serialNumber) return slot
  }
  return yield* Effect.dieMessage("token not found")
})

const labels = Effect.gen(function*() {
  const pkcs11 = yield* Pkcs11.Pkcs11
  const slots = yield* pkcs11.slots()
  return yield* Effect.forEach(slots, (slot) => Effect.map(pkcs11.tokenInfo(slot), (info) => info.label))
})

describe.skipIf(!softHsmAvailable)("SoftHsm.layer", () => {
  it.effect("provisions an initialized token whose user and SO PINs work", () =>
    Effect.scoped(Effect.gen(function*() {
      const pkcs11 = yield* Pkcs11.Pkcs11
      const token = yield* SoftHsm.Token
      const slot = yield* tokenSlot
      const info = yield* pkcs11.tokenInfo(slot)
      assert.strictEqual(info.label, "provisioned")
      assert.strictEqual(token.label, "provisioned")
      assert.match(token.serialNumber, /^[0-9a-f]{16}$/)
      assert.isTrue(info.initialized && info.userPinInitialized)
      assert.strictEqual(Redacted.value(token.userPin), "user-pin-1")
      assert.strictEqual(token.modulePath, Fs.realpathSync(softHsmModule!))
      assert.isTrue(Fs.existsSync(token.configPath))
      assert.strictEqual(token.env.SOFTHSM2_CONF, token.configPath)

      const session = yield* Effect.acquireRelease(
        pkcs11.openSession(slot, { rw: true }),
        (s) => Effect.ignore(pkcs11.closeSession(s))
      )
      assert.strictEqual(yield* pkcs11.login(session, token.userPin), "logged-in")
      yield* pkcs11.logout(session)
      assert.strictEqual(yield* pkcs11.login(session, token.soPin, "so"), "logged-in")
    })).pipe(
      Effect.provide(
        SoftHsm.layer({
          tokenLabel: "provisioned",
          userPin: Redacted.make("user-pin-1"),
          soPin: Redacted.make("so-pin-1")
        })
      )
    ))

  it.effect("defaults to a unique label and random PINs", () =>
    Effect.gen(function*() {
      const token = yield* SoftHsm.Token
      assert.match(token.label, /^hsmkey-[0-9a-f]{8}$/)
      assert.isAtLeast(Redacted.value(token.userPin).length, 16)
      assert.notStrictEqual(Redacted.value(token.userPin), Redacted.value(token.soPin))
      assert.notInclude(JSON.stringify(token), Redacted.value(token.userPin))
    }).pipe(Effect.provide(SoftHsm.layer())))

  it.live("layers built at once each get their own token; the directory goes with the last one", () =>
    Effect.gen(function*() {
      const layers = ["one", "two", "three"].map((tokenLabel) => SoftHsm.layer({ tokenLabel }))
      const seen = yield* Effect.forEach(
        layers,
        (layer) =>
          Effect.gen(function*() {
            const token = yield* SoftHsm.Token
            yield* Effect.sleep("20 millis")
            return { token, labels: yield* labels }
          }).pipe(Effect.provide(layer)),
        { concurrency: "unbounded" }
      )
      const serials = new Set(seen.map((s) => s.token.serialNumber))
      assert.strictEqual(serials.size, 3)
      assert.deepStrictEqual(seen.map((s) => s.token.label), ["one", "two", "three"])
      assert.strictEqual(new Set(seen.map((s) => s.token.configPath)).size, 1)
      for (const s of seen) assert.includeMembers(s.labels, [s.token.label])
      assert.isFalse(Fs.existsSync(Path.dirname(seen[0].token.configPath)))
      assert.isFalse((yield* NodePkcs11.moduleStatus(softHsmModule!)).loaded)
    }))

  it.live("a closed layer's token is wiped while another layer lives on", () =>
    Effect.gen(function*() {
      const outer = yield* SoftHsm.Token
      const inner = yield* Effect.gen(function*() {
        const pkcs11 = yield* Pkcs11.Pkcs11
        const token = yield* SoftHsm.Token
        const slot = yield* tokenSlot
        const session = yield* pkcs11.openSession(slot, { rw: true })
        yield* pkcs11.login(session, token.userPin)
        yield* pkcs11.createObject(session, { class: CKO.DATA, token: true, private: true, label: "left behind" })
        // The session stays open: the layer closes what its users leave.
        return { token, slot }
      }).pipe(Effect.provide(SoftHsm.layer({ tokenLabel: "inner" })))
      const pkcs11 = yield* Pkcs11.Pkcs11
      const info = yield* pkcs11.tokenInfo(inner.slot)
      assert.strictEqual(info.label, "hsmkey-released")
      assert.isFalse(info.userPinInitialized)
      assert.strictEqual(inner.token.configPath, outer.configPath)
      assert.isTrue(Fs.existsSync(outer.configPath))
      assert.notInclude(yield* labels, "inner")
    }).pipe(Effect.provide(SoftHsm.layer({ tokenLabel: "outer" }))))

  it.effect("restores SOFTHSM2_CONF after initializing the module", () =>
    Effect.gen(function*() {
      const before = process.env.SOFTHSM2_CONF
      const token = yield* Effect.provide(SoftHsm.Token, SoftHsm.layer())
      assert.strictEqual(process.env.SOFTHSM2_CONF, before)
      assert.notStrictEqual(token.configPath, before)
    }))

  it.effect("refuses bad options with InvalidOptions and a live label with LabelInUse", () =>
    Effect.gen(function*() {
      const short = yield* Effect.flip(Effect.provide(SoftHsm.Token, SoftHsm.layer({ userPin: Redacted.make("123") })))
      assert.strictEqual(short.reason, "InvalidOptions")
      assert.notInclude(short.message, "123\"")
      const long = yield* Effect.flip(Effect.provide(SoftHsm.Token, SoftHsm.layer({ tokenLabel: "x".repeat(33) })))
      assert.strictEqual(long.reason, "InvalidOptions")
      const taken = yield* Effect.flip(
        Effect.provide(
          Effect.provide(SoftHsm.Token, SoftHsm.layer({ tokenLabel: "taken" })),
          SoftHsm.layer({ tokenLabel: "taken" })
        )
      )
      assert.strictEqual(taken.reason, "LabelInUse")
    }))

  it.effect("keeps every throwaway token of the process in one SoftHSM2 library", () =>
    Effect.gen(function*() {
      const copy = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "hsmkey-copy-")), "libsofthsm2.so")
      Fs.copyFileSync(softHsmModule!, copy)
      const error = yield* Effect.flip(Effect.provide(SoftHsm.Token, SoftHsm.layer({ modulePath: copy })))
      assert.strictEqual(error.reason, "InvalidOptions")
      assert.include(error.message, Fs.realpathSync(softHsmModule!))
    }).pipe(Effect.provide(SoftHsm.layer())))

  it.effect("refuses to start when SoftHSM2 was initialized without it", () =>
    Effect.gen(function*() {
      const { config } = writeSoftHsmConfig("hsmkey-foreign-")
      const saved = process.env.SOFTHSM2_CONF
      process.env.SOFTHSM2_CONF = config
      const error = yield* Effect.scoped(Effect.gen(function*() {
        yield* NodePkcs11.make({ modulePath: softHsmModule! })
        return yield* Effect.flip(Effect.provide(SoftHsm.Token, SoftHsm.layer()))
      })).pipe(Effect.ensuring(Effect.sync(() => (process.env.SOFTHSM2_CONF = saved))))
      assert.strictEqual(error.reason, "AlreadyInitialized")
      assert.include(error.message, "before SoftHsm.layer")
    }))
})

describe("SoftHsm.layer without SoftHSM2", () => {
  it.effect("says how to install it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.provide(SoftHsm.Token, SoftHsm.layer({ modulePath: "/nonexistent/libsofthsm2.so" }))
      )
      assert.strictEqual(error._tag, "SoftHsmError")
      assert.strictEqual(error.reason, "NotInstalled")
      assert.include(error.message, "apt-get install softhsm2")
      assert.include(error.message, "/nonexistent/libsofthsm2.so")
    }))
})
