/**
 * Every public export documented: a JSDoc sentence, `@since`, and `@category` (namespace declarations
 * and export lists need no `@category`; the re-exports of `index.ts` need only `@since`; the overloads of
 * a function, one JSDoc on the first). And every exported function declares its signature: a function's
 * return type, or a const's type where its value is a function that does not declare one
 * (`Effect.fn(...)`, a `dual`), so that no public error union is inferred. Public means
 * `packages/<name>/src/*.ts`; what lives in `src/internal/` is not public.
 *
 * The rules include those of `@effect/docgen` (`pnpm run docs`, with `enforceDescriptions`), so that a
 * module this check passes, docgen passes too: a module's first comment is its JSDoc, with a sentence;
 * each name of an `export { a, b } from` list has a JSDoc of its own; a class's methods and public fields
 * have one; no `@since` or `@category` is empty. And no `@example` sits where docgen would not compile it.
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

const commentText = (comment: string | ts.NodeArray<ts.JSDocComment> | undefined): string =>
  typeof comment === "string" ? comment : comment?.map((c) => c.text).join("") ?? ""

const tagIs = (name: string) => (tag: ts.JSDocTag): boolean => tag.tagName.text === name

/** What is missing from a JSDoc: `@since` and its version, a sentence, `@category` and its name. */
const missing = (doc: ts.JSDoc, rules: { readonly category: boolean; readonly sentence: boolean }) => {
  const tags = doc.tags ?? []
  const found: Array<string> = []
  const since = tags.find(tagIs("since"))
  if (since === undefined) found.push("no @since")
  else if (commentText(since.comment).trim() === "") found.push("no version after @since")
  // docgen fails on an empty `@category` wherever it is.
  const category = tags.find(tagIs("category"))
  if (category === undefined && rules.category) found.push("no @category")
  else if (category !== undefined && commentText(category.comment).trim() === "") found.push("no name after @category")
  if (rules.sentence && commentText(doc.comment).trim() === "") found.push("no sentence")
  return found
}

const lastJSDoc = (node: ts.Node): ts.JSDoc | undefined => {
  const docs = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc)
  return docs[docs.length - 1]
}

const check = (
  file: ts.SourceFile,
  node: ts.Node,
  where: string,
  rules: { readonly category: boolean; readonly sentence: boolean },
  name = nameOf(node)
) => {
  const doc = lastJSDoc(node)
  const line = file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1
  const at = `${where}:${line} ${name}`
  if (doc === undefined) return problems.push(`${at}: no JSDoc`)
  for (const problem of missing(doc, rules)) problems.push(`${at}: ${problem}`)
}

// docgen skips what is tagged `@internal` or `@ignore`; this check asks for their JSDoc all the same,
// except on class members, which docgen is the only one to read.
const ignoredByDocgen = (node: ts.Node): boolean =>
  (lastJSDoc(node)?.tags ?? []).some((t) => t.tagName.text === "internal" || t.tagName.text === "ignore")

const isPrivate = (node: ts.Node): boolean =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.PrivateKeyword)
const isStatic = (node: ts.Node): boolean =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.StaticKeyword)

/** docgen documents a class's methods (on the first of overloads) and its fields but static and `private` ones. */
const checkClassMembers = (file: ts.SourceFile, node: ts.ClassDeclaration, where: string) => {
  let previous: string | undefined
  for (const member of node.members) {
    const method = ts.isMethodDeclaration(member) ? member.name.getText(file) : undefined
    const sameGroup = method !== undefined && method === previous
    previous = method
    if (sameGroup) continue
    const documented = ts.isMethodDeclaration(member) ||
      (ts.isPropertyDeclaration(member) && !isStatic(member) && !isPrivate(member))
    if (!documented || ignoredByDocgen(member)) continue
    check(file, member, where, { category: false, sentence: true }, `${node.name?.text}.${member.name.getText(file)}`)
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

const visit = (
  file: ts.SourceFile,
  statements: ts.NodeArray<ts.Statement>,
  where: string,
  inNamespace: boolean,
  isIndex: boolean
) => {
  let previous: string | undefined
  for (const statement of statements) {
    // An overload after the first: the group's JSDoc is on the first.
    const overload = ts.isFunctionDeclaration(statement) ? statement.name?.text : undefined
    const sameGroup = overload !== undefined && overload === previous
    previous = overload
    if (sameGroup) continue
    if (ts.isExportDeclaration(statement)) {
      check(file, statement, where, { category: false, sentence: !isIndex })
      // docgen reads the JSDoc of each name in an export list, not the statement's.
      if (!isIndex && statement.exportClause !== undefined && ts.isNamedExports(statement.exportClause)) {
        for (const specifier of statement.exportClause.elements) {
          check(file, specifier, where, { category: true, sentence: true }, specifier.name.text)
        }
      }
      continue
    }
    if (!isExported(statement) && !inNamespace) continue
    if (ts.isModuleDeclaration(statement)) {
      check(file, statement, where, { category: false, sentence: true })
      if (statement.body !== undefined && ts.isModuleBlock(statement.body)) {
        visit(file, statement.body.statements, where, true, isIndex)
      }
      continue
    }
    if (inNamespace && !isExported(statement)) continue
    check(file, statement, where, { category: true, sentence: true })
    if (!inNamespace) checkSignature(file, statement, where)
    if (ts.isClassDeclaration(statement)) {
      checkClassMembers(file, statement, where)
      // docgen 0.5.2 prints a class's own examples but neither compiles nor runs them.
      if ((lastJSDoc(statement)?.tags ?? []).some(tagIs("example"))) {
        problems.push(`${where} ${nameOf(statement)}: an @example on a class goes unchecked; put it on the module`)
      }
    }
  }
}

// docgen takes a module's documentation from the first comment of its first statement, whatever follows.
const checkModuleDoc = (file: ts.SourceFile, where: string) => {
  const first = file.statements[0]
  const range = first === undefined ? undefined : ts.getLeadingCommentRanges(file.text, first.pos)?.[0]
  const comment = range === undefined ? "" : file.text.slice(range.pos, range.end)
  // TypeScript attaches only the last of several JSDoc comments to a statement: parse the first alone.
  const doc = comment.startsWith("/**") ?
    lastJSDoc(ts.createSourceFile(file.fileName, `${comment}\nexport {}\n`, ts.ScriptTarget.ES2022, true).statements[0])
    : undefined
  if (doc === undefined) return problems.push(`${where}: no module JSDoc (the file's first comment)`)
  for (const problem of missing(doc, { category: false, sentence: true })) problems.push(`${where}: module: ${problem}`)
}

{
  for (const path of publicFiles) {
    const name = Path.basename(path)
    const file = program.getSourceFile(path)!
    const where = Path.relative(root, path)
    const isIndex = name === "index.ts"
    if (!isIndex) checkModuleDoc(file, where)
    visit(file, file.statements, where, false, isIndex)
  }
}

if (problems.length > 0) {
  console.error(
    `Public exports undocumented or without a declared signature:\n${problems.map((p) => `  ${p}`).join("\n")}`
  )
  process.exit(1)
}
console.log("Every public export is documented and declares its signature.")
