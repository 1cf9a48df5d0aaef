import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import type { ObjectHandle } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { KeyAmbiguous, KeyExists, KeyNotFound } from "../HsmError.js"
import * as KeyReference from "./keyReference.js"
import type { Session } from "./session.js"

/** The template of what a reference names: its label, its CKA_ID, or both. */
export const templateOf = (reference: KeyReference.KeyReference): Attributes => ({
  ...(reference.label === undefined ? {} : { label: reference.label }),
  ...(reference.id === undefined ? {} : { id: reference.id })
})

/**
 * The one object a template finds: `KeyAmbiguous` when several match, `KeyNotFound` when none does,
 * with the reason `absent` tells and the labels `present` lists (both asked only then).
 */
export const findOne = (
  session: Session,
  template: Attributes,
  query: string,
  absent: Effect.Effect<KeyNotFound["reason"], Pkcs11Failure> = Effect.succeed("absent"),
  present: Effect.Effect<ReadonlyArray<string>, Pkcs11Failure> = Effect.succeed([])
): Effect.Effect<ObjectHandle, KeyAmbiguous | KeyNotFound | Pkcs11Failure> =>
  Effect.gen(function*() {
    const found = yield* session.pkcs11.findObjects(session.handle, template)
    if (found.length === 1) return found[0]
    if (found.length > 1) return yield* new KeyAmbiguous({ query, token: session.token.label, count: found.length })
    const reason = yield* absent
    return yield* new KeyNotFound({ query, token: session.token.label, reason, present: yield* present })
  })

/**
 * Fails with `KeyExists` when any object of the token already carries the label or the CKA_ID.
 */
export const ensureAbsent = (
  session: Session,
  label: string,
  id: Uint8Array | undefined
): Effect.Effect<void, KeyExists | Pkcs11Failure> =>
  Effect.gen(function*() {
    const pkcs11 = session.pkcs11
    const byLabel = yield* pkcs11.findObjects(session.handle, { label })
    if (byLabel.length > 0) return yield* new KeyExists({ query: `label "${label}"`, token: session.token.label })
    if (id !== undefined && (yield* pkcs11.findObjects(session.handle, { id })).length > 0) {
      return yield* new KeyExists({ query: `id ${KeyReference.hex(id)}`, token: session.token.label })
    }
  })

/**
 * Creates objects on the token and finishes them with `finish` (ids set, the key read back), as one
 * resource: on anything but success (a failure, a defect, an interruption, even during creation, which
 * the token completes regardless) the objects created are destroyed again, so that a retry does not meet
 * `KeyExists`. An object that cannot be destroyed is logged, never hidden.
 */
export const creating = <H, A, E1, E2>(
  session: Session,
  create: Effect.Effect<H, E1>,
  objectsOf: (created: H) => ReadonlyArray<ObjectHandle>,
  finish: (created: H) => Effect.Effect<A, E2>
): Effect.Effect<A, E1 | E2> =>
  Effect.acquireUseRelease(create, finish, (created, exit) =>
    Exit.isSuccess(exit) ? Effect.void : Effect.forEach(
      objectsOf(created),
      (object) =>
        session.pkcs11.destroyObject(session.handle, object).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning(
              `An object made by an unfinished key creation stays on token "${session.token.label}" ` +
                `(handle ${object}): ${error.message}`
            )
          )
        ),
      { discard: true }
    ))
