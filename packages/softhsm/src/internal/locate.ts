import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/**
 * The environment variable that names the SoftHSM2 library explicitly.
 */
export const MODULE_ENV = "SOFTHSM2_MODULE"

/**
 * Where distributions install SoftHSM2's PKCS#11 library, most common first.
 */
export const candidatePaths: ReadonlyArray<string> = [
  // Debian, Ubuntu
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
  // Fedora, RHEL
  "/usr/lib64/pkcs11/libsofthsm2.so",
  "/usr/lib64/softhsm/libsofthsm2.so",
  "/usr/lib/pkcs11/libsofthsm2.so",
  // Homebrew (Apple silicon, Intel), source builds
  "/opt/homebrew/lib/softhsm/libsofthsm2.so",
  "/usr/local/lib/softhsm/libsofthsm2.so",
  "/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so"
]

export const installAdvice =
  "install SoftHSM2 (Debian/Ubuntu: apt-get install softhsm2; Fedora: dnf install softhsm; " +
  `macOS: brew install softhsm) or set ${MODULE_ENV} to the path of libsofthsm2.so`

/**
 * The SoftHSM2 library: the explicit path, then `SOFTHSM2_MODULE`, then the usual install locations.
 * Fails with the paths looked at when none exists.
 */
export const locate = (
  explicit: string | undefined
): Effect.Effect<string, ReadonlyArray<string>, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const fromEnv = process.env[MODULE_ENV]
    const candidates = explicit !== undefined
      ? [explicit]
      : fromEnv !== undefined && fromEnv !== ""
      ? [fromEnv]
      : candidatePaths
    const found = yield* Effect.findFirst(candidates, (path) => fs.exists(path).pipe(Effect.orElseSucceed(() => false)))
    return yield* Option.match(found, { onNone: () => Effect.fail(candidates), onSome: Effect.succeed })
  })
