/**
 * The README's error table is the API's: every tagged error of hsmkey, @hsmkey/pkcs11, @hsmkey/softhsm and
 * @hsmkey/x509 is listed once, in the module that defines it, with exactly its fields (`?` for an optional one).
 */
import { assert, describe, it } from "@effect/vitest"
import { Pkcs11Error } from "@hsmkey/pkcs11"
import { SoftHsm } from "@hsmkey/softhsm"
import { X509Error } from "@hsmkey/x509"
import { Schema } from "effect"
import { HsmError } from "hsmkey"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { root } from "./support/child.js"

interface Row {
  readonly module: string
  readonly fields: string
}

// A tag field is `Schema.tag(...)`: a property signature around a literal.
const literalOf = (field: Schema.Struct.Field): string | undefined => {
  const ast = !Schema.isPropertySignature(field)
    ? field.ast
    : field.ast._tag === "PropertySignatureDeclaration"
    ? field.ast.type
    : field.ast.to.type
  return ast._tag === "Literal" && typeof ast.literal === "string" ? ast.literal : undefined
}

/** The tagged error classes a module exports, by tag, with their fields as the table writes them. */
const taggedErrors = (module: string, exports: Record<string, unknown>): Map<string, Row> => {
  const rows = new Map<string, Row>()
  for (const value of Object.values(exports)) {
    if (typeof value !== "function" || !("fields" in value)) continue
    const fields = (value as unknown as { readonly fields: Schema.Struct.Fields }).fields
    const tag = fields._tag === undefined ? undefined : literalOf(fields._tag)
    if (tag === undefined) continue
    const names = Object.entries(fields).filter(([name]) => name !== "_tag").map(([name, field]) =>
      Schema.isPropertySignature(field) && field.ast._tag === "PropertySignatureDeclaration" && field.ast.isOptional
        ? `${name}?`
        : name
    )
    rows.set(tag, { module, fields: names.join(", ") })
  }
  return rows
}

const fromCode = (): Map<string, Row> => {
  const pkcs11 = taggedErrors("@hsmkey/pkcs11", Pkcs11Error)
  const hsmkey = taggedErrors("hsmkey", HsmError)
  for (const tag of pkcs11.keys()) {
    // hsmkey's HsmError re-exports the Cryptoki failures: they are @hsmkey/pkcs11's.
    assert.isTrue(hsmkey.has(tag), `HsmError re-exports ${tag}`)
    hsmkey.delete(tag)
  }
  return new Map([
    ...hsmkey,
    ...pkcs11,
    ...taggedErrors("@hsmkey/softhsm", SoftHsm),
    ...taggedErrors("@hsmkey/x509", X509Error)
  ])
}

const fromReadme = (): Map<string, Row> => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("## Errors"), readme.indexOf("\n## ", readme.indexOf("## Errors") + 1))
  const rows = new Map<string, Row>()
  for (const match of section.matchAll(/^\| `(\w+)` \| `([^`]+)` \| (?:`([^`]*)`|—) \|/gmu)) {
    assert.isFalse(rows.has(match[1]), `${match[1]} is listed once`)
    rows.set(match[1], { module: match[2], fields: match[3] ?? "" })
  }
  return rows
}

describe("the README's error table", () => {
  it("lists every tagged error, in its module, with its fields", () => {
    const code = fromCode()
    const readme = fromReadme()
    assert.isAtLeast(code.size, 30)
    assert.deepStrictEqual([...readme.keys()].sort(), [...code.keys()].sort())
    for (const [tag, row] of code) assert.deepStrictEqual(readme.get(tag), row, tag)
  })
})
