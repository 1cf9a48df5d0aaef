import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { SoftHsm } from "@hsmkey/softhsm"
import { Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/**
 * The SoftHSM2 library of this machine, found as `SoftHsm.layer` finds it. Under `CI` its absence fails
 * the suite at import: SoftHSM2 tests must run there. Elsewhere they skip, and say why.
 */
export const softHsmModule: string | undefined = await Effect.runPromise(
  SoftHsm.findModule.pipe(Effect.option, Effect.map(Option.getOrUndefined), Effect.provide(NodeFileSystem.layer))
)

export const softHsmAvailable = softHsmModule !== undefined

if (!softHsmAvailable) {
  const why = "SoftHSM2 is not installed (apt-get install softhsm2, or set SOFTHSM2_MODULE)"
  if (process.env.CI) throw new Error(`${why}: SoftHSM2 tests may not skip under CI`)
  console.warn(`Skipping SoftHSM2 tests: ${why}`)
}

/**
 * A SoftHSM2 configuration with an empty token directory, outside any `SoftHsm.layer`, for tests of
 * what happens around it. Returns its directory and the configuration's path.
 */
export const writeSoftHsmConfig = (prefix: string): { readonly directory: string; readonly config: string } => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))
  Fs.mkdirSync(Path.join(directory, "tokens"))
  const config = Path.join(directory, "softhsm2.conf")
  Fs.writeFileSync(config, `directories.tokendir = ${Path.join(directory, "tokens")}\nobjectstore.backend = file\n`)
  return { directory, config }
}
