import { CKM } from "@hsmkey/pkcs11/Constants"
import type { LibraryInfo, MechanismInfo, Pkcs11, SlotId } from "@hsmkey/pkcs11/Pkcs11"
import type { Pkcs11Failure } from "@hsmkey/pkcs11/Pkcs11Error"
import * as Effect from "effect/Effect"
import * as Algorithms from "./algorithms.js"
import type * as KeyTypes from "./keyTypes.js"

/**
 * What a token can do, as its mechanism list and mechanism information say, with what is known of its
 * library beyond them. Every decision about what a token can do is made from this, never by trying.
 */
export interface TokenMechanisms {
  readonly list: ReadonlySet<number>
  /** `C_GetMechanismInfo` of the mechanisms hsmkey uses, where the token answered. */
  readonly info: ReadonlyMap<number, MechanismInfo>
  /** The RSA-OAEP variants whose parameters the token accepts. */
  readonly oaep: ReadonlySet<Algorithms.KeyManagementAlgorithm>
}

// The mechanisms whose key size ranges matter: key generation and what signs or decrypts.
const sized: ReadonlyArray<number> = [
  CKM.RSA_PKCS_KEY_PAIR_GEN,
  CKM.EC_KEY_PAIR_GEN,
  CKM.EC_EDWARDS_KEY_PAIR_GEN,
  CKM.RSA_PKCS_OAEP,
  ...new Set(Object.values(Algorithms.specs).flatMap((spec) => spec.candidates.map((c) => c.mechanism.type)))
]

/**
 * RSA-OAEP variants a library takes, beyond what its mechanism list says. SoftHSM2 2.6 lists
 * CKM_RSA_PKCS_OAEP but refuses any hash but SHA-1 at C_DecryptInit (CKR_ARGUMENTS_BAD, measured).
 */
const oaepOf = (library: LibraryInfo): ReadonlySet<Algorithms.KeyManagementAlgorithm> =>
  library.manufacturerId === "SoftHSM" && library.libraryVersion.startsWith("2.")
    ? new Set(["RSA-OAEP"])
    : new Set(Algorithms.keyManagementAlgorithms)

/**
 * Reads a token's mechanisms: the list, the information of those hsmkey uses, and its library's.
 */
export const read = (
  pkcs11: Pkcs11.Service,
  slot: SlotId
): Effect.Effect<TokenMechanisms, Pkcs11Failure> =>
  Effect.gen(function*() {
    const list = new Set(yield* pkcs11.mechanisms(slot))
    const library = yield* pkcs11.info
    const info = new Map<number, MechanismInfo>()
    for (const type of sized) {
      if (!list.has(type)) continue
      // A token that lists a mechanism but will not describe it is taken at its list's word.
      const described = yield* Effect.option(pkcs11.mechanismInfo(slot, type))
      if (described._tag === "Some") info.set(type, described.value)
    }
    return { list, info, oaep: list.has(CKM.RSA_PKCS_OAEP) ? oaepOf(library) : new Set() }
  })

/** Whether the mechanism takes keys of `size` bits; a range the token leaves at 0 sets no bound. */
const takes = (mechanisms: TokenMechanisms, type: number, size: number | undefined): boolean => {
  if (!mechanisms.list.has(type)) return false
  const info = mechanisms.info.get(type)
  if (size === undefined || info === undefined || info.maxKeySize === 0) return true
  return size >= info.minKeySize && size <= info.maxKeySize
}

/** The first way of computing `alg` that the token lists (and that takes keys of `size`, when known). */
export const signingCandidate = (
  mechanisms: TokenMechanisms,
  alg: Algorithms.Algorithm,
  size?: number
): Algorithms.Candidate | undefined =>
  Algorithms.specs[alg].candidates.find((candidate) => takes(mechanisms, candidate.mechanism.type, size))

/** The JWS algorithms a key of this type and size signs with on the token. */
export const algorithmsFor = (
  mechanisms: TokenMechanisms,
  keyType: Algorithms.KeyType,
  bits: number,
  size: number
): ReadonlyArray<Algorithms.Algorithm> =>
  Algorithms.algorithms.filter((alg) =>
    Algorithms.fits(alg, keyType, bits) && signingCandidate(mechanisms, alg, size) !== undefined
  )

/**
 * The mechanisms that would sign (`"sig"`) or decrypt (`"enc"`) with a key of this type and size, and
 * whether the token offers any of them. Independent of JOSE's size rules (RS* wants 2048 bits at least):
 * those are checked when a key signs.
 */
export const usability = (
  mechanisms: TokenMechanisms,
  keyType: Exclude<Algorithms.KeyType, "oct">,
  size: number,
  use: "sig" | "enc"
): { readonly usable: boolean; readonly wanted: ReadonlyArray<number> } => {
  const wanted = use === "enc"
    ? [CKM.RSA_PKCS_OAEP]
    : [
      ...new Set(
        Algorithms.algorithms.flatMap((alg) =>
          Algorithms.specs[alg].keyTypes.includes(keyType) ? candidatesOf(alg) : []
        )
      )
    ]
  const usable = use === "enc"
    ? keyType === "RSA" && mechanisms.oaep.size > 0 && takes(mechanisms, CKM.RSA_PKCS_OAEP, size)
    : wanted.some((type) => takes(mechanisms, type, size))
  return { usable, wanted }
}

/** The JWE key management algorithms an RSA key of `bits` decrypts with on the token. */
export const keyManagementFor = (
  mechanisms: TokenMechanisms,
  bits: number
): ReadonlyArray<Algorithms.KeyManagementAlgorithm> =>
  Algorithms.keyManagementAlgorithms.filter((alg) =>
    mechanisms.oaep.has(alg) && bits >= Algorithms.MIN_RSA_BITS && takes(mechanisms, CKM.RSA_PKCS_OAEP, bits)
  )

export const SECRET_GENERATION = CKM.GENERIC_SECRET_KEY_GEN

/** Whether the token generates HMAC secrets. */
export const generatesSecrets = (mechanisms: TokenMechanisms): boolean => mechanisms.list.has(SECRET_GENERATION)

/** Whether the token generates keys of this type. */
export const generates = (mechanisms: TokenMechanisms, spec: KeyTypes.Spec): boolean =>
  takes(mechanisms, spec.generation, spec.size)

/** The mechanisms that would compute an algorithm, by name, for a message saying none is there. */
export const candidatesOf = (alg: Algorithms.Algorithm): ReadonlyArray<number> =>
  Algorithms.specs[alg].candidates.map((candidate) => candidate.mechanism.type)
