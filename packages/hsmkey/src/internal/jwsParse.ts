import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import { VerificationFailed } from "../HsmError.js"
import * as Encoding from "./encoding.js"

export interface ParsedSignature {
  /** The protected header as sent, base64url. */
  readonly protectedHeader: string
  /** The protected header, decoded. */
  readonly header: { readonly [name: string]: unknown }
  readonly unprotectedHeader: { readonly [name: string]: unknown } | undefined
  /** Both headers together (they share no name). */
  readonly joined: { readonly alg: string; readonly [name: string]: unknown }
  readonly signature: Uint8Array
}

export interface ParsedJws {
  readonly payload: string
  readonly signatures: ReadonlyArray<ParsedSignature>
}

const invalid = (detail: string) => new VerificationFailed({ code: "ERR_JWS_INVALID", detail })

const decodeHeader = (encoded: unknown): { readonly [name: string]: unknown } => {
  const bytes = Encoding.decodeBase64url(encoded)
  if (bytes === undefined) throw invalid("the protected header is not base64url")
  let header: unknown
  try {
    header = JSON.parse(Buffer.from(bytes).toString("utf8"))
  } catch {
    throw invalid("the protected header is not JSON")
  }
  if (!Predicate.isRecord(header)) throw invalid("the protected header is not a JSON object")
  // RFC 7515 §4.1.11: an extension this verifier does not implement must be rejected.
  if (Object.hasOwn(header, "crit")) throw invalid("\"crit\" extensions are not supported")
  if (Object.hasOwn(header, "b64")) throw invalid("unencoded payloads (\"b64\") are not supported")
  return header
}

const decodeSignature = (encoded: unknown): Uint8Array => {
  const bytes = Encoding.decodeBase64url(encoded)
  if (bytes === undefined) throw invalid("the signature is not base64url")
  return bytes
}

const parseSignature = (entry: unknown): ParsedSignature => {
  if (!Predicate.isRecord(entry)) throw invalid("a signature is not a JSON object")
  const unprotectedHeader = entry.header
  if (unprotectedHeader !== undefined && !Predicate.isRecord(unprotectedHeader)) {
    throw invalid("an unprotected header is not a JSON object")
  }
  const header = decodeHeader(entry.protected)
  if (unprotectedHeader !== undefined) {
    // RFC 7515 §7.2.1: the headers are disjoint, and crit belongs in the protected one.
    const shared = Object.keys(unprotectedHeader).filter((name) => Object.hasOwn(header, name))
    if (shared.length > 0) throw invalid(`${shared.join(", ")} in both the protected and the unprotected header`)
    if (Object.hasOwn(unprotectedHeader, "crit") || Object.hasOwn(unprotectedHeader, "b64")) {
      throw invalid("\"crit\" and \"b64\" belong in the protected header")
    }
  }
  const joined = { ...unprotectedHeader, ...header }
  const alg = joined.alg
  if (typeof alg !== "string") throw invalid("a signature's header has no \"alg\"")
  return {
    protectedHeader: entry.protected as string,
    header,
    unprotectedHeader,
    joined: { ...joined, alg },
    signature: decodeSignature(entry.signature)
  }
}

/**
 * The parts of a compact, flattened or general JWS, checked as jose checks them, for verifiers jose does
 * not have (a secret in a token, Ed448).
 */
export const parse = (jws: unknown): Effect.Effect<ParsedJws, VerificationFailed> =>
  Effect.try({
    try: () => {
      if (typeof jws === "string") {
        const parts = jws.split(".")
        if (parts.length !== 3) throw invalid("a compact JWS has three parts")
        const [protectedHeader, payload, signature] = parts
        if (!Encoding.isBase64url(payload)) throw invalid("the payload is not base64url")
        return { payload, signatures: [parseSignature({ protected: protectedHeader, signature })] }
      }
      if (!Predicate.isRecord(jws) || !Encoding.isBase64url(jws.payload)) {
        throw invalid("a JWS has a base64url payload")
      }
      const entries = Array.isArray(jws.signatures) ? jws.signatures : [jws]
      return { payload: jws.payload, signatures: entries.map(parseSignature) }
    },
    catch: (error) =>
      error instanceof VerificationFailed ? error : invalid(error instanceof Error ? error.message : String(error))
  })
