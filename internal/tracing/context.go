package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// pair is a TextMapCarrier of exactly the two W3C headers.
type pair struct{ traceparent, tracestate string }

func (p *pair) Get(key string) string {
	switch key {
	case "traceparent":
		return p.traceparent
	case "tracestate":
		return p.tracestate
	}
	return ""
}

func (p *pair) Set(key, value string) {
	switch key {
	case "traceparent":
		p.traceparent = value
	case "tracestate":
		p.tracestate = value
	}
}

func (p *pair) Keys() []string { return []string{"traceparent", "tracestate"} }

// SpanContext returns the remote span context a stored traceparent and
// tracestate describe; it is invalid (IsValid false) when traceparent is
// empty or malformed.
func SpanContext(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), &pair{traceparent, tracestate})
	return trace.SpanContextFromContext(ctx)
}

// ContextWithRemote returns ctx carrying the remote span context of
// traceparent and tracestate as the parent of the next span started from it;
// ctx itself when traceparent is empty or malformed (the next span is then a
// root).
func ContextWithRemote(ctx context.Context, traceparent, tracestate string) context.Context {
	sc := SpanContext(traceparent, tracestate)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// Headers returns the traceparent and tracestate that make sc the parent of
// the receiver's spans; both empty when sc is invalid.
func Headers(sc trace.SpanContext) (traceparent, tracestate string) {
	if !sc.IsValid() {
		return "", ""
	}
	var p pair
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), &p)
	return p.traceparent, p.tracestate
}

// TraceID returns the 32-hex trace id of a W3C traceparent, or "" when it
// does not hold one: the trace_id of log lines.
func TraceID(traceparent string) string {
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' {
		return ""
	}
	return traceparent[3:35]
}

// LogTraceID is the trace_id to log for work done under ctx: the trace of the
// span ctx carries when there is one, else that of traceparent.
func LogTraceID(ctx context.Context, traceparent string) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return TraceID(traceparent)
}
