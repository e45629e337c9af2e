package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStart_serves_redis_on_its_addresses(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()

	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:<port>", s.Addr())
	}
	if got, want := s.URL(), "redis://"+s.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through Client: %v", err)
	}

	// The URL is what the sidecar gets as --redis-url: it must reach the same server.
	o, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k through URL = %q, %v; want \"v\", nil", got, err)
	}
}

func TestStart_configures_persistence_and_extra_args(t *testing.T) {
	tests := []struct {
		name string
		opts redistest.Options
		want map[string]string
	}{
		{
			name: "default is in memory with no saves",
			opts: redistest.Options{},
			want: map[string]string{"save": "", "appendonly": "no"},
		},
		{
			name: "append only fsyncs every write",
			opts: redistest.Options{AppendOnly: true},
			want: map[string]string{"save": "", "appendonly": "yes", "appendfsync": "always"},
		},
		{
			name: "extra args override defaults",
			opts: redistest.Options{Args: []string{"--maxmemory", "10mb", "--appendonly", "yes"}},
			want: map[string]string{"maxmemory": "10485760", "appendonly": "yes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := redistest.Start(t, tt.opts).Client(t)
			for param, want := range tt.want {
				got, err := c.ConfigGet(context.Background(), param).Result()
				if err != nil {
					t.Fatalf("CONFIG GET %s: %v", param, err)
				}
				if got[param] != want {
					t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
				}
			}
		})
	}
}

func TestKill_and_Restart(t *testing.T) {
	tests := []struct {
		name       string
		appendOnly bool
		wantKept   bool
	}{
		{name: "append only keeps data", appendOnly: true, wantKept: true},
		{name: "in memory loses data", appendOnly: false, wantKept: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := redistest.Start(t, redistest.Options{AppendOnly: tt.appendOnly})
			addr := s.Addr()
			c := s.Client(t)
			if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "st", Values: []string{"f", "v"}}).Err(); err != nil {
				t.Fatalf("XADD before kill: %v", err)
			}

			s.Kill(t)
			if conn, err := net.Dial("tcp", addr); err == nil {
				conn.Close()
				t.Fatalf("dial %s after Kill succeeded, want connection refused", addr)
			}
			s.Kill(t) // killing a stopped server is a no-op

			s.Restart(t)
			if s.Addr() != addr {
				t.Errorf("Addr() after Restart = %q, want %q", s.Addr(), addr)
			}
			n, err := c.XLen(ctx, "st").Result()
			if err != nil {
				t.Fatalf("XLEN after restart: %v", err)
			}
			if got, want := n == 1, tt.wantKept; got != want {
				t.Errorf("XLEN st after restart = %d, want kept=%v", n, want)
			}
		})
	}
}

func TestRestart_of_a_running_server_kills_it_first(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Restart(t)
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET k after Restart: got err %v, want redis.Nil (a new in-memory server)", err)
	}
}

func TestStart_parallel_servers_get_distinct_ports(t *testing.T) {
	const n = 8
	var (
		mu    sync.Mutex
		addrs = map[string]bool{}
	)
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				s := redistest.Start(t)
				mu.Lock()
				addrs[s.Addr()] = true
				mu.Unlock()
				key := fmt.Sprint("k", i)
				c := s.Client(t)
				if err := c.Set(context.Background(), key, i, 0).Err(); err != nil {
					t.Fatalf("SET: %v", err)
				}
				if got, _ := c.DBSize(context.Background()).Result(); got != 1 {
					t.Errorf("DBSIZE = %d, want 1 (servers must not be shared)", got)
				}
			})
		}
	})
	if len(addrs) != n {
		t.Errorf("got %d distinct addresses, want %d", len(addrs), n)
	}
}

func TestStart_fails_with_the_server_log(t *testing.T) {
	ft := &fatalTB{TB: t}
	ft.run(func() { redistest.Start(ft, redistest.Options{Args: []string{"--no-such-directive", "x"}}) })
	if ft.fatal == "" {
		t.Fatalf("Start with a bad directive did not fail the test")
	}
	if !strings.Contains(ft.fatal, "Bad directive") {
		t.Errorf("fatal message = %q, want it to contain redis-server's log (\"Bad directive\")", ft.fatal)
	}
}

// fatalTB records the first Fatal instead of failing the real test, and runs
// cleanups registered through it when run returns.
type fatalTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	cleanups []func()
}

func (f *fatalTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func (f *fatalTB) Helper()             {}
func (f *fatalTB) Cleanup(fn func())   { f.cleanups = append(f.cleanups, fn) }
func (f *fatalTB) Failed() bool        { return f.fatal != "" }
func (f *fatalTB) Logf(string, ...any) {}
func (f *fatalTB) Fatal(args ...any)   { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	if f.fatal == "" {
		f.fatal = fmt.Sprintf(format, args...)
	}
	f.mu.Unlock()
	runtime.Goexit()
}
