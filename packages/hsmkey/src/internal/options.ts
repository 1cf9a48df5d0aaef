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
