import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import { InvalidOptions, UnsupportedAlgorithm } from "../HsmError.js"

/**
 * What a value a caller or a peer gave is, for a message: its kind only, never its content, which may be a
 * PIN (`soPin: 12345678`), a secret or a megabyte, and never its own `toString`, which may throw.
 */
export const kindOf = (u: unknown): string =>
  u === null || u === undefined
    ? String(u)
    : Array.isArray(u)
    ? "an array"
    : typeof u === "object"
    ? "an object"
    : `a ${typeof u}`

const MAX_SHOWN = 64

/**
 * A name a caller or a peer gave (an algorithm, a curve, a kid source), as an error's field holds it: the
 * text cut short, or the kind of what is not text.
 */
export const nameOf = (u: unknown): string =>
  typeof u !== "string" ? kindOf(u) : u.length > MAX_SHOWN ? `${u.slice(0, MAX_SHOWN)}…` : u

/** The same, for a message: text quoted and escaped, so that no control character reaches a log line. */
export const shown = (u: unknown): string => typeof u === "string" ? JSON.stringify(nameOf(u)) : kindOf(u)

/**
 * A rule of one option: what a value must be, and how a value that is not is described (its kind by
 * default: an option may be a PIN).
 */
export interface Rule {
  readonly is: (u: unknown) => boolean
  readonly expected: string
  readonly required: boolean
  readonly describe: (u: unknown) => string
}

/** An option that may be absent. */
export const optional = (is: (u: unknown) => boolean, expected: string, describe = kindOf): Rule => ({
  is,
  expected,
  required: false,
  describe
})

/** An option that must be there. */
export const required = (is: (u: unknown) => boolean, expected: string, describe = kindOf): Rule => ({
  is,
  expected,
  required: true,
  describe
})

/** An optional name among a few: a wrong one is shown (cut short), for it is a name, not a secret. */
export const oneOf = (names: ReadonlyArray<string>): Rule => {
  const quoted = names.map((name) => JSON.stringify(name))
  return optional((u) => names.includes(u as string), `${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`, shown)
}

/**
 * Why options are not what an operation takes, or `undefined`: an object (`undefined` too when `absent`
 * is allowed) whose members follow `rules`. Plain code that allocates nothing when the options pass,
 * for `Jws.sign` checks its options at every signature.
 */
export const problem = (
  what: string,
  options: unknown,
  rules: { readonly [name: string]: Rule },
  absent: "allowed" | "refused" = "refused"
): InvalidOptions | undefined => {
  if (options === undefined && absent === "allowed") return undefined
  if (!Predicate.isRecord(options)) {
    return new InvalidOptions({ detail: `${what} must be an object, not ${kindOf(options)}` })
  }
  for (const name in rules) {
    const rule = rules[name]
    const value = options[name]
    if (value === undefined ? rule.required : !rule.is(value)) {
      return new InvalidOptions({ detail: `${name} must be ${rule.expected}, not ${rule.describe(value)}` })
    }
  }
  return undefined
}

/** A problem as an Effect, for the checks of operations written as generators. */
export const refuse = <E>(problem: E | undefined): Effect.Effect<void, E> =>
  problem === undefined ? Effect.void : Effect.fail(problem)

/** `UnsupportedAlgorithm` unless an algorithm a caller named is text that `known` takes. */
export const algorithmProblem = (alg: unknown, known: (alg: string) => boolean): UnsupportedAlgorithm | undefined =>
  typeof alg === "string" && known(alg) ? undefined : new UnsupportedAlgorithm({ alg: nameOf(alg) })

/** `InvalidOptions` unless a caller's key is the kind of key an operation takes (`expected`, as `is` says). */
export const keyProblem = (key: unknown, is: (u: unknown) => boolean, expected: string): InvalidOptions | undefined =>
  is(key) ? undefined : new InvalidOptions({ detail: `the key must be ${expected}, not ${kindOf(key)}` })
