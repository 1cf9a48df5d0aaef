/**
 * Csr.create as a CA sees its output: for every algorithm family, on the emulator and on SoftHSM2, the
 * request verifies with `openssl req -verify`, carries the key's public key, reads back the subject and
 * the subjectAltNames given; and every bad subject, subjectAltName, algorithm or option is a typed error
 * before the token is asked.
 */
import { assert, describe, layer } from "@effect/vitest"
import { MemoryPkcs11, Pkcs11 } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { Csr, type DistinguishedName } from "@hsmkey/x509"
import { CertificationRequest } from "@peculiar/asn1-csr"
import { AsnConvert } from "@peculiar/asn1-schema"
import { Context, Effect, Layer, Redacted } from "effect"
import { HsmJwk, SessionPool } from "hsmkey"
import * as Crypto from "node:crypto"
import { softHsmAvailable } from "../../../test/support/softhsm.js"
import { observingTracer, type RecordedSpan } from "../../../test/support/tracing.js"
import { inspectRequest } from "./support/openssl.js"

const userPin = Redacted.make("x509-csr-pin")

const Emulated = SessionPool.layer({ tokenLabel: "x509", userPin }).pipe(
  Layer.provideMerge(MemoryPkcs11.layer({ tokens: [{ label: "x509", userPin }] }))
)

const SUBJECT = "CN=api.example.com,OU=Platform,O=Example\\, Inc.,L=München,C=DE"
const SANS = ["DNS:api.example.com", "DNS:*.api.example.com", "IP:192.0.2.7", "IP:2001:db8::1", "email:ops@example.com"]
const SANS_SHOWN =
  "DNS:api.example.com, DNS:*.api.example.com, IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:1, email:ops@example.com"

type Case = {
  readonly type: HsmJwk.GenerateType
  readonly alg: string
  /** How `openssl req -text` names the signature algorithm. */
  readonly shown: RegExp
}

const cases: ReadonlyArray<Case> = [
  { type: "RSA-2048", alg: "RS256", shown: /Signature Algorithm: sha256WithRSAEncryption/ },
  { type: "RSA-2048", alg: "RS384", shown: /Signature Algorithm: sha384WithRSAEncryption/ },
  { type: "RSA-2048", alg: "RS512", shown: /Signature Algorithm: sha512WithRSAEncryption/ },
  { type: "RSA-2048", alg: "PS256", shown: /rsassaPss[\s\S]*Hash Algorithm: sha256[\s\S]*mgf1 with sha256[\s\S]*0x20/ },
  { type: "RSA-2048", alg: "PS384", shown: /rsassaPss[\s\S]*Hash Algorithm: sha384[\s\S]*mgf1 with sha384[\s\S]*0x30/ },
  { type: "RSA-2048", alg: "PS512", shown: /rsassaPss[\s\S]*Hash Algorithm: sha512[\s\S]*mgf1 with sha512[\s\S]*0x40/ },
  { type: "P-256", alg: "ES256", shown: /Signature Algorithm: ecdsa-with-SHA256/ },
  { type: "P-384", alg: "ES384", shown: /Signature Algorithm: ecdsa-with-SHA384/ },
  { type: "P-521", alg: "ES512", shown: /Signature Algorithm: ecdsa-with-SHA512/ },
  { type: "Ed25519", alg: "EdDSA", shown: /Signature Algorithm: ED25519/ },
  { type: "Ed448", alg: "EdDSA", shown: /Signature Algorithm: ED448/ }
]

const suite = (name: string, backend: Layer.Layer<SessionPool.SessionPool, unknown>, skip: boolean) =>
  describe.skipIf(skip)(`Csr on ${name}`, () => {
    layer(backend, { timeout: "120 seconds" })((it) => {
      // One key per type: RSA generation is the slow part on SoftHSM2.
      const keys = new Map<string, HsmJwk.HsmJwk>()
      const keyOf = (type: HsmJwk.GenerateType) =>
        Effect.suspend(() => {
          const known = keys.get(type)
          return known !== undefined ? Effect.succeed(known) : HsmJwk.generate({ type, label: `csr-${type}` }).pipe(
            Effect.tap((key) => Effect.sync(() => keys.set(type, key)))
          )
        })

      for (const { alg, shown, type } of cases) {
        it.effect(`${alg} with a ${type} key: openssl verifies it, with the key, subject and SANs given`, () =>
          Effect.gen(function*() {
            const key = yield* keyOf(type)
            const csr = yield* Csr.create({ key, alg, subject: SUBJECT, subjectAltNames: SANS })
            assert.strictEqual(csr.alg, alg)
            assert.strictEqual(csr.kid, key.kid)
            assert.strictEqual(csr.subject, SUBJECT)
            assert.match(csr.pem, /^-----BEGIN CERTIFICATE REQUEST-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END/)
            assert.deepStrictEqual(
              new Uint8Array(Buffer.from(csr.pem.split("\n").slice(1, -2).join(""), "base64")),
              csr.der
            )
            const seen = yield* inspectRequest(csr.pem)
            assert.isTrue(seen.verified, seen.verifyOutput)
            assert.strictEqual(seen.publicKey, HsmJwk.toPem(key))
            assert.strictEqual(seen.subject, SUBJECT)
            assert.include(seen.text, SANS_SHOWN)
            assert.match(seen.text, shown)
            // DER: parsed and written again, the request is the same bytes.
            assert.deepStrictEqual(
              new Uint8Array(AsnConvert.serialize(AsnConvert.parse(csr.der, CertificationRequest))),
              csr.der
            )
            // With a subject, the subjectAltName extension is not critical.
            assert.notInclude(seen.text, "critical")
          }))
      }

      it.effect("the key's own algorithm is the default", () =>
        Effect.gen(function*() {
          const ec = yield* keyOf("P-384")
          assert.strictEqual((yield* Csr.create({ key: ec, subject: "CN=ec" })).alg, "ES384")
          const pss = yield* HsmJwk.withAlgorithm(yield* keyOf("RSA-2048"), "PS256")
          const csr = yield* Csr.create({ key: pss, subject: { CN: "pss", O: "Example" } })
          assert.strictEqual(csr.alg, "PS256")
          assert.strictEqual(csr.subject, "CN=pss,O=Example")
          const seen = yield* inspectRequest(csr.pem)
          assert.isTrue(seen.verified, seen.verifyOutput)
          assert.match(seen.text, /rsassaPss/)
        }))

      it.effect("an empty subject with subjectAltNames makes the extension critical (RFC 5280 §4.2.1.6)", () =>
        Effect.gen(function*() {
          const key = yield* keyOf("Ed25519")
          const csr = yield* Csr.create({ key, subject: "", subjectAltNames: ["DNS:only.example.com"] })
          assert.strictEqual(csr.subject, "")
          const seen = yield* inspectRequest(csr.pem)
          assert.isTrue(seen.verified, seen.verifyOutput)
          assert.match(seen.text, /Subject Alternative Name: critical\s+DNS:only\.example\.com/)
        }))

      it.effect("escapes, UTF-8 and a multi-valued RDN read back as RFC 4514 says", () =>
        Effect.gen(function*() {
          const key = yield* keyOf("P-256")
          const subject = "CN=a\\+b\\,c\\;d\\<e\\>f\\\"g\\\\h=i,O=\\ lead and trail\\ ,OU=\\#hash,L=Jürgen 🔑,C=DE"
          const csr = yield* Csr.create({ key, subject })
          assert.strictEqual(csr.subject, subject)
          const seen = yield* inspectRequest(csr.pem)
          assert.isTrue(seen.verified, seen.verifyOutput)
          assert.strictEqual(seen.subject, subject)

          const multi = yield* Csr.create({ key, subject: "CN=svc+UID=42,DC=example,DC=com" })
          const multiSeen = yield* inspectRequest(multi.pem)
          assert.isTrue(multiSeen.verified, multiSeen.verifyOutput)
          // A multi-valued RDN is a SET: the request has its members in DER order, which OpenSSL prints reversed.
          const [rdn, ...rest] = multiSeen.subject.split(",")
          assert.deepStrictEqual(rdn!.split("+").sort(), ["CN=svc", "UID=42"])
          assert.deepStrictEqual(rest, ["DC=example", "DC=com"])
          assert.deepStrictEqual(multi.subjectName[0]!.map((a) => a.type).sort(), ["CN", "UID"])
        }))

      it.effect("the structured forms make the request the text does", () =>
        Effect.gen(function*() {
          const key = yield* keyOf("P-256")
          const fromText = yield* Csr.create({ key, subject: "CN=api.example.com,O=Example,C=DE" })
          const fromArray = yield* Csr.create({
            key,
            subject: [{ type: "CN", value: "api.example.com" }, { type: "organizationName", value: "Example" }, {
              type: "c",
              value: "DE"
            }]
          })
          const fromRecord = yield* Csr.create({
            key,
            subject: { commonName: "api.example.com", O: "Example", C: "DE" }
          })
          for (const csr of [fromArray, fromRecord]) {
            assert.strictEqual(csr.subject, fromText.subject)
            assert.deepStrictEqual(csr.subjectName, fromText.subjectName)
            assert.strictEqual((yield* inspectRequest(csr.pem)).subject, "CN=api.example.com,O=Example,C=DE")
          }
        }))

      it.effect("a decryption key, or an algorithm that does not fit the key, is AlgorithmMismatch", () =>
        Effect.gen(function*() {
          const ec = yield* keyOf("P-256")
          for (const alg of ["ES384", "RS256", "PS256", "EdDSA", "HS256"]) {
            const error = yield* Effect.flip(Csr.create({ key: ec, alg, subject: "CN=x" }))
            assert.strictEqual(error._tag, "AlgorithmMismatch", alg)
          }
          const unknown = yield* Effect.flip(Csr.create({ key: ec, alg: "none", subject: "CN=x" }))
          assert.strictEqual(unknown._tag, "UnsupportedAlgorithm")
          const enc = yield* HsmJwk.generate({ type: "RSA-2048", label: "csr-enc", use: "enc" })
          const error = yield* Effect.flip(Csr.create({ key: enc, subject: "CN=x" }))
          assert.strictEqual(error._tag, "AlgorithmMismatch")
          if (error._tag === "AlgorithmMismatch") assert.strictEqual(error.use, "enc")
        }))

      it.effect("bad subjects are InvalidSubject, with where the text goes wrong", () =>
        Effect.gen(function*() {
          const key = yield* keyOf("P-256")
          const bad: ReadonlyArray<readonly [DistinguishedName.Input, string, number?]> = [
            ["CN=", "CN is empty", 3],
            ["CN=a,O=", "O is empty", 7],
            ["XX=foo", "unknown attribute type \"XX\"", 0],
            ["CN=a\\zz", "is no escape", 4],
            ["CN=a\\", "lone backslash", 4],
            ["CN=a;b", "must be escaped", 4],
            ["CN=a<b", "must be escaped", 4],
            ["CN=a,", "ends after", 4],
            ["CN=a,,O=b", "expected an attribute type", 5],
            ["=x", "expected an attribute type", 0],
            ["CN", "expected \"=\"", 2],
            ["C=Germany", "two-letter", 2],
            ["C=de", "two-letter", 2],
            [`CN=${"a".repeat(65)}`, "at most 64", 3],
            ["CN=#0403616263", "hex-encoded", 3],
            ["CN=\\C3", "not UTF-8", 3],
            ["CN=a\\00b", "control character", 3],
            ["CN=a\\0Ab", "control character", 3],
            ["serialNumber=a_b", "PrintableString", 13],
            ["emailAddress=jürgen@example.com", "ASCII", 13],
            ["DC=a.b", "one DNS label", 3],
            ["3.2=x", "unknown attribute type", 0],
            ["01.2.3=x", "unknown attribute type", 0],
            ["", "empty and no subjectAltNames"],
            ["   ", "empty and no subjectAltNames"],
            [{ CN: "" }, "CN is empty"],
            [{ XX: "a" }, "unknown attribute type"],
            [[{ type: "CN", value: "a" }, []], "RDN 1 has no attribute"],
            [[{ type: "CN" } as never], "RDN 0 is not { type: string, value: string }"],
            [{ CN: 42 } as never, "not a string"]
          ]
          for (const [subject, detail, position] of bad) {
            const error = yield* Effect.flip(Csr.create({ key, subject }))
            assert.strictEqual(error._tag, "InvalidSubject", JSON.stringify(subject))
            if (error._tag !== "InvalidSubject") continue
            assert.include(error.detail, detail, JSON.stringify(subject))
            assert.strictEqual(error.position, position, JSON.stringify(subject))
          }
        }))

      it.effect("bad subjectAltNames are InvalidSubjectAltName, naming the entry", () =>
        Effect.gen(function*() {
          const key = yield* keyOf("P-256")
          const bad: ReadonlyArray<readonly [unknown, string]> = [
            ["DNS:-bad-.example.com", "no DNS name"],
            ["DNS:exa mple.com", "no DNS name"],
            ["DNS:a.*.example.com", "no DNS name"],
            ["DNS:*", "no DNS name"],
            ["DNS:bücher.example", "xn--bcher-kva.example"],
            ["DNS:", "empty"],
            ["IP:300.1.1.1", "no IPv4 or IPv6"],
            ["IP:fe80::1%eth0", "no IPv4 or IPv6"],
            ["IP:api.example.com", "no IPv4 or IPv6"],
            ["email:nobody", "no email address"],
            ["email:a@-x-", "no DNS name"],
            ["URI:not a uri", "not an ASCII URI"],
            ["URI:relative/path", "no absolute URI"],
            ["FOO:bar", "no prefix"],
            ["api.example.com", "no prefix"],
            [{ type: "rid", value: "1.2.3" }, "must be one of dns, ip, email, uri"],
            [{ type: "dns", value: 7 }, "not text"],
            [42, "not a number"]
          ]
          for (const [entry, detail] of bad) {
            const error = yield* Effect.flip(
              Csr.create({ key, subject: "CN=x", subjectAltNames: ["DNS:ok.example.com", entry as never] })
            )
            assert.strictEqual(error._tag, "InvalidSubjectAltName", JSON.stringify(entry))
            if (error._tag !== "InvalidSubjectAltName") continue
            assert.strictEqual(error.index, 1)
            assert.include(error.detail, detail, JSON.stringify(entry))
          }
        }))

      it.effect("options that are not what create takes are InvalidOptions", () =>
        Effect.gen(function*() {
          const key = yield* keyOf("P-256")
          const bad: ReadonlyArray<readonly [unknown, string]> = [
            [null, "expected an object"],
            [{ subject: "CN=x" }, "key must be an HsmJwk"],
            [{ key: { ...key }, subject: "CN=x" }, "key must be an HsmJwk"],
            [{ key: Crypto.generateKeyPairSync("ed25519").publicKey, subject: "CN=x" }, "key must be an HsmJwk"],
            [{ key }, "subject must be"],
            [{ key, subject: 42 }, "subject must be"],
            [{ key, subject: "CN=x", alg: 256 }, "alg must be"],
            [{ key, subject: "CN=x", subjectAltNames: "DNS:x" }, "subjectAltNames must be an array"],
            [{ key, subject: "CN=x", subjectAltName: ["DNS:x"] }, "unknown \"subjectAltName\""]
          ]
          const throwing = {
            key,
            get subject(): string {
              throw new TypeError("the secret 1234 is in this message")
            }
          }
          const proxy = new Proxy({}, {
            ownKeys: () => {
              throw new RangeError("no")
            }
          })
          const hostile: ReadonlyArray<readonly [unknown, string]> = [
            [throwing, "reading them threw a TypeError"],
            [proxy, "reading them threw a RangeError"],
            [{ key, subject: [proxy] }, "reading them threw a RangeError"],
            [{ key, subject: "CN=x", subjectAltNames: Array(2000).fill("DNS:x") }, "at most 1024 entries"],
            [{ key, subject: Array(1025).fill({ type: "CN", value: "x" }) }, "at most 1024 entries"]
          ]
          for (const [options, detail] of [...bad, ...hostile]) {
            const error = yield* Effect.flip(Csr.create(options as Csr.CreateOptions))
            assert.strictEqual(error._tag, "InvalidOptions", detail)
            if (error._tag === "InvalidOptions") {
              assert.include(error.detail, detail)
              assert.notInclude(error.message, "1234")
            }
          }
          const proto = yield* Effect.flip(Csr.create({ key, subject: JSON.parse("{\"__proto__\": \"x\"}") }))
          assert.strictEqual(proto._tag, "InvalidSubject")
          assert.include(proto.message, "unknown attribute type \"__proto__\"")
          const deep = yield* Effect.flip(Csr.create({ key, subject: [[[{ type: "CN", value: "x" }] as never]] }))
          assert.strictEqual(deep._tag, "InvalidSubject")
        }))
    })
  })

suite("the emulator", Emulated, false)
suite("SoftHSM2", SoftHsm.layerPool({ tokenLabel: "x509-csr" }), !softHsmAvailable)

/** How many signatures the token was asked for, counted on the way to the emulator. */
class Signatures extends Context.Tag("test/Signatures")<Signatures, { count: number }>() {}

const counting: Layer.Layer<Pkcs11.Pkcs11 | Signatures, never, Pkcs11.Pkcs11> = Layer.effectContext(
  Effect.map(Pkcs11.Pkcs11, (inner) => {
    const signatures = { count: 0 }
    const signDirect = inner.signDirect
    const service: Pkcs11.Pkcs11.Service = {
      ...inner,
      sign: (...args) => Effect.suspend(() => (signatures.count++, inner.sign(...args))),
      signDirect: signDirect === undefined ? undefined : (...args) => (signatures.count++, signDirect(...args))
    }
    return Context.make(Pkcs11.Pkcs11, service).pipe(Context.add(Signatures, signatures))
  })
)

layer(
  SessionPool.layer({ tokenLabel: "x509", userPin }).pipe(
    Layer.provideMerge(counting),
    Layer.provide(MemoryPkcs11.layer({ tokens: [{ label: "x509", userPin }] }))
  )
)("Csr and the token", (it) => {
  it.effect("bad input never reaches the token; a request is one signature", () =>
    Effect.gen(function*() {
      const signatures = yield* Signatures
      const key = yield* HsmJwk.generate({ type: "P-256", label: "counted" })
      const before = signatures.count
      for (
        const options of [
          { key, subject: "CN=" },
          { key, subject: "CN=x", subjectAltNames: ["DNS:bad_name"] },
          { key, subject: "CN=x", alg: "RS256" },
          { key, subject: "" }
        ]
      ) {
        yield* Effect.flip(Csr.create(options))
      }
      assert.strictEqual(signatures.count, before)
      const ended: Array<RecordedSpan> = []
      yield* Csr.create({ key, subject: "CN=x" }).pipe(
        Effect.withTracer(observingTracer({ ended: (span) => ended.push(span) }))
      )
      assert.strictEqual(signatures.count, before + 1)
      // One span for the request, the token's signature under it.
      const span = ended.find((span) => span.name === "Csr.create")
      assert.isDefined(span)
      assert.strictEqual(span!.attributes.get("x509.alg"), "ES256")
      assert.strictEqual(span!.attributes.get("hsm.kid"), key.kid)
      assert.isTrue(ended.some((child) => child.name === "HsmJwk.sign" && child.parentId === span!.spanId))
    }))
})
