/**
 * Every public export documented: a JSDoc sentence, `@since`, and `@category` (namespace declarations
 * and the re-exports of `index.ts` need only `@since`; the overloads of a function, one JSDoc on the
 * first). And every exported function declares its signature: a function's return type, or a const's
 * type where its value is a function that does not declare one (`Effect.fn(...)`, a `dual`), so that no
 * public error union is inferred. Public means `packages/<name>/src/*.ts`; what lives in
 * `src/internal/` is not public.
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

const publicFiles = Fs.readdirSync(Path.join(root, "packages")).flatMap((pkg) => {
  const src = Path.join(root, "packages", pkg, "src")
  return Fs.existsSync(src) ? Fs.readdirSync(src).filter((f) => f.endsWith(".ts")).map((f) => Path.join(src, f)) : []
})
const program = ts.createProgram(publicFiles, {
  strict: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  skipLibCheck: true,
  noEmit: true
})
const checker = program.getTypeChecker()

const declaresReturn = (node: ts.Expression): boolean =>
  (ts.isArrowFunction(node) || ts.isFunctionExpression(node)) && node.type !== undefined

const checkSignature = (file: ts.SourceFile, node: ts.Statement, where: string) => {
  const line = file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1
  if (ts.isFunctionDeclaration(node) && node.type === undefined) {
    problems.push(`${where}:${line} ${nameOf(node)}: no declared return type`)
  }
  if (!ts.isVariableStatement(node)) return
  for (const declaration of node.declarationList.declarations) {
    if (declaration.type !== undefined || declaration.initializer === undefined) continue
    if (declaresReturn(declaration.initializer)) continue
    const type = checker.getTypeAtLocation(declaration)
    if (type.getCallSignatures().length > 0) {
      problems.push(`${where}:${line} ${declaration.name.getText()}: a function without a declared type`)
    }
  }
}

const visit = (file: ts.SourceFile, statements: ts.NodeArray<ts.Statement>, where: string, inNamespace: boolean) => {
  let previous: string | undefined
  for (const statement of statements) {
    // An overload after the first: the group's JSDoc is on the first.
    const overload = ts.isFunctionDeclaration(statement) ? statement.name?.text : undefined
    const sameGroup = overload !== undefined && overload === previous
    previous = overload
    if (sameGroup) continue
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
    if (!inNamespace) checkSignature(file, statement, where)
  }
}

{
  for (const path of publicFiles) {
    const name = Path.basename(path)
    const file = program.getSourceFile(path)!
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
  console.error(
    `Public exports undocumented or without a declared signature:\n${problems.map((p) => `  ${p}`).join("\n")}`
  )
  process.exit(1)
}
console.log("Every public export is documented and declares its signature.")
