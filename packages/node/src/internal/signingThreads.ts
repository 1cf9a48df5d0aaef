import { CryptokiError } from "@hsmkey/pkcs11/Pkcs11Driver"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import type pkcs11js from "pkcs11js"
import * as Registry from "./registry.js"
import type { Answer, Batch } from "./signingThread.js"

/** A signing thread failed (it exited, or threw): its batch is answered by this, not by the token. */
export class ThreadFailed extends Error {
  readonly _tag = "ThreadFailed"
}

interface Thread {
  readonly worker: Worker
  /** Loaded and listening: until then its batches are signed on the threadpool instead. */
  ready: boolean
  readonly pending: Map<number, {
    readonly resolve: (answer: Answer) => void
    readonly reject: (error: ThreadFailed) => void
  }>
}

// Built, the thread is the `.js` beside this file. From source (tests, tsx) it is the `.ts`, loaded through
// tsx's loader, registered in the thread first (a worker takes no `--import`).
const startWorker = (workerData: unknown): Worker => {
  const built = new URL("./signingThread.js", import.meta.url)
  if (Fs.existsSync(fileURLToPath(built))) return new Worker(built, { workerData })
  const source = new URL("./signingThread.ts", import.meta.url).href
  const bootstrap = `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}) })`
  return new Worker(bootstrap, { eval: true, workerData })
}

/**
 * The signing threads of one loaded library, started on first use and stopped before it is finalized
 * (no batch is in flight then: each counts as a native call).
 */
export const make = (module: Registry.Module) => {
  const threads = new Map<number, Thread>()
  let nextId = 0

  const stop = (index: number, thread: Thread, error: ThreadFailed) => {
    if (threads.get(index) === thread) threads.delete(index)
    for (const waiter of thread.pending.values()) waiter.reject(error)
    thread.pending.clear()
  }

  const start = (index: number): Thread => {
    const worker = startWorker({ modulePath: module.realPath })
    // A thread waiting for batches keeps nothing alive.
    worker.unref()
    const thread: Thread = { worker, ready: false, pending: new Map() }
    worker.on("message", (answer: Answer | { readonly ready: true }) => {
      if ("ready" in answer) {
        thread.ready = true
        return
      }
      const waiter = thread.pending.get(answer.id)
      if (waiter === undefined) return
      thread.pending.delete(answer.id)
      if (thread.pending.size === 0) worker.unref()
      waiter.resolve(answer)
    })
    worker.on("error", (error) => stop(index, thread, new ThreadFailed(`signing thread failed: ${error.message}`)))
    worker.on("exit", (code) => stop(index, thread, new ThreadFailed(`signing thread exited with code ${code}`)))
    threads.set(index, thread)
    return thread
  }

  module.stopThreads = () => {
    if (threads.size === 0) return undefined
    const exits = [...threads].map(([index, thread]) => {
      stop(index, thread, new ThreadFailed("the library is closing"))
      return thread.worker.terminate().then(() => undefined)
    })
    return Promise.all(exits).then(() => undefined)
  }

  /**
   * Signs `items` in `session` on thread `index`, in order: a signature or the library's refusal each;
   * `undefined` while the thread is still starting (it is started on first use).
   */
  const signBatch = (
    index: number,
    session: number,
    items: ReadonlyArray<{ readonly mechanism: pkcs11js.Mechanism; readonly key: number; readonly data: Uint8Array }>
  ): Promise<ReadonlyArray<Uint8Array | CryptokiError>> | undefined => {
    const thread = threads.get(index) ?? start(index)
    if (!thread.ready) return undefined
    return Registry.inflight(module, () =>
      new Promise<Answer>((resolve, reject) => {
        const id = nextId++
        thread.pending.set(id, { resolve, reject })
        thread.worker.ref()
        const batch: Batch = { id, session, items }
        thread.worker.postMessage(batch)
      }).then((answer) =>
        answer.results.map((result) => result instanceof Uint8Array ? result : new CryptokiError("C_Sign", result.code))
      ))
  }

  const terminate = (index: number): Promise<void> => {
    const thread = threads.get(index)
    return thread === undefined ? Promise.resolve() : thread.worker.terminate().then(() => undefined)
  }

  const ready = () => [...threads.values()].filter((thread) => thread.ready).length
  const threads_ = { signBatch, terminate, ready }
  byLibrary.set(module.realPath, threads_)
  return threads_
}

const byLibrary = new Map<string, {
  readonly terminate: (index: number) => Promise<void>
  readonly ready: () => number
}>()

/** How many signing threads of the library at `realPath` are loaded and listening: for tests. */
export const ready = (realPath: string): number => byLibrary.get(realPath)?.ready() ?? 0

/** Ends signing thread `index` of the library at `realPath` as a crash would: for tests. */
export const terminate = (realPath: string, index: number): Promise<void> =>
  byLibrary.get(realPath)?.terminate(index) ?? Promise.resolve()
