/**
 * The built `hsmkey` binary at a terminal (a pseudo-terminal from python3's pty): the PIN prompt echoes
 * nothing, a new PIN is asked twice, `keys destroy` asks first, progress is drawn on stderr, and Ctrl-C
 * ends a command cleanly. No output holds a PIN.
 */
import { assert, describe, layer } from "@effect/vitest"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect, Redacted } from "effect"
import { afterAll, beforeAll } from "vitest"
import { softHsmAvailable } from "../../../test/support/softhsm.js"
import { build, hsmkey, hsmkeyOnTty, outputs, ptyAvailable, type PtyStep } from "./support/hsmkey.js"

const USER_PIN = "tty-user-0f5e8a21"
const SO_PIN = "tty-so-6d2c7b90"
const NEW_PIN = "tty-new-4a1f93ce"

beforeAll(build, 180_000)

afterAll(() => {
  const all = outputs.join("\n")
  for (const secret of [USER_PIN, SO_PIN, NEW_PIN]) {
    if (all.includes(secret)) throw new Error("a PIN appears in the output of a command")
  }
})

const envOf = (token: SoftHsm.Token.Info, extra: Record<string, string | undefined>) => ({
  SOFTHSM2_CONF: token.env.SOFTHSM2_CONF,
  HSM_MODULE: token.modulePath,
  HSM_TOKEN: token.label,
  ...extra
})

const onTty = (
  args: ReadonlyArray<string>,
  steps: ReadonlyArray<PtyStep>,
  extra: Record<string, string | undefined> = {}
) => Effect.flatMap(SoftHsm.Token, (token) => hsmkeyOnTty(args, { env: envOf(token, extra), steps }))

const piped = (args: ReadonlyArray<string>, extra: Record<string, string | undefined> = {}) =>
  Effect.flatMap(SoftHsm.Token, (token) => hsmkey(args, { env: envOf(token, { HSM_PIN: USER_PIN, ...extra }) }))

const TIMEOUT = 180_000

const terminal = ptyAvailable()
if (!terminal) {
  const why = "python3's pty module is not available"
  if (process.env.CI) throw new Error(`${why}: the terminal tests may not skip under CI`)
  console.warn(`Skipping the terminal tests: ${why}`)
}

describe.skipIf(!softHsmAvailable || !terminal)("hsmkey at a terminal", () => {
  layer(SoftHsm.layer({ tokenLabel: "cli-tty", userPin: Redacted.make(USER_PIN), soPin: Redacted.make(SO_PIN) }))(
    "SoftHSM2",
    (it) => {
      it.effect("asks for the PIN with a prompt that echoes nothing, and succeeds", () =>
        Effect.gen(function*() {
          const result = yield* onTty(
            ["keys", "generate", "--type", "P-256", "--label", "tty-key"],
            [{ expect: "User PIN of token \"cli-tty\"", send: `${USER_PIN}\r`, hidden: true }]
          )
          assert.deepStrictEqual(result.unanswered, [])
          assert.deepStrictEqual(result.echoOff, [true])
          assert.strictEqual(result.code, 0, result.output)
          assert.include(result.output, "generated \"tty-key\" P-256")
          assert.notInclude(result.output, USER_PIN)
          assert.notInclude(result.output, "*".repeat(USER_PIN.length))
        }), TIMEOUT)

      it.effect("shows progress on a terminal, replaced in place, and none without one", () =>
        Effect.gen(function*() {
          const result = yield* onTty(["keys", "generate", "--type", "RSA-2048", "--label", "tty-rsa"], [], {
            HSM_PIN: USER_PIN
          })
          assert.strictEqual(result.code, 0, result.output)
          assert.include(result.output, "generating RSA-2048 key \"tty-rsa\" in the token…")
          // Drawn with a carriage return and erased, not left as lines.
          assert.include(result.output, "\r\x1b[2K")
          const plain = yield* piped(["keys", "generate", "--type", "RSA-2048", "--label", "piped-rsa"])
          assert.strictEqual(plain.code, 0)
          assert.strictEqual(plain.stderr, "")
          assert.notInclude(plain.stdout, "generating")
        }), TIMEOUT)

      it.effect("keys destroy asks on a terminal: no keeps the key, yes destroys it", () =>
        Effect.gen(function*() {
          const kept = yield* onTty(["keys", "destroy", "--label", "tty-key"], [{ expect: "Destroy", send: "n" }], {
            HSM_PIN: USER_PIN
          })
          assert.strictEqual(kept.code, 0, kept.output)
          assert.include(kept.output, "This cannot be undone")
          assert.include(kept.output, "nothing destroyed")
          assert.strictEqual((yield* piped(["keys", "export", "--label", "tty-key"])).code, 0)
          const destroyed = yield* onTty(
            ["keys", "destroy", "--label", "tty-key"],
            [{ expect: "Destroy", send: "y" }],
            {
              HSM_PIN: USER_PIN
            }
          )
          assert.strictEqual(destroyed.code, 0, destroyed.output)
          assert.include(destroyed.output, "destroyed \"tty-key\"")
          assert.strictEqual((yield* piped(["keys", "export", "--label", "tty-key"])).code, 5)
        }), TIMEOUT)

      it.effect("pin change asks for the current PIN and the new one twice, none echoed", () =>
        Effect.gen(function*() {
          const mismatch = yield* onTty(["pin", "change"], [
            { expect: "User PIN of token", send: `${USER_PIN}\r`, hidden: true },
            { expect: "New user PIN", send: `${NEW_PIN}\r`, hidden: true },
            { expect: "Repeat the new user PIN", send: `${NEW_PIN}x\r`, hidden: true }
          ])
          assert.strictEqual(mismatch.code, 4, mismatch.output)
          assert.include(mismatch.output, "the two new user PINs differ; nothing was changed")
          assert.strictEqual((yield* piped(["keys", "list"])).code, 0)

          const changed = yield* onTty(["pin", "change"], [
            { expect: "User PIN of token", send: `${USER_PIN}\r`, hidden: true },
            { expect: "New user PIN", send: `${NEW_PIN}\r`, hidden: true },
            { expect: "Repeat the new user PIN", send: `${NEW_PIN}\r`, hidden: true }
          ])
          assert.deepStrictEqual(changed.echoOff, [true, true, true])
          assert.strictEqual(changed.code, 0, changed.output)
          assert.include(changed.output, "changed the user PIN of token \"cli-tty\"")
          assert.strictEqual((yield* piped(["keys", "list"], { HSM_PIN: NEW_PIN })).code, 0)
          const back = yield* piped(["pin", "change"], { HSM_PIN: NEW_PIN, HSM_NEW_PIN: USER_PIN })
          assert.strictEqual(back.code, 0, back.stderr)
        }), TIMEOUT)

      it.effect(
        "Ctrl-C at the PIN prompt cancels; Ctrl-C during a key generation interrupts it cleanly",
        () =>
          Effect.gen(function*() {
            const cancelled = yield* onTty(["keys", "list"], [{ expect: "User PIN", send: "\x03", hidden: true }])
            assert.strictEqual(cancelled.code, 130, cancelled.output)
            assert.include(cancelled.output, "hsmkey: cancelled")

            // A key generation can finish before Ctrl-C arrives: try until one is interrupted.
            let interrupted = { code: 0, output: "" }
            for (let attempt = 0; attempt < 5 && interrupted.code === 0; attempt++) {
              interrupted = yield* onTty(
                ["keys", "generate", "--type", "RSA-4096", "--label", `tty-interrupted-${attempt}`],
                [{ expect: "generating RSA-4096", send: "\x03" }],
                { HSM_PIN: USER_PIN }
              )
            }
            assert.strictEqual(interrupted.code, 130, interrupted.output)
            assert.include(interrupted.output, "hsmkey: interrupted; sessions closed")
            assert.notMatch(interrupted.output, /\n\s+at /)
            // The key made under the interruption was destroyed again, and the token serves the next command.
            const listed = yield* piped(["keys", "list", "--json"])
            assert.strictEqual(listed.code, 0, listed.stderr)
            const labels = (JSON.parse(listed.stdout) as ReadonlyArray<{ readonly label: string }>).map((key) =>
              key.label
            )
            const attempt = /tty-interrupted-(\d)/.exec(interrupted.output)![1]
            assert.notInclude(labels, `tty-interrupted-${attempt}`)
          }),
        TIMEOUT
      )
    }
  )
})
