import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as PlatformError from "@effect/platform/Error"
import * as Terminal from "@effect/platform/Terminal"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * Node's terminal with prompts drawn on stderr rather than stdout: stdout carries results only (a token,
 * a JWKS, `--json`), so that `hsmkey sign ... > token.jwt` still prompts for the PIN on the screen.
 */
export const layer: Layer.Layer<Terminal.Terminal> = Layer.scoped(
  Terminal.Terminal,
  Effect.map(NodeTerminal.make(), (base) =>
    Terminal.Terminal.of({
      ...base,
      columns: Effect.sync(() => process.stderr.columns ?? 0),
      rows: Effect.sync(() => process.stderr.rows ?? 0),
      isTTY: Effect.sync(() => process.stderr.isTTY === true && process.stdin.isTTY === true),
      display: (text) =>
        Effect.async<void, PlatformError.PlatformError>((resume) => {
          process.stderr.write(text, (error) =>
            resume(
              error === null || error === undefined
                ? Effect.void
                : Effect.fail(
                  new PlatformError.BadArgument({
                    module: "Terminal",
                    method: "display",
                    description: "cannot write the prompt to stderr",
                    cause: error
                  })
                )
            ))
        }).pipe(Effect.uninterruptible)
    }))
)

/** Whether prompts can be answered: stdin and stderr are both a terminal. */
export const interactive = (): boolean => process.stdin.isTTY === true && process.stderr.isTTY === true
