/**
 * A signing thread: its own pkcs11js instance over the library the process initialized (a second load of
 * one path shares its state: sessions, handles and the token's login are the process's), signing the
 * batches it is sent synchronously, one `C_SignInit` + `C_Sign` per item, in sessions the pool opened and
 * lent to it. It never initializes or finalizes the library: the main thread does, once no batch is in
 * flight.
 */
import { createRequire } from "node:module"
import { parentPort, workerData } from "node:worker_threads"
import type pkcs11js from "pkcs11js"

/** One batch: items signed in order, all in one session. */
export interface Batch {
  readonly id: number
  readonly session: number
  readonly items: ReadonlyArray<{
    readonly mechanism: pkcs11js.Mechanism
    readonly key: number
    readonly data: Uint8Array
  }>
}

/** For each item, its signature or the return value that refused it. */
export interface Answer {
  readonly id: number
  readonly results: ReadonlyArray<Uint8Array | { readonly code: number }>
}

const LARGE_SIGNATURE_BUFFER = 16384
const BUFFER_TOO_SMALL = 0x150

const { modulePath } = workerData as { readonly modulePath: string }
const api = createRequire(import.meta.url)("pkcs11js") as typeof pkcs11js
const library = new api.PKCS11()
library.load(modulePath)

const handle = (n: number): Buffer => {
  const buffer = Buffer.alloc(8)
  buffer.writeBigUInt64LE(BigInt(n))
  return buffer
}

const output = Buffer.alloc(1024)

const codeOf = (error: unknown): number | undefined => {
  if (error instanceof api.Pkcs11Error && typeof error.code === "number") return error.code
  return undefined
}

const signOne = (session: Buffer, item: Batch["items"][number]): Uint8Array | { readonly code: number } => {
  try {
    library.C_SignInit(session, item.mechanism, handle(item.key))
    const input = Buffer.from(item.data.buffer, item.data.byteOffset, item.data.byteLength)
    try {
      return new Uint8Array(library.C_Sign(session, input, output))
    } catch (error) {
      // A buffer too small leaves the operation active until a call with room enough.
      if (codeOf(error) !== BUFFER_TOO_SMALL) throw error
      return new Uint8Array(library.C_Sign(session, input, Buffer.alloc(LARGE_SIGNATURE_BUFFER)))
    }
  } catch (error) {
    const code = codeOf(error)
    // Anything but the library's answer is a bug: it ends the thread, and the pool sees the thread exit.
    if (code === undefined) throw error
    return { code }
  }
}

// Loaded: batches may come.
parentPort!.postMessage({ ready: true })

parentPort!.on("message", (batch: Batch) => {
  const session = handle(batch.session)
  const answer: Answer = { id: batch.id, results: batch.items.map((item) => signOne(session, item)) }
  parentPort!.postMessage(answer)
})
