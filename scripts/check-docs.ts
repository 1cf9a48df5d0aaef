/**
 * Every public export documented: a JSDoc sentence, `@since`, and `@category` (namespace declarations
 * and the re-exports of `index.ts` need only `@since`). Public means `packages/<name>/src/*.ts`; what
 * lives in `src/internal/` is not public.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")
const problems: Array<string> = []

const isExported = (node: ts.Node): boolean =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)

const nameOf = (node: ts.Node): string => {
  if (ts.isVariableStatement(node)) return node.declarationList.declarations.map((d) => d.name.getText()).join(", ")
  if (ts.isExportDeclaration(node)) return node.exportClause?.getText() ?? "*"
  return (node as { name?: ts.Node }).name?.getText() ?? ts.SyntaxKind[node.kind]
}

const check = (file: ts.SourceFile, node: ts.Node, where: string, needsCategory: boolean) => {
  const docs = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc)
  const doc = docs[docs.length - 1]
  const tags = doc?.tags ?? []
  const line = file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1
  const at = `${where}:${line} ${nameOf(node)}`
  if (doc === undefined) return problems.push(`${at}: no JSDoc`)
  if (!tags.some((t) => t.tagName.text === "since")) problems.push(`${at}: no @since`)
  if (needsCategory && !tags.some((t) => t.tagName.text === "category")) problems.push(`${at}: no @category`)
  const text = typeof doc.comment === "string" ? doc.comment : doc.comment?.map((c) => c.text).join("") ?? ""
  if (
    needsCategory && text.trim() === "" &&
    !tags.some((t) => t.tagName.text === "category" && /\S/.test(String(t.comment ?? "")))
  ) {
    problems.push(`${at}: no sentence`)
  }
}

const visit = (file: ts.SourceFile, statements: ts.NodeArray<ts.Statement>, where: string, inNamespace: boolean) => {
  for (const statement of statements) {
    if (ts.isExportDeclaration(statement)) {
      check(file, statement, where, false)
      continue
    }
    if (!isExported(statement) && !inNamespace) continue
    if (ts.isModuleDeclaration(statement)) {
      check(file, statement, where, false)
      if (statement.body !== undefined && ts.isModuleBlock(statement.body)) {
        visit(file, statement.body.statements, where, true)
      }
      continue
    }
    if (inNamespace && !isExported(statement)) continue
    check(file, statement, where, true)
  }
}

for (const pkg of Fs.readdirSync(Path.join(root, "packages"))) {
  const src = Path.join(root, "packages", pkg, "src")
  if (!Fs.existsSync(src)) continue
  for (const name of Fs.readdirSync(src).filter((f) => f.endsWith(".ts"))) {
    const path = Path.join(src, name)
    const file = ts.createSourceFile(path, Fs.readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true)
    const where = Path.relative(root, path)
    const moduleDoc = file.statements.length > 0 ? ts.getJSDocCommentsAndTags(file.statements[0]) : []
    if (
      name !== "index.ts" && !moduleDoc.some((d) => ts.isJSDoc(d) && d.tags?.some((t) => t.tagName.text === "since"))
    ) {
      problems.push(`${where}: no module JSDoc with @since`)
    }
    visit(file, file.statements, where, false)
  }
}

if (problems.length > 0) {
  console.error(`Undocumented public exports:\n${problems.map((p) => `  ${p}`).join("\n")}`)
  process.exit(1)
}
console.log("Every public export is documented.")
