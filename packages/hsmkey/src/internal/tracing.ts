import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Predicate from "effect/Predicate"
import * as Tracer from "effect/Tracer"

// The tracer a fiber has when the application installed none: its spans go nowhere.
const builtInTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** Whether the fiber's spans reach a tracer of the application's (`@effect/opentelemetry`, `Layer.setTracer`). */
export const isTraced = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean => fiber.currentTracer !== builtInTracer

/**
 * A span around what runs once per signature, made only when the application traces: under Effect's
 * built-in tracer no one can read it, and it would cost more than the token's work (a span updates the
 * fiber's context twice). `body` gets the fiber, for the code that reads its context directly.
 */
export const spanned = <A, E, R>(
  name: string,
  options: () => Tracer.SpanOptions,
  body: (fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) =>
    isTraced(fiber) ? Effect.withSpan(Effect.withFiberRuntime(body), name, options()) : body(fiber)
  )

/** `Effect.withSpan` for what runs once per signature: as `spanned`, for an effect built already. */
export const withSpan =
  (name: string, options: Tracer.SpanOptions) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    spanned(name, () => options, () => self)

/**
 * The span options of an operation on a key: its `kid`, read only from a value that has one, for a
 * JavaScript caller may pass anything and the key is checked inside the operation.
 */
export const onKey = (key: unknown): Tracer.SpanOptions =>
  Predicate.hasProperty(key, "kid") && typeof key.kid === "string"
    ? { attributes: { "hsm.kid": key.kid }, captureStackTrace: false }
    : { captureStackTrace: false }
