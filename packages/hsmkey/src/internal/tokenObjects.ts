import type { Attributes } from "@hsmkey/pkcs11/Attribute"
import { CKO } from "@hsmkey/pkcs11/Constants"
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

/** The kind of key a search is for, as `KeyNotFound` names it. */
export type KeyKind = "private key" | "secret"

const isPublic = (state: string): boolean => state === "ro-public" || state === "rw-public"

/**
 * Why a search for a key of `kind` found nothing: private keys and secrets hide from a session that is
 * not logged in, a key pair may have only its public half there, and otherwise the labels of the keys of
 * that kind the session sees say what is there instead.
 */
const missing = (
  session: Session,
  template: Attributes,
  kind: KeyKind
): Effect.Effect<Pick<KeyNotFound, "reason" | "present">, Pkcs11Failure> =>
  Effect.gen(function*() {
    const pkcs11 = session.pkcs11
    if (isPublic((yield* pkcs11.sessionInfo(session.handle)).state)) {
      return { reason: "not-logged-in", present: undefined }
    }
    const { class: _, ...named } = template
    if (
      kind === "private key" &&
      (yield* pkcs11.findObjects(session.handle, { ...named, class: CKO.PUBLIC_KEY })).length > 0
    ) {
      return { reason: "public-only", present: undefined }
    }
    const objectClass = kind === "private key" ? CKO.PRIVATE_KEY : CKO.SECRET_KEY
    const handles = yield* pkcs11.findObjects(session.handle, { class: objectClass })
    const labels = yield* Effect.forEach(handles, (handle) => pkcs11.getAttributes(session.handle, handle, ["label"]))
    const present = [...new Set(labels.flatMap(({ label }) => label === undefined || label === "" ? [] : [label]))]
    // By code unit, not by locale: the same order on every machine.
    return { reason: "absent", present: present.sort((a, b) => a < b ? -1 : a > b ? 1 : 0) }
  })

/**
 * The one object a template finds: `KeyAmbiguous` when several match, `KeyNotFound` when none does, with
 * the reason and, for an absent key, the labels of the keys of its kind that are there.
 */
export const findOne = (
  session: Session,
  template: Attributes,
  query: string,
  kind: KeyKind
): Effect.Effect<ObjectHandle, KeyAmbiguous | KeyNotFound | Pkcs11Failure> =>
  Effect.gen(function*() {
    const found = yield* session.pkcs11.findObjects(session.handle, template)
    if (found.length === 1) return found[0]
    if (found.length > 1) return yield* new KeyAmbiguous({ query, token: session.token.label, count: found.length })
    const { present, reason } = yield* missing(session, template, kind)
    return yield* new KeyNotFound({ query, token: session.token.label, kind, reason, present })
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
