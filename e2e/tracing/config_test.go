package tracing_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// These run in `make test`: they need the sidecar and Redis, not Jaeger.

func TestTracingConfig_bad_OTEL_settings_fail_at_start_naming_the_variable(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"grpc protocol", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
			`OTEL_EXPORTER_OTLP_PROTOCOL: "grpc": not supported`},
		{"unknown exporter", []string{"OTEL_TRACES_EXPORTER=zipkin"}, `OTEL_TRACES_EXPORTER: "zipkin"`},
		{"endpoint without scheme", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"unknown sampler", []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=often"}, `OTEL_TRACES_SAMPLER: "often"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := sidecartest.Run(t, []string{"--redis-url", "redis://127.0.0.1:1"}, tt.env)
			if code != 2 {
				t.Errorf("exit code: got %d, want 2\n%s", code, out)
			}
			if !strings.Contains(out, tt.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("output: got %q, want one line containing %q", out, tt.want)
			}
		})
	}
}

func TestTracingConfig_collector_down_costs_spans_not_publishes(t *testing.T) {
	// A port nothing listens on: every export fails.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	rdb := redistest.Start(t)
	sc := sidecartest.Start(t, sidecartest.Options{
		Env:  []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + dead, "OTEL_SERVICE_NAME=sidecar-down", "OTEL_BSP_SCHEDULE_DELAY=50"},
		Args: []string{"--redis-url", rdb.URL(), "--tenant", "acme"},
	})
	for i := 0; i < 3; i++ {
		resp, err := sc.Client().Post(sc.URL()+"/v1/events", "application/json", strings.NewReader(`{"type":"review.requested"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish %d: got %d, want 202", i, resp.StatusCode)
		}
	}
	if !strings.Contains(sc.Logs(), `"msg":"tracing on"`) || !strings.Contains(sc.Logs(), `"service_name":"sidecar-down"`) {
		t.Errorf("logs: want a \"tracing on\" line naming sidecar-down\n%s", sc.Logs())
	}
	// The flush at exit is bounded: SIGTERM still ends the sidecar promptly.
	start := time.Now()
	if code := sc.Stop(t); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stop took %s, want under 8 s (flush bounded by 5 s)", d)
	}
}
