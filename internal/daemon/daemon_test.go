package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/config"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

func load(t *testing.T, args ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(append([]string{"--listen=127.0.0.1:0"}, args...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNew_refuses_redis_cluster_pointed_at_a_Redis_without_cluster_support(t *testing.T) {
	srv := redistest.Start(t)
	cfg := load(t, "--redis-url="+srv.URL(), "--redis-cluster")
	d, err := New(cfg, "test", nil)
	if err == nil {
		d.closeClients()
		t.Fatal("New: got a daemon, want an error naming --redis-cluster")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "--redis-cluster: ") || strings.Contains(msg, "\n") {
		t.Errorf("New: got %q, want one line starting with --redis-cluster", msg)
	}
}

func TestPublishTimeout_adds_the_wait_for_replicas(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want time.Duration
	}{
		{"embedded store", nil, defaultPublishTimeout},
		{"redis without WAIT", []string{"--redis-url=redis://r:6379"}, defaultPublishTimeout},
		{"redis with WAIT", []string{"--redis-url=redis://r:6379", "--redis-wait-replicas=1", "--redis-wait-timeout=2s"},
			defaultPublishTimeout + 2*time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := publishTimeout(load(t, tc.args...)); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
