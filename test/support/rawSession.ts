import { Pkcs11 } from "@hsmkey/pkcs11"
import { Effect, type Scope } from "effect"

/** A Cryptoki session of the test's own, beside hsmkey's: to look at or change the token behind its back. */
export interface RawSession {
  readonly pkcs11: Pkcs11.Pkcs11.Service
  readonly handle: Pkcs11.SessionHandle
  readonly slotId: Pkcs11.SlotId
}

/**
 * A session opened with the raw `Pkcs11` service on the token with this serial number, closed with the
 * scope. It is logged in when a pool with the PIN is up (login belongs to the token).
 */
export const sessionOn = (
  serialNumber: string,
  options: { readonly rw?: boolean } = {}
): Effect.Effect<RawSession, unknown, Pkcs11.Pkcs11 | Scope.Scope> =>
  Effect.gen(function*() {
    const pkcs11 = yield* Pkcs11.Pkcs11
    let slotId: Pkcs11.SlotId | undefined
    for (const slot of yield* pkcs11.slots()) {
      if ((yield* pkcs11.tokenInfo(slot)).serialNumber === serialNumber) slotId = slot
    }
    if (slotId === undefined) return yield* Effect.dieMessage(`no token with serial ${serialNumber}`)
    const slot = slotId
    const handle = yield* Effect.acquireRelease(
      pkcs11.openSession(slot, { rw: options.rw === true }),
      (handle) => Effect.ignore(pkcs11.closeSession(handle))
    )
    return { pkcs11, handle, slotId: slot }
  })
