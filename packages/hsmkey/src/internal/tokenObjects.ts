import * as Effect from "effect/Effect"
import { InvalidOptions, KeyExists } from "../HsmError.js"
import type { HsmSession } from "../HsmSession.js"
import * as KeyReference from "./keyReference.js"

export const requireRw = (session: HsmSession, operation: string): Effect.Effect<void, InvalidOptions> =>
  session.rw
    ? Effect.void
    : Effect.fail(new InvalidOptions({ detail: `${operation} needs a read/write session: session({ rw: true })` }))

/**
 * Fails with `KeyExists` when any object of the token already carries the label or the CKA_ID.
 */
export const ensureAbsent = (session: HsmSession, label: string, id: Uint8Array | undefined) =>
  Effect.gen(function*() {
    const pkcs11 = session.pkcs11
    const byLabel = yield* pkcs11.findObjects(session.handle, { label })
    if (byLabel.length > 0) return yield* new KeyExists({ query: `label "${label}"`, token: session.token.label })
    if (id !== undefined && (yield* pkcs11.findObjects(session.handle, { id })).length > 0) {
      return yield* new KeyExists({ query: `id ${KeyReference.hex(id)}`, token: session.token.label })
    }
  })
