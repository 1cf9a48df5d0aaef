import * as Effect from "effect/Effect"
import { CliError } from "../CliError.js"

const MAX_BYTES = 16 * 1024 * 1024

/** All of stdin, when it is not a terminal; `undefined` on a terminal, where nobody means to type a payload. */
export const stdin: Effect.Effect<Uint8Array | undefined, CliError> = Effect.suspend(() => {
  if (process.stdin.isTTY === true) return Effect.succeed(undefined)
  return Effect.async<Uint8Array, CliError>((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BYTES) {
        cleanup()
        resume(Effect.fail(
          new CliError({ exitClass: "usage", detail: `stdin holds more than ${MAX_BYTES} bytes`, hint: undefined })
        ))
      } else chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(new Uint8Array(Buffer.concat(chunks))))
    }
    const onError = (error: Error) => {
      cleanup()
      resume(Effect.fail(new CliError({ exitClass: "io", detail: `cannot read stdin: ${error.message}` })))
    }
    const cleanup = () => {
      process.stdin.off("data", onData)
      process.stdin.off("end", onEnd)
      process.stdin.off("error", onError)
      process.stdin.pause()
    }
    process.stdin.on("data", onData)
    process.stdin.on("end", onEnd)
    process.stdin.on("error", onError)
    process.stdin.resume()
    return Effect.sync(cleanup)
  })
})

/** Parses JSON the user gave, naming where it came from when it is none. */
export const parseJson = (text: string, where: string): Effect.Effect<unknown, CliError> =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (error) =>
      new CliError({
        exitClass: "usage",
        detail: `${where} is not JSON: ${error instanceof Error ? error.message : String(error)}`
      })
  })
