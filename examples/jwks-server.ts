/**
 * An HTTP token issuer on a throwaway SoftHSM2 token: `POST /token` signs a JWT in the token with an ES256
 * key made at start, and `GET /.well-known/jwks.json` publishes its public key, so that any relying party
 * (jose's `createRemoteJWKSet`) verifies the JWTs without the HSM. SIGINT or SIGTERM stops it and deletes
 * the token.
 *
 *   HOST=127.0.0.1 PORT=8080 pnpm tsx examples/jwks-server.ts
 *   curl -s -d '{"sub":"alice"}' http://127.0.0.1:8080/token
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { HttpJwks } from "@hsmkey/platform"
import { SoftHsm } from "@hsmkey/softhsm"
import { Config, Console, Effect, Schema } from "effect"
import { HsmJwk, Jwt, SessionPool } from "hsmkey"
import { createServer } from "node:http"

const ISSUER = "https://issuer.example"
const AUDIENCE = "hsmkey-example"

const TokenRequest = Schema.Struct({ sub: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)) })

const main = Effect.gen(function*() {
  // The private half is made in the token and never leaves it.
  const key = yield* SessionPool.withSession(HsmJwk.generate({ type: "P-256", label: "issuer" }), { rw: true })

  const issue = HttpServerRequest.schemaBodyJson(TokenRequest).pipe(
    Effect.flatMap(({ sub }) =>
      Jwt.sign({}, key, { issuer: ISSUER, audience: AUDIENCE, subject: sub, expiresIn: "10 minutes" })
    ),
    Effect.flatMap((token) => HttpServerResponse.json({ token })),
    Effect.catchTags({
      ParseError: () => HttpServerResponse.json({ error: "invalid_request" }, { status: 400 }),
      RequestError: () => HttpServerResponse.json({ error: "invalid_request" }, { status: 400 })
    })
  )

  yield* HttpServer.serveEffect(HttpRouter.empty.pipe(
    HttpRouter.get(HttpJwks.defaultPath, yield* HttpJwks.make()),
    HttpRouter.post("/token", issue)
  ))
  yield* HttpServer.addressFormattedWith((url) => Console.log(`listening on ${url}`))
  return yield* Effect.never
})

const Http = NodeHttpServer.layerConfig(createServer, {
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("PORT").pipe(Config.withDefault(0))
})

// A throwaway token and a pool on it: both go, with the token's directory, when the server stops.
NodeRuntime.runMain(main.pipe(Effect.scoped, Effect.provide([Http, SoftHsm.layerPool({ tokenLabel: "jwks-server" })])))
