/**
 * The packages as an app installs them: built, packed with pnpm (which turns `workspace:` ranges into
 * versions and `publishConfig.exports` into `exports`), checked by publint and attw, installed from the
 * tarballs into fresh apps outside the workspace with npm and with pnpm, and used there by a plain-node ESM
 * program and a strict NodeNext TypeScript consumer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import { root } from "./support/child.js"
import { softHsmModule } from "./support/softhsm.js"

const packages = ["pkcs11", "hsmkey", "node", "softhsm", "x509", "platform", "cli"] as const
const bin = (name: string) => Path.join(root, "node_modules", ".bin", name)
const versionOf = (name: string): string =>
  JSON.parse(Fs.readFileSync(Path.join(root, "node_modules", name, "package.json"), "utf8")).version

// node-gyp builds pkcs11js against the running Node's headers rather than downloading them.
const nodePrefix = Path.dirname(Path.dirname(process.execPath))
const buildEnv: Record<string, string> = Fs.existsSync(Path.join(nodePrefix, "include", "node"))
  ? { npm_config_nodedir: nodePrefix }
  : {}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) =>
  Effect.promise(() =>
    promisify(execFile)(command, [...args], {
      cwd,
      env: { ...process.env, ...buildEnv, ...env },
      timeout: 480_000,
      maxBuffer: 64 * 1024 * 1024
    }).then(
      (out) => ({ code: 0, stdout: out.stdout, stderr: out.stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({
        code: typeof error.code === "number" ? error.code : -1,
        stdout: error.stdout ?? "",
        stderr: error.stderr ?? ""
      })
    )
  )

const succeed = (command: string, args: ReadonlyArray<string>, cwd: string, env?: Record<string, string>) =>
  Effect.tap(run(command, args, cwd, env), (result) => {
    assert.strictEqual(result.code, 0, `${command} ${args.join(" ")} in ${cwd}:\n${result.stdout}\n${result.stderr}`)
  })

interface Packed {
  readonly name: string
  readonly directory: string
  readonly tarball: string
}

const pack = (destination: string) =>
  Effect.gen(function*() {
    yield* succeed("pnpm", ["--silent", "build"], root)
    const packed: Array<Packed> = []
    for (const pkg of packages) {
      const directory = Path.join(root, "packages", pkg)
      const { name } = JSON.parse(Fs.readFileSync(Path.join(directory, "package.json"), "utf8"))
      const { stdout } = yield* succeed("pnpm", ["pack", "--json", "--pack-destination", destination], directory)
      const tarball = Path.resolve(directory, JSON.parse(stdout).filename)
      packed.push({ name, directory, tarball })
    }
    return packed
  })

const app = (base: string, name: string, packed: ReadonlyArray<Packed>, extra: Record<string, unknown>) => {
  const directory = Path.join(base, name)
  Fs.mkdirSync(directory)
  const tarballs = Object.fromEntries(packed.map((p) => [p.name, `file:${p.tarball}`]))
  const dependencies = {
    ...tarballs,
    effect: versionOf("effect"),
    jose: versionOf("jose"),
    "@effect/platform": versionOf("@effect/platform"),
    "@effect/platform-node": versionOf("@effect/platform-node"),
    "@types/node": versionOf("@types/node")
  }
  Fs.writeFileSync(
    Path.join(directory, "package.json"),
    JSON.stringify({ name: `consumer-${name}`, private: true, type: "module", dependencies, ...extra }, null, 2)
  )
  for (const file of ["main.mjs", "consumer.ts", "tsconfig.json"]) {
    Fs.copyFileSync(Path.join(root, "test", "fixtures", "consumer", file), Path.join(directory, file))
  }
  return { directory, tarballs }
}

const isRootOf = (directory: string, name: string) => {
  const manifest = Path.join(directory, "package.json")
  if (Fs.existsSync(manifest) && JSON.parse(Fs.readFileSync(manifest, "utf8")).name === name) return true
  assert.notStrictEqual(Path.dirname(directory), directory, `no package.json named ${name} above the entry`)
  return false
}

// Each package resolves its peers to the app's own copy: one hsmkey, one @hsmkey/pkcs11, one effect.
const singleCopies = (directory: string) => {
  // Resolves the main entry (our `./*` export maps `package.json` too) and walks up to the package's root.
  const resolveFrom = (from: string, name: string) => {
    let directory = Path.dirname(Fs.realpathSync(createRequire(Path.join(from, "package.json")).resolve(name)))
    while (!isRootOf(directory, name)) directory = Path.dirname(directory)
    return directory
  }
  const shared = ["effect", "hsmkey", "@hsmkey/pkcs11", "@hsmkey/node"]
  const ours = [
    "hsmkey",
    "@hsmkey/pkcs11",
    "@hsmkey/node",
    "@hsmkey/softhsm",
    "@hsmkey/x509",
    "@hsmkey/platform",
    "@hsmkey/cli"
  ].map((name) => resolveFrom(directory, name))
  for (const name of shared) {
    const own = resolveFrom(directory, name)
    for (const dependent of ours) {
      if (dependent === own) continue
      assert.strictEqual(resolveFrom(dependent, name), own, `${Path.basename(dependent)} sees the app's ${name}`)
    }
  }
}

const uses = (directory: string) =>
  Effect.gen(function*() {
    singleCopies(directory)
    const env: Record<string, string> = softHsmModule === undefined ? {} : { SOFTHSM2_MODULE: softHsmModule }
    const { stdout } = yield* succeed(process.execPath, ["main.mjs"], directory, env)
    // Two signing threads by default: both loaded from the installed files and signing.
    assert.deepStrictEqual(JSON.parse(stdout.trim()), {
      emulator: "installed",
      jwks: true,
      csr: true,
      ...(softHsmModule === undefined ? {} : { softhsm: "installed", signingThreads: 2 })
    })
    // The command line, as the app's package manager linked it.
    const cli = Path.join(directory, "node_modules", ".bin", "hsmkey")
    const version = yield* succeed(cli, ["--version"], directory)
    assert.include(version.stdout, versionOf("@hsmkey/cli"))
    if (softHsmModule !== undefined) {
      const demo = yield* succeed(cli, ["demo"], directory, { SOFTHSM2_MODULE: softHsmModule })
      assert.match(demo.stdout, /EdDSA\s+JWT signed in the token, verified by jose/)
    }
    yield* succeed(
      process.execPath,
      [Path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "."],
      directory
    )
  })

describe("packaging", () => {
  it.live(
    "packs, passes publint and attw, installs with npm and pnpm outside the workspace, and works there",
    () =>
      Effect.gen(function*() {
        const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "hsmkey-packaging-"))
        assert.isTrue(Path.relative(root, base).startsWith(".."), "the apps live outside the workspace")
        const packed = yield* pack(Path.join(base, "tarballs"))

        for (const { directory, name, tarball } of packed) {
          const { stdout } = yield* succeed("tar", ["-tzf", tarball], base)
          const files = stdout.trim().split("\n").map((file) => file.replace(/^package\//u, ""))
          for (const required of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts"]) {
            assert.include(files, required, `${name} ships ${required}`)
          }
          assert.deepStrictEqual(files.filter((file) => /(^|\/)test\/|\.test\.|tsbuildinfo|^tsconfig/u.test(file)), [])
          const manifest = (yield* succeed("tar", ["-xzOf", tarball, "package/package.json"], base)).stdout
          assert.notInclude(manifest, "workspace:", name)
          assert.notInclude(manifest, "./src/", name)

          const publint = yield* succeed(bin("publint"), ["run", tarball, "--strict"], base)
          assert.include(publint.stdout, "All good!", `${name}: ${publint.stdout}`)
          const entrypoints = Fs.readdirSync(Path.join(directory, "src"))
            .filter((file) => file.endsWith(".ts") && file !== "index.ts")
            .map((file) => `./${file.slice(0, -3)}`)
          const attw = yield* run(
            bin("attw"),
            [tarball, "--profile", "esm-only", "--format", "json", "--include-entrypoints", ...entrypoints],
            base
          )
          // ESM only: node10 and require() resolution are not these packages' (attw's esm-only profile).
          const report = JSON.parse(attw.stdout) as {
            readonly analysis: { readonly problems: ReadonlyArray<{ readonly resolutionKind?: string }> }
          }
          const problems = report.analysis.problems.filter((problem) =>
            problem.resolutionKind !== "node10" && problem.resolutionKind !== "node16-cjs"
          )
          assert.deepStrictEqual(problems, [], `${name}: attw`)
          assert.strictEqual(attw.code, 0, attw.stderr)
        }

        // npm: pkcs11js's build approved as the README says (npm 11 warns, and will block, unapproved ones).
        const npmApp = app(base, "npm", packed, { allowScripts: { pkcs11js: true } })
        yield* succeed("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], npmApp.directory)
        yield* uses(npmApp.directory)

        // pnpm: pkcs11js's build allowed, the peers' optional native builds declined, and the packages' own
        // dependencies on each other pointed at the tarballs (they are not on the registry).
        const pnpmApp = app(base, "pnpm", packed, {})
        Fs.writeFileSync(
          Path.join(pnpmApp.directory, "pnpm-workspace.yaml"),
          [
            "allowBuilds:",
            "  pkcs11js: true",
            "  \"@parcel/watcher\": false",
            "  msgpackr-extract: false",
            "overrides:",
            ...Object.entries(pnpmApp.tarballs).map(([name, spec]) => `  "${name}": "${spec}"`),
            ""
          ].join("\n")
        )
        yield* succeed("pnpm", ["install", "--reporter=silent"], pnpmApp.directory)
        yield* uses(pnpmApp.directory)
        Fs.rmSync(base, { recursive: true, force: true })
      }),
    900_000
  )
})
