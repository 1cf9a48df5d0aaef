import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Pkcs11 } from "@hsmkey/pkcs11/Pkcs11"
import * as SoftHsm from "@hsmkey/softhsm/SoftHsm"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as HsmJwk from "hsmkey/HsmJwk"
import * as Jwks from "hsmkey/Jwks"
import * as Jwt from "hsmkey/Jwt"
import * as SessionPool from "hsmkey/SessionPool"
import * as jose from "jose"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "../CliError.js"
import * as KeyOptions from "./keyOptions.js"
import * as Output from "./output.js"

const ISSUER = "hsmkey-demo"

// The pool counts its logins in hsmkey's metric, by token.
const loginsOn = (token: string): Effect.Effect<number> =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs.reduce(
      (sum, pair) =>
        pair.metricKey.name === "hsmkey_logins" &&
          pair.metricKey.tags.some((tag) => tag.key === "token" && tag.value === token) &&
          MetricState.isCounterState(pair.metricState)
          ? sum + Number(pair.metricState.count)
          : sum,
      0
    ))

const run = (
  options: { readonly rsaAlg: "PS256" | "RS256"; readonly count: number; readonly module: Option.Option<string> }
) =>
  Effect.gen(function*() {
    if (!Number.isInteger(options.count) || options.count < 1 || options.count > 10_000) {
      return yield* new CliError({ exitClass: "usage", detail: `--count takes 1 to 10000, not ${options.count}` })
    }
    const directory = yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Output.progress(
        "provisioning a throwaway SoftHSM2 token…",
        Layer.build(
          SoftHsm.layerPool({ maxSessions: 4, signingThreads: 0, modulePath: Option.getOrUndefined(options.module) })
        )
      )
      const token = Context.get(context, SoftHsm.Token)
      const pool = Context.get(context, SessionPool.SessionPool)
      const library = yield* Context.get(context, Pkcs11).info
      yield* Output.line(`${library.manufacturerId} ${library.libraryVersion}, Cryptoki ${library.cryptokiVersion}`)
      yield* Output.line(
        `throwaway token "${token.label}" (serial ${token.serialNumber}) in ${Path.dirname(token.configPath)}`
      )

      const keys = yield* SessionPool.withSession(
        Effect.gen(function*() {
          const rsa = yield* Output.progress(
            `generating an RSA-2048 key (${options.rsaAlg})…`,
            HsmJwk.generate({ type: "RSA-2048", label: `demo-${options.rsaAlg.toLowerCase()}`, alg: options.rsaAlg })
          )
          const ec = yield* Output.progress(
            "generating a P-256 key (ES256)…",
            HsmJwk.generate({ type: "P-256", label: "demo-es256" })
          )
          const ed = yield* Output.progress(
            "generating an Ed25519 key (EdDSA)…",
            HsmJwk.generate({ type: "Ed25519", label: "demo-eddsa" })
          )
          return [rsa, ec, ed] as const
        }),
        { rw: true }
      ).pipe(Effect.provide(context))
      for (const key of keys) yield* Output.line(`generated ${KeyOptions.describe(key)}`)

      const jwks = Jwks.fromKeys(keys)
      yield* Output.line("the token's JWKS, as a relying party fetches it:")
      yield* Output.json(jwks)

      // A relying party verifies with jose and the JWKS alone: no token involved.
      const verifier = jose.createLocalJWKSet(jwks)
      for (const key of keys) {
        const tokens = yield* Output.progress(
          `signing ${options.count} JWT${options.count === 1 ? "" : "s"} with ${key.alg} in the token…`,
          Effect.forEach(
            Array.from({ length: options.count }, (_, i) => i),
            (i) => Jwt.sign({ n: i }, key, { issuer: ISSUER, subject: `user-${i}`, expiresIn: "5 minutes" }),
            { concurrency: "unbounded" }
          ).pipe(Effect.provide(context))
        )
        for (const jwt of tokens) {
          yield* Effect.promise(() => jose.jwtVerify(jwt, verifier, { issuer: ISSUER, algorithms: [key.alg] }))
        }
        yield* Output.line(`${key.alg.padEnd(6)} JWT signed in the token, verified by jose: ${tokens[0]}`)
      }

      const stats = yield* pool.stats
      const logins = yield* loginsOn(pool.token.label)
      yield* Output.line(
        `pool: ${stats.open} session(s) open of at most ${stats.maxSessions}, ${logins} login(s), ` +
          `${options.count * keys.length} signature(s)`
      )
      return Path.dirname(token.configPath)
    }))
    // The scope above has closed: sessions, login, token and its directory are gone.
    yield* Fs.existsSync(directory)
      ? Output.warn(`the token directory ${directory} is still there`)
      : Output.line(`cleaned up: logged out, token wiped, ${directory} deleted`)
  })

/** `hsmkey demo` */
export const command = Command.make(
  "demo",
  {
    rsaAlg: Options.choice("rsa-alg", ["PS256", "RS256"]).pipe(
      Options.withDescription("The RSA key's algorithm"),
      Options.withDefault("PS256")
    ),
    count: Options.integer("count").pipe(
      Options.withDescription("JWTs to sign with each key, all at once (they share the pool's few sessions)"),
      Options.withDefault(1)
    ),
    module: Options.text("module").pipe(
      Options.withDescription("The SoftHSM2 library (default: SOFTHSM2_MODULE, then the usual locations)"),
      Options.optional
    )
  },
  run
).pipe(
  Command.withDescription(
    "On a throwaway SoftHSM2 token: generates an RSA, a P-256 and an Ed25519 key, prints the JWKS, signs a JWT " +
      "with each and verifies it with jose, prints the pool's figures, and deletes the token."
  )
)
