import { Tracer } from "effect"

/** A span as the recording tracer saw it: its name, attributes and parent. */
export interface RecordedSpan {
  readonly name: string
  readonly spanId: string
  readonly parentId: string | undefined
  readonly attributes: Map<string, unknown>
}

/**
 * A tracer that records every span it is asked for, as an application's tracer (OpenTelemetry's) would
 * receive them, for tests of what hsmkey reports.
 */
export const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const spanId = `${spans.length}`
      const attributes = new Map<string, unknown>()
      spans.push({ name, spanId, parentId: parent._tag === "Some" ? parent.value.spanId : undefined, attributes })
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
        end: () => {},
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
}
