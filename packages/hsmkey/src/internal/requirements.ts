import { mechanismName } from "@hsmkey/pkcs11/Constants"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import { MechanismUnsupported } from "../HsmError.js"
import type * as Algorithms from "./algorithms.js"
import type * as KeyTypes from "./keyTypes.js"
import * as MechanismSupport from "./mechanismSupport.js"
import type { Session } from "./session.js"
import type { Use } from "./templates.js"
import * as TokenState from "./tokenState.js"

/**
 * What the token must offer before a key is made in it, decided from its (cached) mechanism list: a key
 * the token could never use is refused before anything is created.
 */
export const keyUse = (
  session: Session,
  operation: "generate" | "import",
  described: string,
  keyType: Exclude<Algorithms.KeyType, "oct">,
  size: number,
  use: Use
): Effect.Effect<void, MechanismUnsupported | Pkcs11Failure> =>
  Effect.flatMap(TokenState.mechanisms(session), (mechanisms) => {
    const { usable, wanted } = MechanismSupport.usability(mechanisms, keyType, size, use)
    return usable ? Effect.void : Effect.fail(
      new MechanismUnsupported({
        operation,
        keyType: described,
        token: session.token.label,
        mechanisms: wanted.map(mechanismName)
      })
    )
  })

/** A key pair the token generates, and can then use. */
export const keyGeneration = (
  session: Session,
  spec: KeyTypes.Spec,
  use: Use
): Effect.Effect<void, MechanismUnsupported | Pkcs11Failure> =>
  Effect.flatMap(TokenState.mechanisms(session), (mechanisms) =>
    MechanismSupport.generates(mechanisms, spec)
      ? keyUse(session, "generate", spec.type, spec.keyType, spec.size, use)
      : Effect.fail(
        new MechanismUnsupported({
          operation: "generate",
          keyType: spec.type,
          token: session.token.label,
          mechanisms: [mechanismName(spec.generation)]
        })
      ))

/** An HMAC secret the token MACs with (and generates, for `generate`). */
export const hmac = (
  session: Session,
  alg: Algorithms.HmacAlgorithm,
  operation: "generate" | "import"
): Effect.Effect<void, MechanismUnsupported | Pkcs11Failure> =>
  Effect.flatMap(TokenState.mechanisms(session), (mechanisms) => {
    const missing = [
      ...(operation === "generate" && !MechanismSupport.generatesSecrets(mechanisms)
        ? [MechanismSupport.SECRET_GENERATION]
        : []),
      ...MechanismSupport.candidatesOf(alg).filter((type) => !mechanisms.list.has(type))
    ]
    return missing.length === 0 ? Effect.void : Effect.fail(
      new MechanismUnsupported({
        operation,
        keyType: `${alg} secret`,
        token: session.token.label,
        mechanisms: missing.map(mechanismName)
      })
    )
  })
