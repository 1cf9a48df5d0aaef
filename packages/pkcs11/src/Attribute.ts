/**
 * Object attributes as typed, named values: `{ label: "k1", sign: true }` is the template
 * `[CKA_LABEL = "k1", CKA_SIGN = CK_TRUE]`.
 *
 * Each name has one value kind: a boolean (`CK_BBOOL`), a number (`CK_ULONG`), a string (UTF-8) or
 * bytes. The same record describes a template to create or search with and the values read back.
 *
 * @since 0.1.0
 */

/**
 * The kinds of attribute value.
 *
 * @since 0.1.0
 * @category models
 */
export type Kind = "boolean" | "number" | "string" | "bytes"

/**
 * Every attribute hsmkey reads or writes, with its `CKA_*` type and value kind.
 *
 * @since 0.1.0
 * @category models
 */
export const specs = {
  class: { type: 0x0, kind: "number" },
  token: { type: 0x1, kind: "boolean" },
  private: { type: 0x2, kind: "boolean" },
  label: { type: 0x3, kind: "string" },
  application: { type: 0x10, kind: "string" },
  value: { type: 0x11, kind: "bytes" },
  objectId: { type: 0x12, kind: "bytes" },
  keyType: { type: 0x100, kind: "number" },
  subject: { type: 0x101, kind: "bytes" },
  id: { type: 0x102, kind: "bytes" },
  sensitive: { type: 0x103, kind: "boolean" },
  encrypt: { type: 0x104, kind: "boolean" },
  decrypt: { type: 0x105, kind: "boolean" },
  wrap: { type: 0x106, kind: "boolean" },
  unwrap: { type: 0x107, kind: "boolean" },
  sign: { type: 0x108, kind: "boolean" },
  signRecover: { type: 0x109, kind: "boolean" },
  verify: { type: 0x10a, kind: "boolean" },
  verifyRecover: { type: 0x10b, kind: "boolean" },
  derive: { type: 0x10c, kind: "boolean" },
  modulus: { type: 0x120, kind: "bytes" },
  modulusBits: { type: 0x121, kind: "number" },
  publicExponent: { type: 0x122, kind: "bytes" },
  privateExponent: { type: 0x123, kind: "bytes" },
  prime1: { type: 0x124, kind: "bytes" },
  prime2: { type: 0x125, kind: "bytes" },
  exponent1: { type: 0x126, kind: "bytes" },
  exponent2: { type: 0x127, kind: "bytes" },
  coefficient: { type: 0x128, kind: "bytes" },
  valueLen: { type: 0x161, kind: "number" },
  extractable: { type: 0x162, kind: "boolean" },
  local: { type: 0x163, kind: "boolean" },
  neverExtractable: { type: 0x164, kind: "boolean" },
  alwaysSensitive: { type: 0x165, kind: "boolean" },
  keyGenMechanism: { type: 0x166, kind: "number" },
  modifiable: { type: 0x170, kind: "boolean" },
  copyable: { type: 0x171, kind: "boolean" },
  destroyable: { type: 0x172, kind: "boolean" },
  ecParams: { type: 0x180, kind: "bytes" },
  ecPoint: { type: 0x181, kind: "bytes" },
  alwaysAuthenticate: { type: 0x202, kind: "boolean" }
} as const satisfies Record<string, { readonly type: number; readonly kind: Kind }>

/**
 * The name of an attribute hsmkey knows, such as `"label"` for `CKA_LABEL`.
 *
 * @since 0.1.0
 * @category models
 */
export type Name = keyof typeof specs

type ValueOf<K extends Kind> = K extends "boolean" ? boolean
  : K extends "number" ? number
  : K extends "string" ? string
  : Uint8Array

/**
 * A set of attribute values: a template to create or find objects, or the values read from one.
 *
 * @since 0.1.0
 * @category models
 */
export type Attributes = { readonly [N in Name]?: ValueOf<(typeof specs)[N]["kind"]> | undefined }

/**
 * The values read for the names asked: an attribute the object lacks, or keeps secret, is absent.
 *
 * @since 0.1.0
 * @category models
 */
export type Read<N extends Name> = { readonly [K in N]?: ValueOf<(typeof specs)[K]["kind"]> | undefined }

/**
 * The attributes of a template that are set, in a stable order, with their specs.
 *
 * @example
 * ```ts
 * import { Attribute } from "@hsmkey/pkcs11"
 *
 * const template: Attribute.Attributes = { label: "k1", sign: true, id: undefined }
 * assert.deepStrictEqual(Attribute.entries(template), [["label", "k1"], ["sign", true]])
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const entries = (
  attributes: Attributes
): ReadonlyArray<readonly [Name, boolean | number | string | Uint8Array]> => {
  const out: Array<readonly [Name, boolean | number | string | Uint8Array]> = []
  for (const name of Object.keys(attributes) as Array<Name>) {
    const value = attributes[name]
    // Own names only: `in` would take "toString" or "__proto__" for attributes.
    if (value !== undefined && Object.hasOwn(specs, name)) out.push([name, value])
  }
  return out
}
