#!/usr/bin/env node
/**
 * The `hsmkey` executable.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cli from "./Cli.js"
import * as ExitCode from "./ExitCode.js"

// A reader that goes away (`hsmkey jwks | head`) is no failure: what is left to print is dropped.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error
})

Cli.run(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    // run answers with the exit code; only an interruption (Ctrl-C, SIGTERM) ends it otherwise.
    teardown: (exit, onExit) =>
      onExit(
        Exit.isSuccess(exit) && typeof exit.value === "number"
          ? exit.value
          : ExitCode.codeOf(Exit.isInterrupted(exit) ? "interrupted" : "unexpected")
      )
  })
)
