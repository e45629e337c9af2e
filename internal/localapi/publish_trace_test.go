package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hyvve/sidecar/internal/relay"
)

const (
	appTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	appSpan  = "00f067aa0ba902b7"
	appTP    = "00-" + appTrace + "-" + appSpan + "-01"
)

// recordingPublisher keeps the trace context of every event it is handed and
// answers with result (Stream and StreamID filled in when it is empty).
type recordingPublisher struct {
	result relay.PublishResult

	mu     sync.Mutex
	stored []string // traceparent;tracestate of each published event
}

func (p *recordingPublisher) Publish(_ context.Context, reqs []relay.PublishRequest, res []relay.PublishResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range reqs {
		p.stored = append(p.stored, r.Event.TraceParent+";"+r.Event.TraceState)
		res[i] = p.result
		if res[i].Err == nil && res[i].Stream == "" {
			res[i].Stream, res[i].StreamID = "hyvve:events:{"+r.Event.TenantID+"}", "1-0"
		}
		res[i].EventID, res[i].CorrelationID = r.Event.ID, r.Event.CorrelationID
	}
}

// newPublishServer returns a local API (not serving; requests are handed to
// its handler directly) that publishes through pub.
func newPublishServer(t testing.TB, pub Publisher, log *slog.Logger) *Server {
	t.Helper()
	s, err := New(Options{Listen: "127.0.0.1:0", DefaultTenant: "acme", Source: "test", Logger: log}, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// publishRequest fills rc with POST /v1/events of body and headers.
func publishRequest(rc *fasthttp.RequestCtx, body string, headers map[string]string) {
	rc.Request.Reset()
	rc.Response.Reset()
	rc.Request.Header.SetMethod("POST")
	rc.Request.SetRequestURI("/v1/events")
	rc.Request.Header.SetContentType("application/json")
	for k, v := range headers {
		rc.Request.Header.Set(k, v)
	}
	rc.Request.SetBodyString(body)
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]any {
	m := map[attribute.Key]any{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.AsInterface()
	}
	return m
}

func TestPublish_producer_span_continues_the_apps_trace(t *testing.T) {
	tests := []struct {
		name        string
		headers     map[string]string
		result      relay.PublishResult
		wantStatus  int
		wantParent  bool
		wantSpan    string
		wantAttrs   map[attribute.Key]any
		wantErrSpan bool
	}{
		{
			name:    "child of the app's traceparent",
			headers: map[string]string{"traceparent": appTP, "tracestate": "vendor=x", "X-Correlation-Id": "corr-1"},
			result:  relay.PublishResult{}, wantStatus: 202, wantParent: true, wantSpan: "send hyvve:events:{acme}",
			wantAttrs: map[attribute.Key]any{"messaging.system": "redis", "messaging.operation.type": "send",
				"messaging.operation.name": "send", "messaging.destination.name": "hyvve:events:{acme}",
				"hyvve.tenant_id": "acme", "hyvve.correlation_id": "corr-1", "messaging.message.conversation_id": "corr-1",
				"hyvve.event_type": "approval.requested"},
		},
		{
			name:    "root without a traceparent",
			headers: map[string]string{"X-Correlation-Id": "corr-2"}, wantStatus: 202, wantSpan: "send hyvve:events:{acme}",
			wantAttrs: map[attribute.Key]any{"hyvve.correlation_id": "corr-2"},
		},
		{
			name:    "duplicate is marked",
			headers: map[string]string{"traceparent": appTP}, result: relay.PublishResult{Duplicate: true},
			wantStatus: 202, wantParent: true, wantSpan: "send hyvve:events:{acme}",
			wantAttrs: map[attribute.Key]any{"hyvve.duplicate": true},
		},
		{
			name:    "broker down is an error span",
			headers: map[string]string{"traceparent": appTP}, result: relay.PublishResult{Err: relay.ErrUnavailable},
			wantStatus: 503, wantParent: true, wantSpan: "send", wantErrSpan: true,
			wantAttrs: map[attribute.Key]any{"error.type": "broker_unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			pub := &recordingPublisher{result: tt.result}
			s := newPublishServer(t, TracedPublisher(pub, tp.Tracer("test")), nil)
			var rc fasthttp.RequestCtx
			publishRequest(&rc, `{"type":"approval.requested","data":{}}`, tt.headers)
			s.handle(&rc)
			if got := rc.Response.StatusCode(); got != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", got, tt.wantStatus, rc.Response.Body())
			}

			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			sp := spans[0]
			if sp.Name() != tt.wantSpan {
				t.Errorf("span name: got %q, want %q", sp.Name(), tt.wantSpan)
			}
			if sp.SpanKind() != trace.SpanKindProducer {
				t.Errorf("span kind: got %v, want producer", sp.SpanKind())
			}
			if tt.wantParent {
				if got := sp.Parent().SpanID().String(); got != appSpan || sp.SpanContext().TraceID().String() != appTrace {
					t.Errorf("parent: got %s in trace %s, want %s in %s", got, sp.SpanContext().TraceID(), appSpan, appTrace)
				}
			} else if sp.Parent().IsValid() {
				t.Errorf("parent: got %s, want a root span", sp.Parent().SpanID())
			}
			a := spanAttrs(sp)
			for k, w := range tt.wantAttrs {
				if a[k] != w {
					t.Errorf("attribute %s: got %v, want %v", k, a[k], w)
				}
			}
			var body map[string]any
			_ = json.Unmarshal(rc.Response.Body(), &body)
			if id, _ := body["id"].(string); tt.wantStatus == 202 && a["messaging.message.id"] != id {
				t.Errorf("messaging.message.id: got %v, want the event id %q", a["messaging.message.id"], id)
			}
			if gotErr := sp.Status().Code == codes.Error; gotErr != tt.wantErrSpan {
				t.Errorf("error status: got %v, want %v", gotErr, tt.wantErrSpan)
			}

			// What is stored is the PRODUCER span's context.
			sc := sp.SpanContext()
			wantState := ""
			if tt.headers["tracestate"] != "" {
				wantState = tt.headers["tracestate"]
			}
			want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01;" + wantState
			if len(pub.stored) != 1 || pub.stored[0] != want {
				t.Errorf("stored trace context: got %q, want [%q]", pub.stored, want)
			}
		})
	}
}

func TestPublish_batch_gets_one_producer_span_per_event(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pub := &recordingPublisher{}
	s := newPublishServer(t, TracedPublisher(pub, tp.Tracer("test")), nil)
	var rc fasthttp.RequestCtx
	publishRequest(&rc, `{"events":[{"type":"a.b"},{"type":"a.c"},{"type":"BAD"}]}`, map[string]string{"traceparent": appTP})
	rc.Request.SetRequestURI("/v1/events/batch")
	s.handle(&rc)
	if got := rc.Response.StatusCode(); got != 202 {
		t.Fatalf("status: got %d, want 202: %s", got, rc.Response.Body())
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2 (the invalid event is not published)", len(spans))
	}
	for i, sp := range spans {
		if got := sp.Parent().SpanID().String(); got != appSpan {
			t.Errorf("span %d parent: got %s, want %s", i, got, appSpan)
		}
		if !strings.Contains(pub.stored[i], sp.SpanContext().SpanID().String()) {
			t.Errorf("event %d stored %q, want its own span %s", i, pub.stored[i], sp.SpanContext().SpanID())
		}
	}
}

func TestPublish_without_tracer_stores_the_apps_traceparent_unchanged(t *testing.T) {
	pub := &recordingPublisher{}
	if got := TracedPublisher(pub, nil); got != Publisher(pub) {
		t.Fatalf("TracedPublisher(pub, nil): got %T, want pub itself", got)
	}
	s := newPublishServer(t, pub, nil)
	var rc fasthttp.RequestCtx
	publishRequest(&rc, `{"type":"approval.requested"}`, map[string]string{"traceparent": appTP, "tracestate": "vendor=x"})
	s.handle(&rc)
	if got, want := pub.stored, []string{appTP + ";vendor=x"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("stored trace context: got %q, want %q", got, want)
	}
}

func TestPublish_failure_log_carries_event_correlation_and_trace_ids(t *testing.T) {
	var buf bytes.Buffer
	s := newPublishServer(t, &recordingPublisher{result: relay.PublishResult{Err: relay.ErrUnavailable}},
		slog.New(slog.NewJSONHandler(&buf, nil)))
	var rc fasthttp.RequestCtx
	publishRequest(&rc, `{"id":"ev-9","type":"approval.requested"}`, map[string]string{"traceparent": appTP, "X-Correlation-Id": "corr-9"})
	s.handle(&rc)
	var rec map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &rec); err != nil {
		t.Fatalf("want one JSON log line, got %q: %v", buf.String(), err)
	}
	for k, w := range map[string]string{"msg": "publish failed", "event_id": "ev-9", "correlation_id": "corr-9", "trace_id": appTrace} {
		if rec[k] != w {
			t.Errorf("%s: got %v, want %q", k, rec[k], w)
		}
	}
}

// discardExporter drops every span: the benchmark measures the sidecar's
// side of tracing (span creation, attributes, context conversion, the batch
// queue), not a collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkPublish_tracing is the cost of one POST /v1/events through the
// handler (decode, fill, validate, publish to an in-memory publisher) with
// tracing off, on and sampled (batch span processor, spans dropped), and on
// but sampled out.
func BenchmarkPublish_tracing(b *testing.B) {
	body := `{"type":"approval.requested","data":{"approvalId":"a-1","amount":120}}`
	headers := map[string]string{"traceparent": appTP, "X-Correlation-Id": "corr-1"}
	for _, bc := range []struct {
		name    string
		sampler sdktrace.Sampler // nil: tracing off
	}{
		{"off", nil},
		{"on_sampled", sdktrace.ParentBased(sdktrace.AlwaysSample())},
		{"on_not_sampled", sdktrace.NeverSample()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var pub Publisher = &nopPublisher{}
			if bc.sampler != nil {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}), sdktrace.WithSampler(bc.sampler))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				pub = TracedPublisher(pub, tp.Tracer("bench"))
			}
			s := newPublishServer(b, pub, nil)
			var rc fasthttp.RequestCtx
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				publishRequest(&rc, body, headers)
				s.handle(&rc)
				if rc.Response.StatusCode() != 202 {
					b.Fatalf("status %d: %s", rc.Response.StatusCode(), rc.Response.Body())
				}
			}
		})
	}
}

// nopPublisher answers every publish at once.
type nopPublisher struct{}

func (nopPublisher) Publish(_ context.Context, reqs []relay.PublishRequest, res []relay.PublishResult) {
	for i, r := range reqs {
		res[i] = relay.PublishResult{Stream: "hyvve:events:{acme}", StreamID: "1-0", EventID: r.Event.ID, CorrelationID: r.Event.CorrelationID}
	}
}
