/**
 * The built `hsmkey` binary, run as a child process against a throwaway SoftHSM2 token: every command's
 * output, its `--json`, its exit code, and what it says on stderr when it fails. No output of any run holds a
 * PIN.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect, Redacted } from "effect"
import * as jose from "jose"
import { execFileSync } from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import { softHsmAvailable, softHsmModule } from "../../../test/support/softhsm.js"
import { build, hsmkey, outputs, type Result } from "./support/hsmkey.js"

const USER_PIN = "cli-user-7d41c9e2"
const SO_PIN = "cli-so-3b8f06a5"
const NEW_PIN = "cli-new-91e2d4f7"
const WRONG_PIN = "cli-wrong-5c3a"

const TIMEOUT = 240_000

const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "hsmkey-cli-test-"))

beforeAll(build, 180_000)

afterAll(() => {
  Fs.rmSync(work, { recursive: true, force: true })
  const all = outputs.join("\n")
  for (const secret of [USER_PIN, SO_PIN, NEW_PIN, WRONG_PIN]) {
    if (all.includes(secret)) throw new Error("a PIN appears in the output of a command")
  }
})

const envOf = (token: SoftHsm.Token.Info, extra: Record<string, string | undefined> = {}) => ({
  SOFTHSM2_CONF: token.env.SOFTHSM2_CONF,
  HSM_MODULE: token.modulePath,
  HSM_TOKEN: token.label,
  HSM_PIN: USER_PIN,
  ...extra
})

/** Runs the binary on the test token. */
const run = (args: ReadonlyArray<string>, extra: Record<string, string | undefined> = {}, input?: string) =>
  Effect.flatMap(SoftHsm.Token, (token) => hsmkey(args, { env: envOf(token, extra), input }))

const ok = (result: Result): Result => {
  assert.strictEqual(result.code, 0, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`)
  return result
}

/** A failure: the exit code asked for, and exactly one line on stderr, no stack trace. */
const fails = (result: Result, code: number): string => {
  assert.strictEqual(result.code, code, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`)
  const lines = result.stderr.split("\n").filter((line) => line !== "")
  assert.strictEqual(lines.length, 1, `one line on stderr, not:\n${result.stderr}`)
  assert.match(lines[0], /^hsmkey: /)
  assert.notMatch(result.stderr, /\n\s+at |Cause|FiberFailure/)
  return lines[0]
}

const openssl = (args: ReadonlyArray<string>, input?: string): string =>
  execFileSync("openssl", [...args], { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] })

const b64hex = (value: string): string => Buffer.from(value, "base64url").toString("hex")

/** The SubjectPublicKeyInfo of a public JWK, as openssl builds it from the JWK's numbers alone. */
const opensslPem = (jwk: Record<string, string>): string => {
  const sections = jwk.kty === "RSA"
    ? [
      "asn1=SEQUENCE:spki",
      "[spki]",
      "algorithm=SEQUENCE:alg",
      "key=BITWRAP,SEQUENCE:rsa",
      "[alg]",
      "oid=OID:rsaEncryption",
      "parameters=NULL",
      "[rsa]",
      `n=INTEGER:0x${b64hex(jwk.n)}`,
      `e=INTEGER:0x${b64hex(jwk.e)}`
    ]
    : jwk.kty === "EC"
    ? [
      "asn1=SEQUENCE:spki",
      "[spki]",
      "algorithm=SEQUENCE:alg",
      `key=FORMAT:HEX,BITSTRING:04${b64hex(jwk.x)}${b64hex(jwk.y)}`,
      "[alg]",
      "oid=OID:id-ecPublicKey",
      `curve=OID:${({ "P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1" })[jwk.crv]}`
    ]
    : [
      "asn1=SEQUENCE:spki",
      "[spki]",
      "algorithm=SEQUENCE:alg",
      `key=FORMAT:HEX,BITSTRING:${b64hex(jwk.x)}`,
      "[alg]",
      `oid=OID:${jwk.crv === "Ed25519" ? "1.3.101.112" : "1.3.101.113"}`
    ]
  const conf = Path.join(work, `spki-${jwk.kid}.conf`)
  const der = Path.join(work, `spki-${jwk.kid}.der`)
  Fs.writeFileSync(conf, `${sections.join("\n")}\n`)
  openssl(["asn1parse", "-genconf", conf, "-out", der, "-noout"])
  return openssl(["pkey", "-pubin", "-inform", "DER", "-in", der, "-outform", "PEM"]).trim()
}

interface KeySummary {
  readonly label: string
  readonly id: string
  readonly kid: string
  readonly type: string
  readonly alg: string
  readonly use: string
  readonly jwk: jose.JWK & { readonly kid: string }
}

describe.skipIf(!softHsmAvailable)("hsmkey on SoftHSM2", () => {
  layer(SoftHsm.layer({ tokenLabel: "cli-test", userPin: Redacted.make(USER_PIN), soPin: Redacted.make(SO_PIN) }))(
    "the built binary",
    (it) => {
      it.effect("--help lists the commands, the variables and the exit codes", () =>
        Effect.gen(function*() {
          const { stdout } = ok(yield* run(["--help"]))
          for (const text of ["tokens", "keys generate", "jwks", "sign jws", "verify", "pin change", "demo"]) {
            assert.include(stdout, text)
          }
          for (const text of ["HSM_MODULE", "HSM_PIN", "EXIT CODES", "130"]) assert.include(stdout, text)
          const generate = ok(yield* run(["keys", "generate", "--help"]))
          // Piped (a pager, grep, a file), the help is plain text, with no colour codes.
          for (const text of [stdout, generate.stdout]) assert.notInclude(text, "\x1b[")
          assert.include(generate.stdout, "--type RSA-2048 | RSA-3072")
        }), TIMEOUT)

      it.effect(
        "tokens: label, serial, flags and capabilities, without a PIN; --json parses",
        () =>
          Effect.gen(function*() {
            const token = yield* SoftHsm.Token
            const { stdout } = ok(yield* run(["tokens"], { HSM_PIN: undefined }))
            assert.include(stdout, `token "cli-test", serial ${token.serialNumber}`)
            assert.include(stdout, "login required")
            assert.include(stdout, "user PIN set")
            // SoftHSM2 reports no open count and no limit: said so in words, not "unavailable open of unlimited".
            assert.include(stdout, "  sessions:  open count not reported, no limit; PIN 4 to 255 characters")
            assert.include(stdout, "ES256 (CKM_ECDSA)")
            assert.include(stdout, "Ed25519 (CKM_EC_EDWARDS_KEY_PAIR_GEN)")
            const json = JSON.parse(ok(yield* run(["tokens", "--json"], { HSM_PIN: undefined })).stdout)
            const ours = json.slots.find((slot: { token: { label?: string } | null }) =>
              slot.token?.label === "cli-test"
            )
            assert.strictEqual(ours.token.serialNumber, token.serialNumber)
            assert.include(ours.token.flags, "login required")
            assert.isTrue(ours.token.capabilities.signing.some((s: { alg: string }) => s.alg === "EdDSA"))
            assert.isTrue(
              ours.token.capabilities.keyTypes.some((k: { type: string; generate?: string }) =>
                k.type === "RSA-2048" && k.generate === "CKM_RSA_PKCS_KEY_PAIR_GEN"
              )
            )
          }),
        TIMEOUT
      )

      it.effect(
        "keys generate: RSA (PS256), P-256 and Ed25519; --json is the key; no progress without a terminal",
        () =>
          Effect.gen(function*() {
            const rsa = ok(
              yield* run(["keys", "generate", "--type", "RSA-2048", "--label", "rsa", "--alg", "PS256", "--json"])
            )
            assert.strictEqual(rsa.stderr, "")
            const rsaKey = JSON.parse(rsa.stdout) as KeySummary
            assert.strictEqual(rsaKey.type, "RSA-2048")
            assert.strictEqual(rsaKey.alg, "PS256")
            assert.strictEqual(rsaKey.jwk.kty, "RSA")
            const ec = JSON.parse(
              ok(yield* run(["keys", "generate", "--type", "P-256", "--label", "ec", "--json"])).stdout
            )
            assert.strictEqual(ec.jwk.crv, "P-256")
            const text = ok(yield* run(["keys", "generate", "--type", "Ed25519", "--label", "ed", "--id", "0a0b0c"]))
            assert.match(text.stdout, /^generated "ed" Ed25519 EdDSA sig, id 0a0b0c, kid /)
            const exists = yield* run(["keys", "generate", "--type", "P-256", "--label", "ec"])
            assert.include(fails(exists, 5), "already holds a key with label \"ec\"")
            // The key is not there yet: the hint says what fits the type rather than pointing at `keys list`.
            const mismatch = fails(
              yield* run(["keys", "generate", "--type", "P-384", "--label", "x", "--alg", "ES256"]),
              2
            )
            assert.include(mismatch, "(hint: P-384 keys sign with ES384;")
            assert.notInclude(mismatch, "keys list")
          }),
        TIMEOUT
      )

      it.effect(
        "keys list, jwks and keys export agree: the exported JWK is the JWKS entry",
        () =>
          Effect.gen(function*() {
            const listed = JSON.parse(ok(yield* run(["keys", "list", "--json"])).stdout) as ReadonlyArray<KeySummary>
            assert.deepStrictEqual(listed.map((key) => key.label), ["ec", "ed", "rsa"])
            const text = ok(yield* run(["keys", "list"])).stdout
            assert.match(text, /^LABEL +ID +TYPE +ALG +USE +KID\n/)
            const jwks = JSON.parse(ok(yield* run(["jwks", "--json"])).stdout) as jose.JSONWebKeySet
            assert.deepStrictEqual(jwks.keys, listed.map((key) => key.jwk))
            assert.deepStrictEqual(JSON.parse(ok(yield* run(["jwks"])).stdout), jwks)
            for (const key of listed) {
              const exported = JSON.parse(ok(yield* run(["keys", "export", "--label", key.label])).stdout)
              assert.deepStrictEqual(exported, jwks.keys.find((entry) => entry.kid === key.kid))
              const byId = JSON.parse(ok(yield* run(["keys", "export", "--id", key.id, "--json"])).stdout)
              assert.deepStrictEqual(byId, exported)
            }
          }),
        TIMEOUT
      )

      it.effect(
        "keys export --format pem is the SubjectPublicKeyInfo openssl builds from the JWK",
        () =>
          Effect.gen(function*() {
            for (const label of ["rsa", "ec", "ed"]) {
              const jwk = JSON.parse(ok(yield* run(["keys", "export", "--label", label])).stdout)
              const pem = ok(yield* run(["keys", "export", "--label", label, "--format", "pem"])).stdout.trim()
              assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n/)
              assert.strictEqual(pem, opensslPem(jwk))
              const json = JSON.parse(
                ok(yield* run(["keys", "export", "--label", label, "--format", "pem", "--json"])).stdout
              )
              assert.strictEqual(json.pem.trim(), pem)
            }
          }),
        TIMEOUT
      )

      it.effect(
        "sign jwt and sign jws print compact tokens that jose verifies with the JWKS",
        () =>
          Effect.gen(function*() {
            const jwks = jose.createLocalJWKSet(JSON.parse(ok(yield* run(["jwks"])).stdout))
            for (const label of ["rsa", "ec", "ed"]) {
              const jwt = ok(
                yield* run([
                  "sign",
                  "jwt",
                  "--key",
                  label,
                  "--claims",
                  "{\"sub\":\"alice\"}",
                  "--expires-in",
                  "5 minutes",
                  "--issuer",
                  "cli"
                ])
              ).stdout.trim()
              const { payload, protectedHeader } = yield* Effect.promise(() =>
                jose.jwtVerify(jwt, jwks, { issuer: "cli" })
              )
              assert.strictEqual(payload.sub, "alice")
              assert.strictEqual(protectedHeader.typ, "JWT")
              assert.isNumber(payload.exp)
            }
            const fromStdin = ok(yield* run(["sign", "jws", "--key", "ec"], {}, "bytes from stdin")).stdout.trim()
            const verified = yield* Effect.promise(() => jose.compactVerify(fromStdin, jwks))
            assert.strictEqual(Buffer.from(verified.payload).toString(), "bytes from stdin")
            const rs256 = ok(yield* run(["sign", "jws", "--key", "rsa", "--alg", "RS256", "--payload", "p"])).stdout
              .trim()
            assert.strictEqual(jose.decodeProtectedHeader(rs256).alg, "RS256")
            const claimsFromStdin = ok(yield* run(["sign", "jwt", "--key", "ed"], {}, "{\"n\":1}")).stdout.trim()
            assert.strictEqual(jose.decodeJwt(claimsFromStdin).n, 1)
            fails(yield* run(["sign", "jwt", "--key", "ec", "--claims", "[1]"]), 2)
            const mismatch = fails(yield* run(["sign", "jws", "--key", "ec", "--alg", "RS256", "--payload", "p"]), 2)
            assert.include(mismatch, "(hint: P-256 keys sign with ES256;")
            const asJson = JSON.parse(
              ok(yield* run(["sign", "jwt", "--key", "ed", "--claims", "{\"n\":2}", "--json"])).stdout
            )
            assert.deepStrictEqual([asJson.alg, asJson.keyLabel], ["EdDSA", "ed"])
            assert.strictEqual(asJson.kid, jose.decodeProtectedHeader(asJson.token).kid)
            assert.strictEqual(jose.decodeJwt(asJson.token).n, 2)
            const jwsJson = JSON.parse(
              ok(yield* run(["sign", "jws", "--key", "ec", "--payload", "p", "--json"])).stdout
            )
            const checked = yield* Effect.promise(() => jose.compactVerify(jwsJson.token, jwks))
            assert.strictEqual(Buffer.from(checked.payload).toString(), "p")
            // sign and csr name the key with --key, not --label.
            for (const args of [["sign", "jws", "--payload", "p"], ["csr", "--subject", "CN=x"]]) {
              const unnamed = fails(yield* run(args), 2)
              assert.include(unnamed, "name it with --key LABEL, --id HEX or both")
            }
          }),
        TIMEOUT
      )

      it.effect(
        "verify: a good token from a file and from a URL; a tampered one exits 6",
        () =>
          Effect.gen(function*() {
            const jwksText = ok(yield* run(["jwks"])).stdout
            const file = Path.join(work, "jwks.json")
            Fs.writeFileSync(file, jwksText)
            const jwt = ok(yield* run(["sign", "jwt", "--key", "ec", "--claims", "{\"sub\":\"bob\"}"])).stdout.trim()
            const verified = JSON.parse(ok(yield* hsmkey(["verify", "--jwks", file, "--json", jwt])).stdout)
            assert.strictEqual(verified.type, "JWT")
            assert.strictEqual(verified.payload.sub, "bob")
            assert.strictEqual(verified.protectedHeader.alg, "ES256")
            const text = ok(yield* hsmkey(["verify", "--jwks", file, jwt])).stdout
            assert.include(text, "verified JWT: ES256")
            const jws = ok(yield* run(["sign", "jws", "--key", "ed", "--payload", "hello"])).stdout.trim()
            const fromStdin = JSON.parse(ok(yield* hsmkey(["verify", "--jwks", file, "--json"], { input: jws })).stdout)
            assert.deepStrictEqual([fromStdin.type, fromStdin.payload], ["JWS", "hello"])

            const [header, payload, signature] = jwt.split(".")
            const forged = Buffer.from(JSON.stringify({ sub: "mallory" })).toString("base64url")
            const tampered = yield* hsmkey(["verify", "--jwks", file, `${header}.${forged}.${signature}`])
            assert.strictEqual(tampered.stdout, "")
            const tamperedLine = fails(tampered, 6)
            assert.include(tamperedLine, "Verification failed")
            assert.include(tamperedLine, "(hint: the token was altered after it was signed")
            const edOnly = Path.join(work, "jwks-ed-only.json")
            Fs.writeFileSync(
              edOnly,
              JSON.stringify({ keys: [JSON.parse(ok(yield* run(["keys", "export", "--label", "ed"])).stdout)] })
            )
            const otherKey = fails(yield* hsmkey(["verify", "--jwks", edOnly, jwt]), 6)
            assert.include(otherKey, "ERR_JWKS_NO_MATCHING_KEY")
            assert.include(otherKey, "`hsmkey jwks` prints a token's")
            const badSignature = `${header}.${payload}.${signature.slice(0, -4)}AAAA`
            fails(yield* hsmkey(["verify", "--jwks", file, badSignature]), 6)

            const server = Http.createServer((_request, response) => {
              response.writeHead(200, { "content-type": "application/json" }).end(jwksText)
            })
            yield* Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)))
            const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
            const remote = yield* hsmkey(["verify", "--jwks", url, "--json", jwt]).pipe(
              Effect.ensuring(Effect.sync(() => server.close()))
            )
            assert.strictEqual(JSON.parse(ok(remote).stdout).payload.sub, "bob")
            // The server is gone: the line says why the fetch failed, not just that it did.
            assert.match(fails(yield* hsmkey(["verify", "--jwks", url, jwt]), 9), /fetch failed \(ECONNREFUSED\)/)
            fails(yield* hsmkey(["verify", "--jwks", Path.join(work, "missing.json"), jwt]), 9)
          }),
        TIMEOUT
      )

      it.effect(
        "verify: an Ed448 JWT, which jose cannot check, has its signature and claims checked",
        () =>
          Effect.gen(function*() {
            ok(yield* run(["keys", "generate", "--type", "Ed448", "--label", "ed448"]))
            const file = Path.join(work, "jwks-ed448.json")
            Fs.writeFileSync(file, ok(yield* run(["jwks"])).stdout)
            const jwt = ok(
              yield* run(["sign", "jwt", "--key", "ed448", "--claims", "{}", "--issuer", "cli", "--expires-in", "60"])
            )
              .stdout.trim()
            const verified = JSON.parse(
              ok(yield* hsmkey(["verify", "--jwks", file, "--issuer", "cli", "--json", jwt])).stdout
            )
            assert.strictEqual(verified.payload.iss, "cli")
            fails(yield* hsmkey(["verify", "--jwks", file, "--issuer", "other", jwt]), 6)
            const expired = ok(yield* run(["sign", "jwt", "--key", "ed448", "--claims", "{\"exp\":1}"])).stdout.trim()
            assert.include(fails(yield* hsmkey(["verify", "--jwks", file, expired]), 6), "ERR_JWT_EXPIRED")
          }),
        TIMEOUT
      )

      it.effect(
        "keys import: PKCS#8 PEM, PKCS#8 DER and a JWK, each publishing the public half of what was imported",
        () =>
          Effect.gen(function*() {
            const pem = Path.join(work, "p256.pem")
            openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pem])
            const der = Path.join(work, "p256.der")
            openssl(["pkcs8", "-topk8", "-nocrypt", "-in", pem, "-outform", "DER", "-out", der])
            const jwkFile = Path.join(work, "ed.jwk")
            const { privateKey: edKey } = Crypto.generateKeyPairSync("ed25519")
            Fs.writeFileSync(jwkFile, JSON.stringify(edKey.export({ format: "jwk" })))
            const expectedEc = Crypto.createPublicKey(Fs.readFileSync(pem, "utf8")).export({ format: "jwk" })
            const fromPem = JSON.parse(
              ok(yield* run(["keys", "import", "--file", pem, "--label", "imp-pem", "--json"])).stdout
            )
            assert.deepStrictEqual([fromPem.jwk.x, fromPem.jwk.y], [expectedEc.x, expectedEc.y])
            const fromDer = yield* run([
              "keys",
              "import",
              "--file",
              der,
              "--label",
              "imp-der",
              "--id",
              "d0d0",
              "--json"
            ])
            assert.strictEqual(JSON.parse(ok(fromDer).stdout).jwk.x, expectedEc.x)
            const fromJwk = JSON.parse(
              ok(yield* run(["keys", "import", "--file", jwkFile, "--label", "imp-jwk", "--json"])).stdout
            )
            assert.strictEqual(fromJwk.jwk.x, Crypto.createPublicKey(edKey).export({ format: "jwk" }).x)
            assert.strictEqual(fromJwk.type, "Ed25519")
            const text = ok(yield* run(["keys", "import", "--file", jwkFile, "--label", "imp-jwk2", "--id", "0e0e"]))
            assert.match(text.stdout, /^imported "imp-jwk2" Ed25519/)
            Fs.writeFileSync(Path.join(work, "junk.pem"), "not a key")
            fails(yield* run(["keys", "import", "--file", Path.join(work, "junk.pem"), "--label", "junk"]), 2)
          }),
        TIMEOUT
      )

      it.effect(
        "keys destroy: refused without --yes off a terminal; with --yes the key is gone",
        () =>
          Effect.gen(function*() {
            const refused = yield* run(["keys", "destroy", "--label", "imp-der"])
            assert.include(fails(refused, 2), "--yes")
            const destroyed = JSON.parse(
              ok(yield* run(["keys", "destroy", "--label", "imp-der", "--yes", "--json"])).stdout
            )
            assert.strictEqual(destroyed.destroyed.label, "imp-der")
            const gone = yield* run(["keys", "export", "--label", "imp-der"])
            assert.include(fails(gone, 5), "No private key with label \"imp-der\"")
          }),
        TIMEOUT
      )

      it.effect(
        "a wrong PIN exits 4 with one line on stderr; no PIN and no terminal exits 4 too",
        () =>
          Effect.gen(function*() {
            const wrong = yield* run(["keys", "list"], { HSM_PIN: WRONG_PIN })
            assert.include(fails(wrong, 4), "PIN rejected by token \"cli-test\"")
            assert.strictEqual(wrong.stdout, "")
            const none = yield* run(["keys", "list"], { HSM_PIN: undefined })
            assert.include(fails(none, 4), "HSM_PIN")
          }),
        TIMEOUT
      )

      it.effect("--pin works and warns that it lands in shell history and process lists", () =>
        Effect.gen(function*() {
          const result = ok(yield* run(["keys", "list", "--json", "--pin", USER_PIN], { HSM_PIN: undefined }))
          assert.isArray(JSON.parse(result.stdout))
          assert.include(result.stderr, "warning: --pin puts the PIN in your shell's history and in process lists")
        }), TIMEOUT)

      it.effect("flags win over the environment", () =>
        Effect.gen(function*() {
          const token = yield* SoftHsm.Token
          const bySerial = ok(
            yield* run(["keys", "list", "--json", "--serial", token.serialNumber], { HSM_TOKEN: "nope" })
          )
          assert.isArray(JSON.parse(bySerial.stdout))
          fails(yield* run(["keys", "list", "--token", "nope"]), 3)
        }), TIMEOUT)

      it.effect(
        "a missing library, a missing token and a missing key each say what to do in one line",
        () =>
          Effect.gen(function*() {
            const library = yield* run(["tokens", "--module", Path.join(work, "libnothing.so")])
            const line = fails(library, 3)
            assert.include(line, "apt-get install softhsm2")
            assert.include(line, "--module")
            assert.include(fails(yield* run(["tokens"], { HSM_MODULE: undefined }), 3), "HSM_MODULE")
            // A file that is there but no PKCS#11 library: installing SoftHSM2 would not help.
            const junk = Path.join(work, "libjunk.so")
            Fs.writeFileSync(junk, "not a shared object")
            const notLibrary = fails(yield* run(["tokens", "--module", junk]), 3)
            assert.include(notLibrary, "not a loadable PKCS#11 library")
            assert.include(notLibrary, "(hint: that file is no PKCS#11 library")
            assert.notInclude(notLibrary, "apt-get")
            const token = fails(yield* run(["keys", "list"], { HSM_TOKEN: "no-such-token" }), 3)
            assert.include(token, "No token with label \"no-such-token\"; present: ")
            assert.include(token, "\"cli-test\"")
            const key = fails(yield* run(["sign", "jws", "--key", "nope", "--payload", "x"]), 5)
            assert.include(key, "private keys present: ")
            assert.include(key, "\"ec\"")
            // @effect/cli's own usage errors: exit 2, one line with what was expected and where the usage is.
            const usage = fails(yield* run(["keys", "generate", "--type", "P-999", "--label", "x"]), 2)
            assert.include(usage, "RSA-2048")
            assert.include(usage, "(hint: `hsmkey keys generate --help` shows the usage)")
            assert.include(fails(yield* run(["verify"]), 2), "Expected to find option: '--jwks'")
            assert.include(fails(yield* run(["tokens", "extra"]), 2), "`hsmkey tokens --help`")
            // A group's unknown subcommand is named with the group's own subcommands, not the root's.
            assert.strictEqual(
              fails(yield* run(["keys", "lst"]), 2),
              "hsmkey: unknown command \"lst\" for hsmkey keys: use one of destroy, export, generate, import, list " +
                "(hint: `hsmkey keys --help` shows the usage)"
            )
            assert.include(fails(yield* run(["sign", "jwx"]), 2), "use one of jws, jwt")
            assert.include(fails(yield* run(["nope"]), 2), "`hsmkey --help`")
          }),
        TIMEOUT
      )

      it.effect(
        "csr: a request for a token key that openssl verifies, with its subject and SANs",
        () =>
          Effect.gen(function*() {
            const pem = ok(
              yield* run([
                "csr",
                "--key",
                "ec",
                "--subject",
                "CN=api.example.com,O=Example",
                "--san",
                "DNS:api.example.com"
              ])
            ).stdout
            assert.match(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n/)
            const checked = openssl(["req", "-verify", "-noout", "-subject", "-text"], pem)
            assert.include(checked, "CN = api.example.com")
            assert.include(checked, "DNS:api.example.com")
            const key = JSON.parse(
              ok(yield* run(["keys", "export", "--label", "ec", "--format", "pem", "--json"])).stdout
            )
            assert.strictEqual(openssl(["req", "-pubkey", "-noout"], pem).trim(), key.pem.trim())
            const json = JSON.parse(
              ok(yield* run(["csr", "--key", "rsa", "--subject", "CN=x", "--alg", "PS256", "--json"])).stdout
            )
            assert.strictEqual(json.alg, "PS256")
            assert.strictEqual(json.subject, "CN=x")
            assert.include(openssl(["req", "-verify", "-noout", "-text"], json.pem), "rsassaPss")
            fails(yield* run(["csr", "--key", "ec", "--subject", "CN=x,C=Germany"]), 2)
          }),
        TIMEOUT
      )

      it.effect("pin change and pin init, from HSM_PIN, HSM_NEW_PIN and HSM_SO_PIN", () =>
        Effect.gen(function*() {
          ok(yield* run(["pin", "change"], { HSM_NEW_PIN: NEW_PIN }))
          fails(yield* run(["keys", "list"]), 4)
          ok(yield* run(["keys", "list"], { HSM_PIN: NEW_PIN }))
          // The SO logs in here: the advice is about the SO PIN, not --pin or HSM_PIN, which these do not read.
          for (const args of [["pin", "init"], ["pin", "change", "--so"]]) {
            const wrongSo = fails(yield* run(args, { HSM_SO_PIN: WRONG_PIN, HSM_NEW_PIN: USER_PIN }), 4)
            assert.include(wrongSo, "SO PIN rejected by token \"cli-test\"")
            assert.include(wrongSo, "HSM_SO_PIN")
            assert.notInclude(wrongSo, "--pin")
          }
          const init = ok(yield* run(["pin", "init"], { HSM_SO_PIN: SO_PIN, HSM_NEW_PIN: USER_PIN }))
          assert.include(init.stdout, "set the user PIN of token \"cli-test\"")
          ok(yield* run(["keys", "list"]))
          fails(yield* run(["pin", "change"], { HSM_NEW_PIN: undefined }), 4)
        }), TIMEOUT)
    }
  )

  describe("demo", () => {
    it.effect(
      "generates, prints the JWKS, signs and verifies with each key, and deletes its token",
      () =>
        Effect.gen(function*() {
          const result = ok(yield* hsmkey(["demo"], { env: { SOFTHSM2_MODULE: softHsmModule } }))
          const { stdout } = result
          assert.strictEqual(result.stderr, "")
          for (const alg of ["PS256", "ES256", "EdDSA"]) {
            assert.match(stdout, new RegExp(`${alg} +JWT signed in the token, verified by jose: ey`))
          }
          const jwks = JSON.parse(stdout.slice(stdout.indexOf("{\n"), stdout.indexOf("\n}\n") + 2))
          assert.deepStrictEqual(jwks.keys.map((key: { kty: string }) => key.kty), ["RSA", "EC", "OKP"])
          assert.match(stdout, /pool: \d+ session\(s\) open of at most 4, 1 login\(s\), 3 signature\(s\)/)
          const directory = /cleaned up: logged out, token wiped, (\S+) deleted/.exec(stdout)![1]
          assert.isFalse(Fs.existsSync(directory))
          const rs256 = ok(yield* hsmkey(["demo", "--rsa-alg", "RS256", "--count", "3"]))
          assert.include(rs256.stdout, "RS256  JWT signed")
          assert.include(rs256.stdout, "9 signature(s)")
        }),
      TIMEOUT
    )
  })
})
