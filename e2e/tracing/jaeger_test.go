//go:build tracing

// Package tracing_test is the end-to-end tracing test of SPEC §8 against a
// real Jaeger all-in-one (built from tools/jaeger). It runs only with
// `-tags tracing` and HYVVE_JAEGER_BIN set: `make test-tracing`.
package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hyvve/sidecar/internal/testutil/freeport"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// jaeger is one Jaeger all-in-one process: OTLP/HTTP in, query API out,
// spans in memory.
type jaeger struct {
	otlp  string // http://127.0.0.1:port (OTLP/HTTP base endpoint)
	query string // http://127.0.0.1:port (query API)
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startJaeger runs $HYVVE_JAEGER_BIN with a config of its own: only the
// OTLP/HTTP receiver and the query API (HTTP and gRPC), each on a free
// 127.0.0.1 port, in-memory storage, no self-telemetry port. It waits until
// the query API answers and stops the process when the test ends.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := os.Getenv("HYVVE_JAEGER_BIN")
	if bin == "" {
		t.Fatal("HYVVE_JAEGER_BIN is not set: run `make test-tracing`, which builds Jaeger from tools/jaeger")
	}
	otlpPort, queryPort, grpcPort := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    traces:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, queryPort, grpcPort, otlpPort)
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var outMu sync.Mutex
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout = lockedWriter{&outMu, &out}
	cmd.Stderr = lockedWriter{&outMu, &out}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			outMu.Lock()
			t.Logf("jaeger output:\n%s", out.String())
			outMu.Unlock()
		}
	})
	j := &jaeger{otlp: fmt.Sprintf("http://127.0.0.1:%d", otlpPort), query: fmt.Sprintf("http://127.0.0.1:%d", queryPort)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			outMu.Lock()
			defer outMu.Unlock()
			t.Fatalf("jaeger exited at start:\n%s", out.String())
		default:
		}
		resp, err := http.Get(j.query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				// The receiver starts with the query API; make sure it
				// takes connections too.
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", otlpPort)); err == nil {
					c.Close()
					return j
				}
			}
		}
		if time.Now().After(deadline) {
			outMu.Lock()
			defer outMu.Unlock()
			t.Fatalf("jaeger not ready within 30 s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tracerFor is an SDK tracer provider of service exporting synchronously to
// Jaeger: the test's own apps (app A, app B).
func tracerFor(t *testing.T, j *jaeger, service string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(j.otlp+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// appB is the subscribing app: it creates a SERVER span from the incoming
// traceparent for every push and fails the first one with 500.
type appB struct {
	tracer trace.Tracer
	mu     sync.Mutex
	pushes []http.Header
}

func (a *appB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hyvve/subscriptions" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[{"pattern":"review.*","path":"/events/approval"}]`))
		return
	}
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	_, span := a.tracer.Start(ctx, "app-b handle review.requested", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("hyvve.event_id", r.Header.Get("X-Event-Id")),
			attribute.String("hyvve.delivery.attempt", r.Header.Get("X-Delivery-Attempt"))))
	defer span.End()
	a.mu.Lock()
	a.pushes = append(a.pushes, r.Header.Clone())
	n := len(a.pushes)
	a.mu.Unlock()
	if n == 1 {
		span.SetStatus(codes.Error, "simulated failure")
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *appB) received() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.pushes...)
}

// Jaeger's query API (GET /api/traces/<id>), the fields the test reads.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64  `json:"startTime"`
	ProcessID string `json:"processID"`
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
}

func (s jSpan) tag(k string) string {
	for _, t := range s.Tags {
		if t.Key == k {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

func (s jSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// getTrace polls Jaeger until the trace holds want spans (spans arrive from
// four processes, each exporting on its own schedule).
func getTrace(t *testing.T, j *jaeger, traceID string, want int) (jTrace, []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		resp, err := http.Get(j.query + "/api/traces/" + traceID)
		if err == nil {
			var body struct {
				Data []jTrace `json:"data"`
			}
			var raw []byte
			raw, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				err = json.Unmarshal(raw, &body)
			}
			switch {
			case err != nil:
				last = err.Error()
			case len(body.Data) != 1:
				last = fmt.Sprintf("%d traces", len(body.Data))
			case len(body.Data[0].Spans) >= want:
				return body.Data[0], raw
			default:
				last = fmt.Sprintf("%d spans", len(body.Data[0].Spans))
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: want one trace of %d spans within 30 s, last got %s", traceID, want, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tree renders the trace as an indented tree, children by start time.
func tree(tr jTrace) string {
	children := map[string][]jSpan{}
	for _, s := range tr.Spans {
		children[s.parent()] = append(children[s.parent()], s)
	}
	for _, c := range children {
		sort.Slice(c, func(i, k int) bool { return c[i].StartTime < c[k].StartTime })
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			fmt.Fprintf(&b, "%s%s: %s [%s]", strings.Repeat("  ", depth), tr.Processes[s.ProcessID].ServiceName, s.OperationName, s.tag("span.kind"))
			for _, k := range []string{"messaging.operation.type", "messaging.destination.name", "messaging.consumer.group.name",
				"hyvve.delivery.attempt", "hyvve.delivery.outcome", "http.response.status_code", "otel.status_code"} {
				if v := s.tag(k); v != "" {
					fmt.Fprintf(&b, " %s=%s", k, v)
				}
			}
			b.WriteByte('\n')
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return b.String()
}

func TestTracing_one_trace_from_app_A_through_both_sidecars_to_app_B(t *testing.T) {
	j := startJaeger(t)
	rdb := redistest.Start(t)

	b := &appB{tracer: tracerFor(t, j, "app-b").Tracer("app-b")}
	appSrv := httptest.NewServer(b)
	defer appSrv.Close()

	otelEnv := func(service string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlp, "OTEL_SERVICE_NAME=" + service,
			"OTEL_BSP_SCHEDULE_DELAY=100"}
	}
	sidecarB := sidecartest.Start(t, sidecartest.Options{Env: otelEnv("sidecar-b"), Args: []string{
		"--redis-url", rdb.URL(), "--tenant", "acme", "--app-url", appSrv.URL, "--group", "b",
		"--retry-schedule", "500ms", "--app-timeout", "400ms"}})
	sidecarA := sidecartest.Start(t, sidecartest.Options{Env: otelEnv("sidecar-a"), Args: []string{
		"--redis-url", rdb.URL(), "--tenant", "acme"}})

	// App A publishes inside a span of its own.
	tpA := tracerFor(t, j, "app-a")
	ctx, span := tpA.Tracer("app-a").Start(context.Background(), "app-a request approval", trace.WithSpanKind(trace.SpanKindClient))
	traceID := span.SpanContext().TraceID().String()
	appASpan := span.SpanContext().SpanID().String()
	req, _ := http.NewRequestWithContext(ctx, "POST", sidecarA.URL()+"/v1/events",
		strings.NewReader(`{"type":"review.requested","data":{"approvalId":"a-1"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Correlation-Id", "corr-trace-1")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := sidecarA.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pub struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&pub)
	resp.Body.Close()
	span.End()
	if resp.StatusCode != 202 {
		t.Fatalf("publish: got %d, want 202", resp.StatusCode)
	}

	// App B fails the first push and acknowledges the retry.
	deadline := time.Now().Add(15 * time.Second)
	for len(b.received()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("app B got %d pushes within 15 s, want 2", len(b.received()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// SIGTERM flushes the sidecars' span queues.
	if code := sidecarB.Stop(t); code != 0 {
		t.Errorf("sidecar B exit code: got %d, want 0", code)
	}
	if code := sidecarA.Stop(t); code != 0 {
		t.Errorf("sidecar A exit code: got %d, want 0", code)
	}

	tr, raw := getTrace(t, j, traceID, 6)
	t.Logf("trace %s as Jaeger's query API returned it:\n%s", traceID, tree(tr))
	if len(tr.Spans) != 6 {
		t.Errorf("trace has %d spans, want 6 (app A, sidecar A, 2 attempts of sidecar B, 2 of app B)", len(tr.Spans))
	}

	byService := map[string][]jSpan{}
	for _, s := range tr.Spans {
		svc := tr.Processes[s.ProcessID].ServiceName
		byService[svc] = append(byService[svc], s)
	}
	for svc, n := range map[string]int{"app-a": 1, "sidecar-a": 1, "sidecar-b": 2, "app-b": 2} {
		if len(byService[svc]) != n {
			t.Fatalf("service %s: got %d spans, want %d\n%s", svc, len(byService[svc]), n, tree(tr))
		}
	}

	// app A (root) → sidecar A PRODUCER.
	a := byService["app-a"][0]
	if a.SpanID != appASpan || a.parent() != "" {
		t.Errorf("app A span: got %s with parent %q, want %s as the root", a.SpanID, a.parent(), appASpan)
	}
	producer := byService["sidecar-a"][0]
	want := map[string]string{"span.kind": "producer", "messaging.system": "redis", "messaging.operation.type": "send",
		"messaging.destination.name": "hyvve:events:{acme}", "messaging.message.id": pub.ID,
		"hyvve.tenant_id": "acme", "hyvve.correlation_id": "corr-trace-1"}
	checkSpan(t, "sidecar A", producer, "send hyvve:events:{acme}", a.SpanID, want)

	// sidecar B: two sibling CONSUMER attempts under the PRODUCER span.
	attempts := byService["sidecar-b"]
	sort.Slice(attempts, func(i, k int) bool {
		return attempts[i].tag("hyvve.delivery.attempt") < attempts[k].tag("hyvve.delivery.attempt")
	})
	for i, w := range []struct{ outcome, status string }{{"retry", "500"}, {"ack", "204"}} {
		checkSpan(t, "sidecar B attempt "+strconv.Itoa(i+1), attempts[i], "process hyvve:events:{acme}", producer.SpanID, map[string]string{
			"span.kind": "consumer", "messaging.system": "redis", "messaging.operation.type": "process",
			"messaging.destination.name": "hyvve:events:{acme}", "messaging.consumer.group.name": "b",
			"messaging.message.id": pub.ID, "hyvve.tenant_id": "acme", "hyvve.correlation_id": "corr-trace-1",
			"hyvve.delivery.attempt": strconv.Itoa(i + 1), "hyvve.delivery.outcome": w.outcome,
			"http.response.status_code": w.status,
		})
	}

	// app B: one SERVER span under each attempt, from the traceparent it got.
	pushes := b.received()
	for i, at := range attempts {
		var under []jSpan
		for _, s := range byService["app-b"] {
			if s.parent() == at.SpanID {
				under = append(under, s)
			}
		}
		if len(under) != 1 {
			t.Errorf("attempt %d: got %d app B spans under it, want 1\n%s", i+1, len(under), tree(tr))
			continue
		}
		if got := under[0].tag("hyvve.delivery.attempt"); got != strconv.Itoa(i+1) {
			t.Errorf("app B span under attempt %d: got X-Delivery-Attempt %s", i+1, got)
		}
		wantTP := "00-" + traceID + "-" + at.SpanID + "-01"
		if got := pushes[i].Get("Traceparent"); got != wantTP {
			t.Errorf("push %d traceparent: got %q, want %q (the attempt span's)", i+1, got, wantTP)
		}
		if got := pushes[i].Get("X-Correlation-Id"); got != "corr-trace-1" {
			t.Errorf("push %d X-Correlation-Id: got %q, want corr-trace-1", i+1, got)
		}
	}

	// The sidecars' log lines about the event carry the trace id.
	if !strings.Contains(sidecarB.Logs(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("sidecar B logs: want a line with trace_id %s (the failed push)\n%s", traceID, sidecarB.Logs())
	}
	if out := os.Getenv("HYVVE_TRACE_TREE_OUT"); out != "" {
		// The tree, and Jaeger's answer as it came (for docs/tracing.md).
		if err := errors.Join(os.WriteFile(out, []byte(tree(tr)), 0o644), os.WriteFile(out+".json", raw, 0o644)); err != nil {
			t.Error(err)
		}
	}
}

func checkSpan(t *testing.T, what string, s jSpan, name, parent string, tags map[string]string) {
	t.Helper()
	if s.OperationName != name {
		t.Errorf("%s: got operation %q, want %q", what, s.OperationName, name)
	}
	if s.parent() != parent {
		t.Errorf("%s: got parent %q, want %q", what, s.parent(), parent)
	}
	for k, w := range tags {
		if got := s.tag(k); got != w {
			t.Errorf("%s: tag %s: got %q, want %q", what, k, got, w)
		}
	}
}
