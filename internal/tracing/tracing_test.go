package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/hyvve/sidecar/internal/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantOn      bool
		wantURL     string
		wantService string
		wantSampler string // Description() prefix
		wantErr     string // substring; "" = no error
	}{
		{name: "off by default", env: nil},
		{name: "off with only a service name", env: map[string]string{"OTEL_SERVICE_NAME": "x"}},
		{name: "base endpoint gets /v1/traces", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
			wantOn: true, wantURL: "http://127.0.0.1:4318/v1/traces", wantService: DefaultServiceName, wantSampler: "ParentBased{root:AlwaysOnSampler"},
		{name: "base endpoint with a trailing slash", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:443/"},
			wantOn: true, wantURL: "https://otel.example:443/v1/traces", wantService: DefaultServiceName},
		{name: "traces endpoint is used as is", env: map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1"},
			wantOn: true, wantURL: "http://c:4318/custom", wantService: DefaultServiceName},
		{name: "exporter otlp alone uses localhost", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			wantOn: true, wantURL: "http://localhost:4318/v1/traces", wantService: DefaultServiceName},
		{name: "exporter none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "service name and resource attributes", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "sidecar-a",
			"OTEL_RESOURCE_ATTRIBUTES": "service.name=other,deployment.environment=prod%20eu"},
			wantOn: true, wantURL: "http://c:4318/v1/traces", wantService: "sidecar-a"},
		{name: "service name from resource attributes", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_RESOURCE_ATTRIBUTES": "service.name=billing-sidecar"},
			wantOn: true, wantURL: "http://c:4318/v1/traces", wantService: "billing-sidecar"},
		{name: "ratio sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			wantOn: true, wantURL: "http://c:4318/v1/traces", wantService: DefaultServiceName, wantSampler: "ParentBased{root:TraceIDRatioBased{0.25}"},
		{name: "always_off sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "always_off"},
			wantOn: true, wantURL: "http://c:4318/v1/traces", wantService: DefaultServiceName, wantSampler: "AlwaysOffSampler"},
		{name: "grpc is refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\": not supported"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
			wantOn: true, wantURL: "http://c:4318/v1/traces", wantService: DefaultServiceName},
		{name: "http/json is refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			wantErr: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "other exporter is refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER: \"zipkin\""},
		{name: "endpoint without scheme is refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"},
			wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "unknown sampler is refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "sometimes"},
			wantErr: "OTEL_TRACES_SAMPLER: \"sometimes\""},
		{name: "bad ratio is refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "bad resource attributes are refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, wantErr: "OTEL_RESOURCE_ATTRIBUTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error: got %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: got %v, want none", err)
			}
			if c.Enabled != tt.wantOn {
				t.Fatalf("Enabled: got %v, want %v", c.Enabled, tt.wantOn)
			}
			if !tt.wantOn {
				return
			}
			if c.Endpoint != tt.wantURL {
				t.Errorf("Endpoint: got %q, want %q", c.Endpoint, tt.wantURL)
			}
			if c.ServiceName != tt.wantService {
				t.Errorf("ServiceName: got %q, want %q", c.ServiceName, tt.wantService)
			}
			if tt.wantSampler != "" && !strings.HasPrefix(c.Sampler.Description(), tt.wantSampler) {
				t.Errorf("Sampler: got %q, want %q…", c.Sampler.Description(), tt.wantSampler)
			}
		})
	}
}

func TestNew_off_has_no_tracer_and_starts_nothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, err := New(context.Background(), Config{}, "1.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() || p.Tracer() != nil {
		t.Errorf("Enabled, Tracer: got %v, %v; want false, nil", p.Enabled(), p.Tracer())
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

// otlpReceiver is an OTLP/HTTP traces endpoint that keeps what it receives.
type otlpReceiver struct {
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
	cts  []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var m collectortrace.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &m) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, &m)
	r.cts = append(r.cts, req.Header.Get("Content-Type"))
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func TestNew_on_exports_spans_over_OTLP_HTTP_and_flushes_on_shutdown(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()

	cfg, err := FromEnv(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_SERVICE_NAME": "sidecar-test",
		"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(context.Background(), cfg, "9.9.9", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() || p.Tracer() == nil {
		t.Fatalf("Enabled, Tracer: got %v, %v; want true and a tracer", p.Enabled(), p.Tracer())
	}
	ev := &event.Event{ID: "ev-1", Type: "a.b", TenantID: "acme", CorrelationID: "c-1"}
	_, span := p.Tracer().Start(context.Background(), SpanName(OpSend, "hyvve:events:{acme}"))
	span.SetAttributes(Attributes(OpSend, ev, "hyvve:events:{acme}")...)
	span.End()

	// The batch processor holds the span (5 s by default): Shutdown must
	// send it before it returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.reqs) != 1 {
		t.Fatalf("got %d export requests, want 1", len(recv.reqs))
	}
	if recv.cts[0] != "application/x-protobuf" {
		t.Errorf("Content-Type: got %q, want application/x-protobuf", recv.cts[0])
	}
	rs := recv.reqs[0].ResourceSpans
	if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || len(rs[0].ScopeSpans[0].Spans) != 1 {
		t.Fatalf("got %v, want one span", rs)
	}
	res := map[string]string{}
	for _, kv := range rs[0].Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	for k, w := range map[string]string{"service.name": "sidecar-test", "service.version": "9.9.9", "deployment.environment": "ci"} {
		if res[k] != w {
			t.Errorf("resource %s: got %q, want %q", k, res[k], w)
		}
	}
	sp := rs[0].ScopeSpans[0].Spans[0]
	if sp.Name != "send hyvve:events:{acme}" {
		t.Errorf("span name: got %q, want %q", sp.Name, "send hyvve:events:{acme}")
	}
	got := map[string]string{}
	for _, kv := range sp.Attributes {
		got[kv.Key] = kv.Value.GetStringValue()
	}
	for k, w := range map[string]string{"messaging.system": "redis", "messaging.operation.type": "send",
		"messaging.destination.name": "hyvve:events:{acme}", "messaging.message.id": "ev-1",
		"hyvve.tenant_id": "acme", "hyvve.correlation_id": "c-1"} {
		if got[k] != w {
			t.Errorf("span attribute %s: got %q, want %q", k, got[k], w)
		}
	}
}

func TestTraceContext_round_trip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, traceparent, tracestate string
		wantValid                     bool
		wantTP, wantTS                string
	}{
		{"valid with state", tp, "vendor=x,other=y", true, tp, "vendor=x,other=y"},
		{"valid, not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "", true,
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", ""},
		{"empty", "", "", false, "", ""},
		{"malformed", "00-xyz-00f067aa0ba902b7-01", "", false, "", ""},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := SpanContext(tt.traceparent, tt.tracestate)
			if sc.IsValid() != tt.wantValid {
				t.Fatalf("valid: got %v, want %v", sc.IsValid(), tt.wantValid)
			}
			gotTP, gotTS := Headers(sc)
			if gotTP != tt.wantTP || gotTS != tt.wantTS {
				t.Errorf("Headers: got %q %q, want %q %q", gotTP, gotTS, tt.wantTP, tt.wantTS)
			}
			ctx := ContextWithRemote(context.Background(), tt.traceparent, tt.tracestate)
			if got := LogTraceID(ctx, ""); tt.wantValid && got != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("LogTraceID: got %q, want the traceparent's trace id", got)
			}
		})
	}
	if got := TraceID(tp); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("TraceID: got %q, want 4bf92f3577b34da6a3ce929d0e0e4736", got)
	}
	if got := TraceID("garbage"); got != "" {
		t.Errorf("TraceID(garbage): got %q, want empty", got)
	}
}
