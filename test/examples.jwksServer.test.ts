/**
 * examples/jwks-server.ts runs as documented: a server on a throwaway SoftHSM2 token that issues JWTs a
 * relying party verifies over HTTP with jose's `createRemoteJWKSet`, and that stops cleanly on SIGTERM,
 * deleting its token.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as jose from "jose"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { startTs } from "./support/server.js"
import { softHsmAvailable } from "./support/softhsm.js"

const post = (url: URL, body: string) =>
  Effect.promise(async () => {
    const response = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } })
    return { status: response.status, json: await response.json() as unknown }
  })

// SoftHsm.layer keeps its token under the temporary directory: the child gets one of its own to watch.
const sandboxes = (directory: string) => Fs.readdirSync(directory).filter((name) => name.startsWith("hsmkey-softhsm-"))

describe.skipIf(!softHsmAvailable)("examples/jwks-server.ts", () => {
  it.live("issues JWTs that jose verifies against its JWKS over HTTP, answers 400 to bad input, stops on SIGTERM", () =>
    Effect.scoped(Effect.gen(function*() {
      const tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "hsmkey-jwks-server-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(tmp, { recursive: true, force: true })))
      const server = yield* startTs(
        "examples/jwks-server.ts",
        /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/m,
        { HOST: undefined, PORT: "0", TMPDIR: tmp }
      )
      const [, url, port] = server.ready
      assert.notStrictEqual(port, "0", "the system picked a port")
      assert.lengthOf(sandboxes(tmp), 1, "the throwaway token lives under TMPDIR")

      const jwks = jose.createRemoteJWKSet(new URL("/.well-known/jwks.json", url))
      for (const sub of ["alice", "bob"]) {
        const { json, status } = yield* post(new URL("/token", url), JSON.stringify({ sub }))
        assert.strictEqual(status, 200)
        const { token } = json as { token: string }
        const { payload, protectedHeader } = yield* Effect.promise(() =>
          jose.jwtVerify(token, jwks, { issuer: "https://issuer.example", audience: "hsmkey-example" })
        )
        assert.strictEqual(payload.sub, sub)
        assert.strictEqual(protectedHeader.alg, "ES256")
        assert.strictEqual(payload.exp! - payload.iat!, 600)
      }
      const forged = yield* Effect.promise(async () => {
        const other = await jose.generateKeyPair("ES256")
        const jwt = await new jose.SignJWT({ sub: "mallory" }).setProtectedHeader({ alg: "ES256" })
          .setIssuer("https://issuer.example").setAudience("hsmkey-example").sign(other.privateKey)
        return jose.jwtVerify(jwt, jwks).then(() => "verified", (error: Error) => error.name)
      })
      assert.notStrictEqual(forged, "verified", "a JWT signed elsewhere does not verify")

      for (const body of ["{\"sub\":5}", "{}", "{\"sub\":\"\"}", "not json"]) {
        const { json, status } = yield* post(new URL("/token", url), body)
        assert.strictEqual(status, 400, body)
        assert.deepStrictEqual(json, { error: "invalid_request" })
      }

      const keySet = new URL("/.well-known/jwks.json", url)
      const get = yield* Effect.promise(() => fetch(keySet))
      const body = yield* Effect.promise(() => get.text())
      assert.strictEqual(get.headers.get("content-type"), "application/jwk-set+json")
      assert.strictEqual(get.headers.get("cache-control"), "public, max-age=300")
      const etag = get.headers.get("etag")!
      assert.match(etag, /^"[\w-]{43}"$/)
      const keys = (JSON.parse(body) as jose.JSONWebKeySet).keys
      assert.deepStrictEqual(keys.map((key) => [key.kty, key.crv, key.alg, key.use]), [["EC", "P-256", "ES256", "sig"]])
      assert.notProperty(keys[0], "d")
      const notModified = yield* Effect.promise(() => fetch(keySet, { headers: { "if-none-match": etag } }))
      assert.strictEqual(notModified.status, 304)
      const head = yield* Effect.promise(() => fetch(keySet, { method: "HEAD" }))
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.headers.get("content-length"), String(Buffer.byteLength(body)))

      // NodeRuntime.runMain interrupts the program on SIGTERM and exits with 0 once its scope has closed.
      const exit = yield* server.stop("SIGTERM")
      assert.strictEqual(exit.code, 0, exit.stderr)
      assert.isNull(exit.signal)
      assert.deepStrictEqual(exit.stdout.trim().split("\n"), [`listening on ${url}`])
      assert.deepStrictEqual(sandboxes(tmp), [], "the throwaway token and its directory are deleted")
    })))
})
