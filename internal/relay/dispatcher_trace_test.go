package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hyvve/sidecar/internal/appclient"
	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/subscription"
	"github.com/hyvve/sidecar/internal/tracing"
)

// fakeInbox records what the dispatcher settles; it never has messages to
// fetch (the tests call deliver directly).
type fakeInbox struct {
	mu          sync.Mutex
	acked       int
	retried     int
	deadLetters int
}

func (f *fakeInbox) Fetch(context.Context, int) ([]*Message, error) { return nil, nil }
func (f *fakeInbox) Ack(_ context.Context, msgs ...*Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked += len(msgs)
	return nil
}
func (f *fakeInbox) Retry(context.Context, *Message, time.Time, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retried++
	return nil
}
func (f *fakeInbox) DeadLetter(context.Context, *Message, int, string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadLetters++
	return true, nil
}

// fakeApp answers every push with status and records the deliveries.
type fakeApp struct {
	status int
	mu     sync.Mutex
	got    []appclient.Delivery
}

func (a *fakeApp) Push(_ context.Context, d *appclient.Delivery) (appclient.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, *d)
	if a.status == 0 {
		return appclient.Result{}, errors.New("connection refused")
	}
	return appclient.Result{Status: a.status}, nil
}

func (a *fakeApp) Subscriptions(context.Context) ([]subscription.Subscription, bool, error) {
	return []subscription.Subscription{{Pattern: "approval.*", Path: "/events"}}, true, nil
}

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
	parentTP    = "00-" + parentTrace + "-" + parentSpan + "-01"
)

func newTracedDispatcher(t *testing.T, app *fakeApp, tracer trace.Tracer) (*Dispatcher, *fakeInbox) {
	t.Helper()
	pol, err := retry.NewPolicy([]time.Duration{time.Minute, 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	inbox := &fakeInbox{}
	d, err := NewDispatcher(DispatcherConfig{Group: "billing", Concurrency: 1, Retry: pol, Tracer: tracer}, inbox, app, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.loadSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d, inbox
}

func testMessage(attempt int) *Message {
	return &Message{
		Event: &event.Event{ID: "ev-1", Type: "approval.requested", TenantID: "acme", CorrelationID: "corr-1",
			Data: []byte(`{}`), TraceParent: parentTP, TraceState: "vendor=x"},
		Tenant: "acme", Stream: "hyvve:events:{acme}", StreamID: "1-0", Attempt: attempt,
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestDeliver_attempt_spans_are_children_of_the_stored_context(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		attempt     int
		wantOutcome string
		wantError   bool
		wantSpans   []string // names, in end order
	}{
		{"2xx acknowledges", 204, 1, tracing.OutcomeAck, false, []string{"process hyvve:events:{acme}"}},
		{"5xx schedules a retry", 503, 1, tracing.OutcomeRetry, true, []string{"process hyvve:events:{acme}"}},
		{"unreachable app schedules a retry", 0, 2, tracing.OutcomeRetry, true, []string{"process hyvve:events:{acme}"}},
		{"4xx dead-letters", 400, 1, tracing.OutcomeDeadLetter, true,
			[]string{"dead_letter hyvve:events:{acme}", "process hyvve:events:{acme}"}},
		{"last attempt dead-letters", 500, 3, tracing.OutcomeDeadLetter, true,
			[]string{"dead_letter hyvve:events:{acme}", "process hyvve:events:{acme}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			app := &fakeApp{status: tt.status}
			d, _ := newTracedDispatcher(t, app, tp.Tracer("test"))
			d.deliver(context.Background(), testMessage(tt.attempt))

			spans := rec.Ended()
			if len(spans) != len(tt.wantSpans) {
				t.Fatalf("got %d spans, want %d (%v)", len(spans), len(tt.wantSpans), tt.wantSpans)
			}
			for i, s := range spans {
				if s.Name() != tt.wantSpans[i] {
					t.Errorf("span %d: got name %q, want %q", i, s.Name(), tt.wantSpans[i])
				}
			}
			attempt := spans[len(spans)-1]
			if got := attempt.SpanKind(); got != trace.SpanKindConsumer {
				t.Errorf("attempt span kind: got %v, want consumer", got)
			}
			if got := attempt.Parent().TraceID().String(); got != parentTrace {
				t.Errorf("attempt parent trace: got %s, want %s", got, parentTrace)
			}
			if got := attempt.Parent().SpanID().String(); got != parentSpan {
				t.Errorf("attempt parent span: got %s, want %s (the stored traceparent's)", got, parentSpan)
			}
			a := attrs(attempt)
			want := map[attribute.Key]any{
				"messaging.system": "redis", "messaging.operation.type": "process", "messaging.operation.name": "process",
				"messaging.destination.name": "hyvve:events:{acme}", "messaging.message.id": "ev-1",
				"messaging.consumer.group.name": "billing", "hyvve.tenant_id": "acme", "hyvve.correlation_id": "corr-1",
				"hyvve.delivery.attempt": int64(tt.attempt), "hyvve.delivery.outcome": tt.wantOutcome,
			}
			if tt.status != 0 {
				want["http.response.status_code"] = int64(tt.status)
			}
			for k, w := range want {
				if got := a[k].AsInterface(); got != w {
					t.Errorf("attribute %s: got %v, want %v", k, got, w)
				}
			}
			if gotErr := attempt.Status().Code == codes.Error; gotErr != tt.wantError {
				t.Errorf("attempt status error: got %v, want %v", gotErr, tt.wantError)
			}

			// The app got the attempt span's context, not the stored one.
			sc := attempt.SpanContext()
			wantTP := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
			if got := app.got[0].TraceParent; got != wantTP {
				t.Errorf("traceparent pushed: got %q, want %q", got, wantTP)
			}
			if got := app.got[0].TraceState; got != "vendor=x" {
				t.Errorf("tracestate pushed: got %q, want %q", got, "vendor=x")
			}
			if len(spans) == 2 {
				dl := spans[0]
				if dl.Parent().SpanID() != sc.SpanID() {
					t.Errorf("dead-letter span parent: got %s, want the attempt span %s", dl.Parent().SpanID(), sc.SpanID())
				}
				if got := attrs(dl)["messaging.operation.type"].AsString(); got != "settle" {
					t.Errorf("dead-letter messaging.operation.type: got %q, want settle", got)
				}
			}
		})
	}
}

func TestDeliver_retries_are_sibling_spans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	app := &fakeApp{status: 500}
	d, inbox := newTracedDispatcher(t, app, tp.Tracer("test"))
	d.deliver(context.Background(), testMessage(1))
	app.status = 200
	d.deliver(context.Background(), testMessage(2))

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	if spans[0].Parent().SpanID() != spans[1].Parent().SpanID() || spans[0].Parent().SpanID().String() != parentSpan {
		t.Errorf("attempt parents: got %s and %s, want both %s", spans[0].Parent().SpanID(), spans[1].Parent().SpanID(), parentSpan)
	}
	if spans[0].SpanContext().SpanID() == spans[1].SpanContext().SpanID() {
		t.Errorf("both attempts have span id %s, want two spans", spans[0].SpanContext().SpanID())
	}
	if inbox.retried != 1 || inbox.acked != 1 {
		t.Errorf("got %d retries and %d acks, want 1 and 1", inbox.retried, inbox.acked)
	}
}

func TestDeliver_republished_event_starts_a_linked_trace(t *testing.T) {
	for _, tt := range []struct {
		name     string
		replay   bool
		wantLink string
	}{
		{"dead letter retried", false, "dead_letter_retry"},
		{"replay", true, "replay"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			d, _ := newTracedDispatcher(t, &fakeApp{status: 200}, tp.Tracer("test"))
			m := testMessage(1)
			m.Event.TargetGroup, m.Event.Replay = "billing", tt.replay
			d.deliver(context.Background(), m)

			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Parent().IsValid() {
				t.Errorf("parent: got %s, want none (a new trace)", s.Parent().SpanID())
			}
			if s.SpanContext().TraceID().String() == parentTrace {
				t.Errorf("trace id: got the original %s, want a new trace", parentTrace)
			}
			links := s.Links()
			if len(links) != 1 || links[0].SpanContext.SpanID().String() != parentSpan {
				t.Fatalf("links: got %v, want one to span %s", links, parentSpan)
			}
			if got := links[0].Attributes; len(got) != 1 || got[0].Value.AsString() != tt.wantLink {
				t.Errorf("link attributes: got %v, want hyvve.link=%s", got, tt.wantLink)
			}
		})
	}
}

func TestDeliver_without_tracer_passes_the_stored_traceparent_unchanged(t *testing.T) {
	app := &fakeApp{status: 200}
	d, _ := newTracedDispatcher(t, app, nil)
	d.deliver(context.Background(), testMessage(1))
	if len(app.got) != 1 {
		t.Fatalf("got %d pushes, want 1", len(app.got))
	}
	if got := app.got[0].TraceParent; got != parentTP {
		t.Errorf("traceparent: got %q, want %q", got, parentTP)
	}
	if got := app.got[0].TraceState; got != "vendor=x" {
		t.Errorf("tracestate: got %q, want %q", got, "vendor=x")
	}
}

func TestDeliver_log_lines_carry_event_correlation_and_trace_ids(t *testing.T) {
	for _, traced := range []bool{false, true} {
		t.Run(map[bool]string{false: "tracing off", true: "tracing on"}[traced], func(t *testing.T) {
			var tracer trace.Tracer
			if traced {
				tracer = sdktrace.NewTracerProvider().Tracer("test")
			}
			var buf bytes.Buffer
			pol, _ := retry.NewPolicy([]time.Duration{time.Minute})
			d, err := NewDispatcher(DispatcherConfig{Group: "billing", Concurrency: 1, Retry: pol, Tracer: tracer},
				&fakeInbox{}, &fakeApp{status: 503}, nil, slog.New(slog.NewJSONHandler(&buf, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.loadSubscriptions(context.Background()); err != nil {
				t.Fatal(err)
			}
			buf.Reset()
			d.deliver(context.Background(), testMessage(1)) // retry
			d.deliver(context.Background(), testMessage(2)) // dead letter
			lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
			if len(lines) != 2 {
				t.Fatalf("got %d log lines, want 2:\n%s", len(lines), buf.String())
			}
			for _, l := range lines {
				var rec map[string]any
				if err := json.Unmarshal(l, &rec); err != nil {
					t.Fatal(err)
				}
				for k, w := range map[string]string{"event_id": "ev-1", "correlation_id": "corr-1", "trace_id": parentTrace} {
					if got := rec[k]; got != w {
						t.Errorf("%q: %s: got %v, want %q", rec["msg"], k, got, w)
					}
				}
			}
		})
	}
}
