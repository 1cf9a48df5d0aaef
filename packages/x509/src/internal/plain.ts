/**
 * Copies of what a caller gave as plain data, read once.
 */

/** More entries than any subject or subjectAltName list a CA takes: refused before anything is parsed. */
export const MAX_ENTRIES = 1024

/** What `copy` returns for an array or a record of more than `MAX_ENTRIES` entries. */
export class TooLarge {
  constructor(readonly entries: number) {}
}

/**
 * A copy of strings, arrays and records of them, `depth` containers deep: a container deeper than that
 * becomes `{}`, which no parser takes for a string. Getters and proxies are read here, once; what they
 * throw, this throws.
 */
export const copy = (u: unknown, depth: number): unknown => {
  if (typeof u !== "object" || u === null) return u
  if (depth === 0) return {}
  if (Array.isArray(u)) {
    if (u.length > MAX_ENTRIES) return new TooLarge(u.length)
    const out: Array<unknown> = []
    for (let i = 0; i < u.length; i++) {
      const item = copy(u[i], depth - 1)
      if (item instanceof TooLarge) return item
      out.push(item)
    }
    return out
  }
  const names = Object.keys(u)
  if (names.length > MAX_ENTRIES) return new TooLarge(names.length)
  const entries: Array<[string, unknown]> = []
  for (const name of names) {
    const item = copy((u as Record<string, unknown>)[name], depth - 1)
    if (item instanceof TooLarge) return item
    entries.push([name, item])
  }
  // Own data properties, "__proto__" too: an assignment would set the prototype instead.
  return Object.fromEntries(entries)
}
