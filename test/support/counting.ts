import { Pkcs11 } from "@hsmkey/pkcs11"
import { Context, Effect, Layer } from "effect"

export interface Counts {
  /** Sessions open now through this service. */
  open: number
  /** The most open at once since the last `reset`. */
  peak: number
  /** `C_Login` calls, whatever their outcome. */
  logins: number
  readonly reset: () => void
}

/**
 * What the code under test asked of the token, counted on the way to it: works on every backend.
 */
export class Calls extends Context.Tag("test/Calls")<Calls, Counts>() {}

/**
 * Wraps the `Pkcs11` in context with a counting proxy, and provides the counts as `Calls`.
 */
export const counting: Layer.Layer<Pkcs11.Pkcs11 | Calls, never, Pkcs11.Pkcs11> = Layer.effectContext(
  Effect.map(Pkcs11.Pkcs11, (inner) => {
    const counts: Counts = {
      open: 0,
      peak: 0,
      logins: 0,
      reset: () => {
        counts.peak = counts.open
        counts.logins = 0
      }
    }
    const service: Pkcs11.Pkcs11.Service = {
      ...inner,
      openSession: (slot, options) =>
        Effect.tap(inner.openSession(slot, options), () => {
          counts.open++
          counts.peak = Math.max(counts.peak, counts.open)
        }),
      closeSession: (session) => Effect.tap(inner.closeSession(session), () => counts.open--),
      login: (session, pin, userType) =>
        Effect.suspend(() => {
          counts.logins++
          return inner.login(session, pin, userType)
        })
    }
    return Context.make(Pkcs11.Pkcs11, service).pipe(Context.add(Calls, counts))
  })
)
