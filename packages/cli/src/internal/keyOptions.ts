import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as HsmJwk from "hsmkey/HsmJwk"
import { CliError } from "../CliError.js"

/** `--label` of a key. */
export const label: Options.Options<Option.Option<string>> = Options.text("label").pipe(
  Options.withDescription("The key's label (CKA_LABEL)"),
  Options.optional
)

/** `--id` of a key. */
export const id: Options.Options<Option.Option<string>> = Options.text("id").pipe(
  Options.withDescription("The key's CKA_ID, in hex"),
  Options.optional
)

/** A key named by label, CKA_ID or both. */
export interface KeyReference {
  readonly label: Option.Option<string>
  readonly id: Option.Option<string>
}

/** `--label` and/or `--id`, at least one. */
export const reference: Options.Options<KeyReference> = Options.all({ label, id })

/**
 * The reference as `HsmJwk.fromHsm` takes it; at least one of the two. `labelFlag` is the flag the command
 * takes the label from: `--label` under `keys`, `--key` for `sign` and `csr`.
 */
export const toLoadOptions = (
  reference: KeyReference,
  labelFlag: "--label" | "--key" = "--label"
): Effect.Effect<HsmJwk.LoadOptions, CliError> =>
  Option.isNone(reference.label) && Option.isNone(reference.id)
    ? Effect.fail(
      new CliError({
        exitClass: "usage",
        detail: "no key named",
        hint: `name it with ${labelFlag} LABEL, --id HEX or both; \`hsmkey keys list\` shows them`
      })
    )
    : Effect.succeed({ label: Option.getOrUndefined(reference.label), id: Option.getOrUndefined(reference.id) })

/** A key's CKA_ID in hex. */
export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** A key's type, such as `RSA-2048` or `P-256`. */
export const typeOf = (key: HsmJwk.HsmJwk): string => key.keyType === "RSA" ? `RSA-${key.bits}` : key.keyType

/** What `--json` prints of a key. */
export interface Summary {
  readonly label: string | null
  readonly id: string
  readonly kid: string
  readonly type: string
  readonly alg: HsmJwk.HsmJwk["alg"]
  readonly use: HsmJwk.Use
  readonly token: string
  readonly jwk: HsmJwk.PublishedJwk
}

/** What `--json` prints of a key. */
export const summary = (key: HsmJwk.HsmJwk): Summary => ({
  label: key.label ?? null,
  id: hex(key.id),
  kid: key.kid,
  type: typeOf(key),
  alg: key.alg,
  use: key.use,
  token: key.token.label,
  jwk: key.publicJwk
})

/** One line about a key. */
export const describe = (key: HsmJwk.HsmJwk): string =>
  `${key.label === undefined ? "(no label)" : `"${key.label}"`} ${typeOf(key)} ${key.alg} ${key.use}, id ${
    hex(key.id) || "(none)"
  }, kid ${key.kid}`
