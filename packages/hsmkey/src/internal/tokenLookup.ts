import { CKR } from "@hsmkey/pkcs11/Constants"
import type { Pkcs11, SlotId, TokenInfo } from "@hsmkey/pkcs11/Pkcs11"
import { type Pkcs11Failure, TokenNotPresent } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import { InvalidOptions, TokenAmbiguous, TokenNotFound } from "../HsmError.js"
import * as Options from "./options.js"

/**
 * How a pool names its token. Never by slot id: slot ids change when a token is re-inserted and at
 * every `C_Initialize` of SoftHSM2.
 */
export type Selector =
  | { readonly _tag: "label"; readonly label: string }
  | { readonly _tag: "serial"; readonly serialNumber: string }

/**
 * The selector of options that name a token by exactly one of `tokenLabel` and `tokenSerial`.
 */
export const selectorOf = (options: {
  readonly tokenLabel?: string | undefined
  readonly tokenSerial?: string | undefined
}): Effect.Effect<Selector, InvalidOptions> => {
  const { tokenLabel, tokenSerial } = options
  for (const [name, value] of [["tokenLabel", tokenLabel], ["tokenSerial", tokenSerial]] as const) {
    if (value !== undefined && typeof value !== "string") {
      return Effect.fail(new InvalidOptions({ detail: `${name} is text, not ${Options.kindOf(value)}` }))
    }
  }
  if (tokenLabel !== undefined && tokenSerial !== undefined) {
    return Effect.fail(new InvalidOptions({ detail: "give tokenLabel or tokenSerial, not both" }))
  }
  if (tokenLabel !== undefined) return Effect.succeed({ _tag: "label", label: tokenLabel })
  if (tokenSerial !== undefined) return Effect.succeed({ _tag: "serial", serialNumber: tokenSerial })
  return Effect.fail(new InvalidOptions({ detail: "name the token with tokenLabel or tokenSerial" }))
}

export const describe = (selector: Selector): string =>
  selector._tag === "label" ? `label "${selector.label}"` : `serial "${selector.serialNumber}"`

const matches = (selector: Selector, info: TokenInfo): boolean =>
  selector._tag === "label" ? info.label === selector.label : info.serialNumber === selector.serialNumber

/**
 * The initialized tokens present now. A token that disappears between the slot list and its info is
 * simply not present.
 */
const presentTokens = (pkcs11: Pkcs11.Service): Effect.Effect<ReadonlyArray<TokenInfo>, Pkcs11Failure> =>
  Effect.flatMap(pkcs11.slots({ tokenPresent: true }), (slots) =>
    Effect.map(
      Effect.forEach(slots, (slot) =>
        pkcs11.tokenInfo(slot).pipe(
          Effect.map((info) => (info.initialized ? [info] : [])),
          Effect.catchTag("TokenNotPresent", () => Effect.succeed([]))
        )),
      (infos) => infos.flat()
    ))

// SoftHSM2 shows the tokens of the directory its configuration names, and one empty slot otherwise. What
// SOFTHSM2_CONF says now need not be what the library read when it was initialized: it is not quoted.
const hintOf = (
  pkcs11: Pkcs11.Service,
  tokens: ReadonlyArray<TokenInfo>
): Effect.Effect<string | undefined, Pkcs11Failure> =>
  tokens.length > 0 ?
    Effect.succeed(undefined) :
    Effect.map(pkcs11.info, (info) =>
      info.manufacturerId.startsWith("SoftHSM")
        ? "SoftHSM2 shows the tokens of the directory named by the configuration it read when the library was " +
          "initialized (SOFTHSM2_CONF, else /etc/softhsm/softhsm2.conf): set SOFTHSM2_CONF to the configuration " +
          "the token was made under before the library loads"
        : undefined)

/**
 * Finds the one token a selector names.
 */
export const find = (
  pkcs11: Pkcs11.Service,
  selector: Selector
): Effect.Effect<TokenInfo, TokenNotFound | TokenAmbiguous | Pkcs11Failure> =>
  Effect.flatMap(
    presentTokens(pkcs11),
    (tokens): Effect.Effect<TokenInfo, TokenNotFound | TokenAmbiguous | Pkcs11Failure> => {
      const found = tokens.filter((info) => matches(selector, info))
      if (found.length === 1) return Effect.succeed(found[0])
      if (found.length === 0) {
        return Effect.flatMap(hintOf(pkcs11, tokens), (hint) =>
          Effect.fail(
            new TokenNotFound({ selector: describe(selector), available: tokens.map((t) => t.label), hint })
          ))
      }
      return Effect.fail(
        new TokenAmbiguous({
          label: selector._tag === "label" ? selector.label : "",
          serialNumbers: found.map((t) => t.serialNumber)
        })
      )
    }
  )

/**
 * The slot holding the token with this serial number now, or `TokenNotPresent`.
 */
export const slotOf = (pkcs11: Pkcs11.Service, serialNumber: string): Effect.Effect<SlotId, Pkcs11Failure> =>
  Effect.flatMap(presentTokens(pkcs11), (tokens) => {
    const token = tokens.find((info) => info.serialNumber === serialNumber)
    return token === undefined
      ? Effect.fail(
        new TokenNotPresent({
          method: "C_GetSlotList",
          code: CKR.TOKEN_NOT_PRESENT,
          returnValue: "CKR_TOKEN_NOT_PRESENT"
        })
      )
      : Effect.succeed(token.slotId)
  })
