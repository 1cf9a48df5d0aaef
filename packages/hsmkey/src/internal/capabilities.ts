import { mechanismName } from "@hsmkey/pkcs11/Constants"
import type { Pkcs11, SlotId, TokenInfo } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import type * as Capabilities from "../Capabilities.js"
import * as Algorithms from "./algorithms.js"
import * as KeyTypes from "./keyTypes.js"
import * as MechanismSupport from "./mechanismSupport.js"

/**
 * The capabilities of a token from its mechanisms, as hsmkey reads them.
 */
export const fromMechanisms = (
  info: TokenInfo,
  moduleId: string,
  mechanisms: MechanismSupport.TokenMechanisms
): Capabilities.Capabilities => {
  const signing = Algorithms.algorithms.flatMap((alg): ReadonlyArray<Capabilities.Signing> => {
    const candidate = MechanismSupport.signingCandidate(mechanisms, alg)
    return candidate === undefined ? [] : [{ alg, mechanism: mechanismName(candidate.mechanism.type) }]
  })
  const keyTypes = KeyTypes.generateTypes.map((type): Capabilities.KeyType => {
    const spec = KeyTypes.specs[type]
    const bits = spec.keyType === "RSA" ? spec.size : Algorithms.curveBits[spec.keyType]
    const algorithms = MechanismSupport.algorithmsFor(mechanisms, spec.keyType, bits, spec.size)
    const decryption = spec.keyType === "RSA" ? MechanismSupport.keyManagementFor(mechanisms, bits) : []
    const usable = algorithms.length > 0 || decryption.length > 0
    return {
      type,
      generate: usable && MechanismSupport.generates(mechanisms, spec) ? mechanismName(spec.generation) : undefined,
      import: usable,
      signing: algorithms,
      decryption
    }
  })
  const hmac = signing.flatMap(({ alg }) => Algorithms.isHmac(alg) ? [alg] : [])
  return {
    token: {
      label: info.label,
      serialNumber: info.serialNumber,
      moduleId,
      model: info.model,
      manufacturerId: info.manufacturerId
    },
    mechanisms: [...mechanisms.list].map(mechanismName),
    signing,
    decryption: [...mechanisms.oaep].map((alg) => ({ alg, mechanism: mechanismName(Algorithms.oaep[alg].type) })),
    keyTypes,
    secrets: {
      generate: hmac.length > 0 && MechanismSupport.generatesSecrets(mechanisms)
        ? mechanismName(MechanismSupport.SECRET_GENERATION)
        : undefined,
      import: hmac.length > 0,
      signing: hmac
    }
  }
}

/**
 * Reads the capabilities of the token in a slot.
 */
export const read = (
  pkcs11: Pkcs11.Service,
  slot: SlotId,
  info: TokenInfo
): Effect.Effect<Capabilities.Capabilities, Pkcs11Failure> =>
  Effect.map(MechanismSupport.read(pkcs11, slot), (mechanisms) => fromMechanisms(info, pkcs11.moduleId, mechanisms))
