import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import { InvalidKeyReference } from "../HsmError.js"
import * as Options from "./options.js"

/**
 * How a key is named on a token: by CKA_LABEL, by CKA_ID, or by both (both must match).
 */
export interface KeyReference {
  readonly label: string | undefined
  readonly id: Uint8Array | undefined
}

const HEX = /^(?:[0-9a-fA-F]{2})+$/u

/**
 * A CKA_ID given as hex (`"0a1b"`, `"0A:1B"` with separators allowed) or bytes.
 */
export const parseId = (id: unknown): Effect.Effect<Uint8Array, InvalidKeyReference> => {
  if (id instanceof Uint8Array) {
    return id.length === 0
      ? Effect.fail(new InvalidKeyReference({ detail: "the CKA_ID is empty" }))
      : Effect.succeed(id)
  }
  if (typeof id !== "string") {
    return Effect.fail(
      new InvalidKeyReference({ detail: `the CKA_ID is hex text or bytes, not ${Options.kindOf(id)}` })
    )
  }
  const hex = id.replace(/[:\s-]/gu, "")
  return HEX.test(hex)
    ? Effect.succeed(Uint8Array.from(Buffer.from(hex, "hex")))
    : Effect.fail(
      new InvalidKeyReference({
        detail: `the CKA_ID ${Options.shown(id)} is not hex (an even number of 0-9 a-f)`
      })
    )
}

/**
 * A CKA_LABEL: text that survives the UTF-8 a token stores it in. A lone surrogate would be stored as
 * U+FFFD, and the key could not be found again by the label it was given.
 */
export const parseLabel = (label: unknown): Effect.Effect<string, InvalidKeyReference> => {
  if (typeof label !== "string") {
    return Effect.fail(new InvalidKeyReference({ detail: `the label is text, not ${Options.kindOf(label)}` }))
  }
  if (label.length === 0) return Effect.fail(new InvalidKeyReference({ detail: "the label is empty" }))
  return Buffer.from(label, "utf8").toString("utf8") === label
    ? Effect.succeed(label)
    : Effect.fail(new InvalidKeyReference({ detail: "the label is not valid Unicode text (a lone surrogate)" }))
}

export const parse = (options: unknown): Effect.Effect<KeyReference, InvalidKeyReference> =>
  Effect.gen(function*() {
    const { id, label } = Predicate.isRecord(options) ? options : {}
    if (label === undefined && id === undefined) {
      return yield* new InvalidKeyReference({ detail: "give a label, an id, or both" })
    }
    return {
      label: label === undefined ? undefined : yield* parseLabel(label),
      id: id === undefined ? undefined : yield* parseId(id)
    }
  })

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

export const describe = (reference: KeyReference): string =>
  [
    reference.label === undefined ? undefined : `label "${reference.label}"`,
    reference.id === undefined ? undefined : `id ${hex(reference.id)}`
  ].filter((part) => part !== undefined).join(" and ")
