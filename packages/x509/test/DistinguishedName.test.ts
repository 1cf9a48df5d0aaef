/**
 * Properties of subject parsing: any name X.509 can carry survives `format` then `parse`, in every input
 * form; any text at all is a name or an `InvalidSubject` with a position inside it, never a defect; and
 * what OpenSSL reads from a request signed in the token is what `format` wrote.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { MemoryPkcs11 } from "@hsmkey/pkcs11"
import { Csr, DistinguishedName } from "@hsmkey/x509"
import { Effect, Either, FastCheck as fc, Layer, ManagedRuntime, Redacted } from "effect"
import { HsmJwk, SessionPool } from "hsmkey"
import { inspectRequest } from "./support/openssl.js"

// Characters RFC 4514 escapes or treats specially, drawn often so that every escape rule is exercised.
const special = fc.constantFrom(" ", "#", ",", "+", "\"", "\\", "<", ">", ";", "=")
const unicode = fc.string({ unit: "binary", minLength: 1, maxLength: 3 }).filter((s) => !/\p{Cc}/u.test(s))

const text = (maxLength: number) =>
  fc.array(fc.oneof(special, fc.string({ minLength: 1, maxLength: 3 }), unicode), { minLength: 1, maxLength: 8 })
    .map((parts) => [...parts.join("")].slice(0, maxLength).join(""))
    .filter((s) => s.length > 0 && !/\p{Cc}/u.test(s))

const printable = fc.array(
  fc.constantFrom(..."ABCXYZabcxyz0189 '()+,-./:=?"),
  { minLength: 1, maxLength: 16 }
).map((chars) => chars.join(""))

const ascii = fc.array(fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), {
  minLength: 1,
  maxLength: 16
}).map((chars) => chars.join(""))

const dnsLabel = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/)

const attribute = (withUnnamed: boolean) =>
  fc.oneof(
    ...["CN", "O", "OU", "L", "ST", "title", "GN", "SN", "UID", "pseudonym"].map((type) =>
      text(64).map((value) => ({ type, value }))
    ),
    printable.map((value) => ({ type: "serialNumber", value })),
    fc.stringMatching(/^[A-Z]{2}$/).map((value) => ({ type: "C", value })),
    dnsLabel.map((value) => ({ type: "DC", value })),
    ascii.map((value) => ({ type: "emailAddress", value })),
    ...(withUnnamed
      ? [
        text(32).map((value) => ({ type: "STREET", value })),
        text(32).map((value) => ({ type: "1.3.6.1.4.1.55555.7", value }))
      ]
      : [])
  )

const names = (withUnnamed: boolean, maxRdn: number) =>
  fc.array(fc.array(attribute(withUnnamed), { minLength: 1, maxLength: maxRdn }), { minLength: 1, maxLength: 5 })

const parsed = (input: DistinguishedName.Input): DistinguishedName.DistinguishedName =>
  Either.getOrThrowWith(DistinguishedName.parseEither(input), (error) => new Error(error.message))

describe("DistinguishedName", () => {
  it("format then parse gives the name back, from text, attributes and records alike", () =>
    fc.assert(
      fc.property(names(true, 3), (rdns) => {
        const name = parsed(rdns)
        const formatted = DistinguishedName.format(name)
        assert.deepStrictEqual(parsed(formatted), name, formatted)
        assert.strictEqual(DistinguishedName.format(parsed(formatted)), formatted)
        const singles = rdns.map((rdn) => rdn[0]!)
        const record: Record<string, Array<string>> = {}
        for (const { type, value } of singles) (record[type] ??= []).push(value)
        const grouped = Object.entries(record).flatMap(([type, values]) => values.map((value) => [{ type, value }]))
        assert.deepStrictEqual(parsed(record), parsed(grouped))
      }),
      { numRuns: 1000 }
    ))

  it("any text is a name or an InvalidSubject at a position inside it, never a defect", () =>
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 40 }),
          fc.string({ unit: "binary", maxLength: 40 }),
          fc.array(fc.oneof(special, fc.constantFrom("CN=", "O=", "\\", "\\2", "\\C3", "#", "1.2.3="), fc.string()))
            .map((parts) => parts.join(""))
        ),
        (input) => {
          const result = DistinguishedName.parseEither(input)
          if (Either.isRight(result)) {
            assert.deepStrictEqual(parsed(DistinguishedName.format(result.right)), result.right)
          } else {
            assert.strictEqual(result.left._tag, "InvalidSubject")
            const position = result.left.position
            if (position !== undefined) assert.isTrue(position >= 0 && position <= input.length, `${position}`)
          }
        }
      ),
      { numRuns: 2000 }
    ))

  it("RFC 2253 spacing is accepted, and an escaped space is kept", () => {
    assert.strictEqual(
      DistinguishedName.format(parsed("cn = api.example.com , o=Example,  c=DE")),
      "CN=api.example.com,O=Example,C=DE"
    )
    assert.deepStrictEqual(parsed("CN=\\ a\\ ")[0]![0]!.value, " a ")
    assert.deepStrictEqual(parsed("CN=\\C3\\A9t\\C3\\A9")[0]![0]!.value, "été")
    assert.deepStrictEqual(parsed("1.3.6.1.4.1.55555.7=x")[0]![0], {
      type: "1.3.6.1.4.1.55555.7",
      oid: "1.3.6.1.4.1.55555.7",
      value: "x"
    })
    assert.deepStrictEqual(parsed("2.5.4.3=x")[0]![0], { type: "CN", oid: "2.5.4.3", value: "x" })
    for (const lone of ["CN=a\uD800", "CN=\uDC00b", "CN=a\uD800,O=b"]) {
      const error = DistinguishedName.parseEither(lone)
      assert.isTrue(Either.isLeft(error) && error.left.detail.includes("well-formed"), lone)
    }
    const structured = DistinguishedName.parseEither({ CN: "a\uD800" })
    assert.isTrue(Either.isLeft(structured) && structured.left.detail.includes("well-formed"))
  })
})

/**
 * OpenSSL 3.0 leaves the value "#" unescaped (for a one-character value its rule for the last character
 * replaces the one for the first, which escapes a leading #); RFC 4514 §2.4 escapes it, as `format` does.
 */
const openSslSpelling = (subject: string): string => subject.replace(/=\\#(?=$|[,+])/g, "=#")

describe("DistinguishedName in a request signed in the token", () => {
  const userPin = Redacted.make("x509-property-pin")
  const runtime = ManagedRuntime.make(
    SessionPool.layer({ tokenLabel: "x509-prop", userPin }).pipe(
      Layer.provideMerge(MemoryPkcs11.layer({ tokens: [{ label: "x509-prop", userPin }] }))
    )
  )
  afterAll(() => runtime.dispose())

  it("openssl req -subject -nameopt RFC2253 reads back what format wrote", async () => {
    const key = await runtime.runPromise(HsmJwk.generate({ type: "Ed25519", label: "prop" }))
    await fc.assert(
      fc.asyncProperty(names(false, 1), (rdns) =>
        runtime.runPromise(Effect.gen(function*() {
          const csr = yield* Csr.create({ key, subject: rdns })
          const seen = yield* inspectRequest(csr.pem)
          assert.isTrue(seen.verified, seen.verifyOutput)
          assert.strictEqual(seen.subject, openSslSpelling(csr.subject))
        }))),
      { numRuns: 40 }
    )
  })
})
