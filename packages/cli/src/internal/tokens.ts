import * as Command from "@effect/cli/Command"
import { Pkcs11, type SlotInfo, type TokenInfo } from "@hsmkey/pkcs11/Pkcs11"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Capabilities from "hsmkey/Capabilities"
import * as Connection from "./connection.js"
import * as Json from "./jsonOption.js"
import * as Output from "./output.js"

/** The token's flags, in words. */
export const flagsOf = (info: TokenInfo): ReadonlyArray<string> => {
  const flags: Array<string> = []
  flags.push(info.initialized ? "initialized" : "not initialized")
  if (info.loginRequired) flags.push("login required")
  if (info.writeProtected) flags.push("write protected")
  flags.push(info.userPinInitialized ? "user PIN set" : "user PIN not set")
  const pin = (who: string, status: TokenInfo["userPin"]) => {
    if (status.locked) flags.push(`${who} PIN locked`)
    else if (status.finalTry) flags.push(`${who} PIN final try`)
    else if (status.countLow) flags.push(`${who} PIN count low`)
    if (status.toBeChanged) flags.push(`${who} PIN to be changed`)
  }
  pin("user", info.userPin)
  pin("SO", info.soPin)
  return flags
}

interface SlotReport {
  readonly slot: SlotInfo
  readonly token: TokenInfo | undefined
  readonly capabilities: Capabilities.Capabilities | undefined
}

// "unavailable open of unlimited" read badly: the token may decline to report either figure.
const sessionsOf = (token: TokenInfo): string => {
  const open = token.openSessions === "unavailable" ? "open count not reported" : `${token.openSessions} open`
  const max = token.maxSessions === "unavailable"
    ? "limit not reported"
    : token.maxSessions === "unlimited"
    ? "no limit"
    : `at most ${token.maxSessions}`
  return `${open}, ${max}`
}

const describeCapabilities = (capabilities: Capabilities.Capabilities): ReadonlyArray<string> => {
  const generated = capabilities.keyTypes.filter((type) => type.generate !== undefined)
  const imported = capabilities.keyTypes.filter((type) => type.import)
  return [
    `  signs:     ${
      capabilities.signing.map((signing) => `${signing.alg} (${signing.mechanism})`).join(", ") || "nothing"
    }`,
    `  decrypts:  ${
      capabilities.decryption.map((decryption) => `${decryption.alg} (${decryption.mechanism})`).join(", ") ||
      "nothing"
    }`,
    `  generates: ${generated.map((type) => `${type.type} (${type.generate})`).join(", ") || "nothing"}`,
    `  imports:   ${imported.map((type) => type.type).join(", ") || "nothing"}`,
    `  secrets:   ${
      capabilities.secrets.signing.length === 0
        ? "none"
        : `${capabilities.secrets.signing.join(", ")}${
          capabilities.secrets.generate === undefined ? "" : ` (generated with ${capabilities.secrets.generate})`
        }`
    }`
  ]
}

const describe = (report: SlotReport): ReadonlyArray<string> => {
  const { capabilities, slot, token } = report
  if (token === undefined) return [`slot ${slot.slotId}: no token (${slot.description})`]
  if (!token.initialized) return [`slot ${slot.slotId}: an uninitialized token (${token.model})`]
  return [
    `slot ${slot.slotId}: token "${token.label}", serial ${token.serialNumber}`,
    `  model:     ${token.model} by ${token.manufacturerId}`,
    `  flags:     ${flagsOf(token).join(", ")}`,
    `  sessions:  ${sessionsOf(token)}; PIN ${token.minPinLength} to ${token.maxPinLength} characters`,
    ...(capabilities === undefined ? [] : describeCapabilities(capabilities))
  ]
}

const toJson = (report: SlotReport) => ({
  slotId: report.slot.slotId,
  description: report.slot.description,
  tokenPresent: report.slot.tokenPresent,
  token: report.token === undefined ? null : {
    label: report.token.label,
    serialNumber: report.token.serialNumber,
    model: report.token.model,
    manufacturerId: report.token.manufacturerId,
    flags: flagsOf(report.token),
    initialized: report.token.initialized,
    loginRequired: report.token.loginRequired,
    userPinInitialized: report.token.userPinInitialized,
    userPin: report.token.userPin,
    soPin: report.token.soPin,
    maxSessions: report.token.maxSessions,
    openSessions: report.token.openSessions,
    minPinLength: report.token.minPinLength,
    maxPinLength: report.token.maxPinLength,
    capabilities: report.capabilities === undefined ? null : {
      signing: report.capabilities.signing,
      decryption: report.capabilities.decryption,
      keyTypes: report.capabilities.keyTypes,
      secrets: report.capabilities.secrets,
      mechanisms: report.capabilities.mechanisms
    }
  }
})

const run = (
  module: Option.Option<string>,
  json: boolean
): Effect.Effect<void, Connection.ConnectError> =>
  Effect.scoped(Effect.gen(function*() {
    const pkcs11 = yield* Connection.library(module)
    const library = yield* pkcs11.info
    const reports: Array<SlotReport> = []
    for (const slotId of yield* pkcs11.slots()) {
      const slot = yield* pkcs11.slotInfo(slotId)
      const token = slot.tokenPresent ? yield* pkcs11.tokenInfo(slotId) : undefined
      const capabilities = token !== undefined && token.initialized
        ? yield* Effect.provideService(Capabilities.ofToken({ tokenSerial: token.serialNumber }), Pkcs11, pkcs11)
        : undefined
      reports.push({ slot, token, capabilities })
    }
    if (json) {
      return yield* Output.json({
        library: { path: Option.getOrUndefined(module), ...library },
        slots: reports.map(toJson)
      })
    }
    yield* Output.line(
      `${library.manufacturerId} ${library.description} ${library.libraryVersion}, Cryptoki ${library.cryptokiVersion}`
    )
    for (const report of reports) {
      for (const text of describe(report)) yield* Output.line(text)
    }
  }))

/** `hsmkey tokens` */
export const command = Command.make(
  "tokens",
  { module: Connection.moduleOption, json: Json.option },
  ({ json, module }) => run(module, json)
).pipe(
  Command.withDescription(
    "Every slot of the library and its token: label, serial number, model, flags (login required, user PIN " +
      "set, locked, final try...) and what the token can do (the JOSE algorithms it signs and decrypts with, " +
      "by mechanism, and the key types it generates and imports). Needs no PIN."
  )
)
