import { Tracer } from "effect"

/** A span as the recording tracer saw it: its name, attributes and parent. */
export interface RecordedSpan {
  readonly name: string
  readonly spanId: string
  readonly parentId: string | undefined
  readonly attributes: Map<string, unknown>
}

/** What a tracer made by `observingTracer` tells about its spans. */
export interface SpanObserver {
  readonly started?: (span: RecordedSpan) => void
  readonly ended?: (span: RecordedSpan) => void
  readonly event?: (name: string, attributes: Record<string, unknown> | undefined) => void
}

/**
 * A tracer that hands every span it is asked for, as an application's tracer (OpenTelemetry's) would
 * receive them, to `observer`.
 */
export const observingTracer = (observer: SpanObserver): Tracer.Tracer => {
  let spans = 0
  return Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const spanId = `${spans++}`
      const attributes = new Map<string, unknown>()
      const recorded = { name, spanId, parentId: parent._tag === "Some" ? parent.value.spanId : undefined, attributes }
      observer.started?.(recorded)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId,
        traceId: "trace",
        parent,
        context,
        links: [...links],
        kind,
        status: { _tag: "Started", startTime },
        attributes,
        sampled: true,
        end: () => observer.ended?.(recorded),
        attribute: (key, value) => void attributes.set(key, value),
        event: (name, _startTime, attributes) => observer.event?.(name, attributes),
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
}

/**
 * A tracer that records every span it is asked for, for tests of what hsmkey reports.
 */
export const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  return { spans, tracer: observingTracer({ started: (span) => void spans.push(span) }) }
}
