/**
 * The DER hsmkey writes itself: ECDSA signatures from JOSE's r ‖ s, with X.690's minimal INTEGERs (a
 * leading 00 only before a set top bit, none left over from a short r or s), checked against node:crypto.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Crypto from "node:crypto"
import * as Der from "../src/internal/der.js"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

describe("Der.ecdsaSignature", () => {
  it("writes minimal INTEGERs at the edges", () => {
    const half = (first: ReadonlyArray<number>) => [...first, ...Array<number>(32 - first.length).fill(1)]
    const cases: ReadonlyArray<readonly [ReadonlyArray<number>, string]> = [
      // Top bit set: a 00 before it, 33 bytes.
      [half([0x80]), `022100${"80"}${"01".repeat(31)}`],
      // Leading zero bytes go, down to the first byte that keeps the value positive.
      [half([0x00, 0x00, 0x7f]), `021e7f${"01".repeat(29)}`],
      [half([0x00, 0x80]), `02200080${"01".repeat(30)}`],
      // Zero is one 00 byte.
      [Array<number>(32).fill(0), "020100"]
    ]
    for (const [r, integer] of cases) {
      const s = half([0x01])
      const der = Der.ecdsaSignature(Uint8Array.from([...r, ...s]))
      const sInteger = `0220${hex(Uint8Array.from(s))}`
      const body = integer + sInteger
      assert.strictEqual(hex(der), `30${(body.length / 2).toString(16).padStart(2, "0")}${body}`)
    }
  })

  it("uses the long length form past 127 bytes (P-521)", () => {
    const der = Der.ecdsaSignature(new Uint8Array(132).fill(0xff))
    // Two INTEGERs of 00 + 66 bytes: 2 × 69 = 138 content bytes.
    assert.strictEqual(hex(der.subarray(0, 3)), "30818a")
  })

  // A short r or s (a leading 00 byte) comes once in 128 signatures or so: P-256 runs enough to meet it often.
  const runs = [["P-256", "sha256", 4000], ["P-384", "sha384", 300], ["P-521", "sha512", 150]] as const
  for (const [curve, hash, count] of runs) {
    it(`${curve}: node:crypto verifies as DER what it signed as r ‖ s, ${count} times`, () => {
      const { privateKey, publicKey } = Crypto.generateKeyPairSync("ec", { namedCurve: curve })
      for (let i = 0; i < count; i++) {
        const data = Buffer.from(`message ${i}`)
        const raw = Crypto.sign(hash, data, { key: privateKey, dsaEncoding: "ieee-p1363" })
        const der = Der.ecdsaSignature(new Uint8Array(raw))
        assert.isTrue(Crypto.verify(hash, data, { key: publicKey, dsaEncoding: "der" }, der), `signature ${i}`)
      }
    })
  }
})
