import * as Effect from "effect/Effect"
import { InvalidKeyReference } from "../HsmError.js"

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
export const parseId = (id: string | Uint8Array): Effect.Effect<Uint8Array, InvalidKeyReference> => {
  if (id instanceof Uint8Array) {
    return id.length === 0
      ? Effect.fail(new InvalidKeyReference({ detail: "the CKA_ID is empty" }))
      : Effect.succeed(id)
  }
  const hex = id.replace(/[:\s-]/gu, "")
  return HEX.test(hex)
    ? Effect.succeed(Uint8Array.from(Buffer.from(hex, "hex")))
    : Effect.fail(new InvalidKeyReference({ detail: `the CKA_ID "${id}" is not hex (an even number of 0-9 a-f)` }))
}

export const parseLabel = (label: string): Effect.Effect<string, InvalidKeyReference> =>
  label.length === 0
    ? Effect.fail(new InvalidKeyReference({ detail: "the label is empty" }))
    : Effect.succeed(label)

export const parse = (options: {
  readonly label?: string | undefined
  readonly id?: string | Uint8Array | undefined
}): Effect.Effect<KeyReference, InvalidKeyReference> =>
  Effect.gen(function*() {
    if (options.label === undefined && options.id === undefined) {
      return yield* new InvalidKeyReference({ detail: "give a label, an id, or both" })
    }
    return {
      label: options.label === undefined ? undefined : yield* parseLabel(options.label),
      id: options.id === undefined ? undefined : yield* parseId(options.id)
    }
  })

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

export const describe = (reference: KeyReference): string =>
  [
    reference.label === undefined ? undefined : `label "${reference.label}"`,
    reference.id === undefined ? undefined : `id ${hex(reference.id)}`
  ].filter((part) => part !== undefined).join(" and ")
