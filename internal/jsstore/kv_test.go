package jsstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/testutil/freeport"
)

// The helpers of kv_test.go, stats_test.go and dlqadmin_test.go are named
// adm… so they do not clash with the other test files of the package.

// admStore is a Store run by a test. stop ends Run (waiting for it to
// return) and closes the store; it is safe to call twice and runs at the
// end of the test anyway.
type admStore struct {
	*Store
	stop func()
}

// admOpen starts a Store (embedded in t.TempDir() unless o names a URL or a
// DataDir), runs it and waits until Ping answers. Run must return nil.
func admOpen(t *testing.T, o Options) *admStore {
	t.Helper()
	if o.URL == "" && o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Retention == 0 {
		o.Retention = time.Hour
	}
	if o.DLQRetention == 0 {
		o.DLQRetention = time.Hour
	}
	if o.Group != "" {
		if o.Consumer == "" {
			o.Consumer = "c1"
		}
		if len(o.Retry.Schedule) == 0 {
			p, err := retry.NewPolicy([]time.Duration{time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			o.Retry = p
		}
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	as := &admStore{Store: s, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: got %v, want nil when ctx ends", err)
			}
			s.Close()
		})
	}}
	t.Cleanup(as.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		err := s.Ping(pctx)
		pcancel()
		if err == nil {
			return as
		}
		if time.Now().After(deadline) {
			t.Fatalf("store not ready after 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// admOpenServer runs an embedded store that also listens on a free port
// and returns it with the URL other stores connect to.
func admOpenServer(t *testing.T) (*admStore, string) {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return admOpen(t, Options{Listen: addr}), "nats://" + addr
}

// admSetupOnly is a ready store without Run's background work, so that
// s.published is not flushed away while a test reads it.
func admSetupOnly(t *testing.T) *Store {
	t.Helper()
	s, err := New(Options{DataDir: t.TempDir(), Retention: time.Hour, DLQRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.setup(ctx); err != nil {
		t.Fatal(err)
	}
	close(s.ready)
	return s
}

// admEvent is a filled, valid event.
func admEvent(tenant, typ string, n int) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("ev-%s-%d", tenant, n), Type: typ, Source: "crm",
		Timestamp: "2026-11-26T10:00:00.123Z", CorrelationID: fmt.Sprintf("corr-%d", n), TenantID: tenant,
		UserID: "u-42", Version: "1.0", Data: []byte(fmt.Sprintf(`{"n":%d}`, n)),
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

// testPublishRaw stores ev on its tenant's events subject the way Publish
// does (newMsg) and returns its stream sequence.
func testPublishRaw(t *testing.T, s *Store, ev *event.Event) uint64 {
	t.Helper()
	ack, err := s.js.PublishMsg(context.Background(), newMsg(s.names.subject(ev.TenantID), ev))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestSetupBuckets_creates_file_buckets_with_their_ttl(t *testing.T) {
	tests := []struct {
		name        string
		retention   time.Duration
		wantReplays time.Duration
	}{
		{"replays live as long as --retention", 3 * time.Hour, 3 * time.Hour},
		{"replays live 30 days without --retention", 0, 720 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{DataDir: t.TempDir(), Retention: tt.retention, DLQRetention: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var h handles
			if err := s.setupBuckets(ctx, &h); err != nil {
				t.Fatal(err)
			}
			for _, b := range []struct {
				kv      jetstream.KeyValue
				name    string
				wantTTL time.Duration
			}{
				{h.replays, "hyvve_replays", tt.wantReplays},
				{h.stats, "hyvve_stats", 2 * time.Hour},
			} {
				if b.kv == nil {
					t.Fatalf("bucket %s: no handle", b.name)
				}
				st, err := b.kv.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Bucket() != b.name || st.TTL() != b.wantTTL || st.History() != 1 ||
					st.Config().Storage != jetstream.FileStorage {
					t.Errorf("bucket: got %s TTL %v history %d storage %v, want %s TTL %v history 1 file storage",
						st.Bucket(), st.TTL(), st.History(), st.Config().Storage, b.name, b.wantTTL)
				}
			}
		})
	}
}

func TestSetupBuckets_updates_the_replays_ttl_when_retention_changes(t *testing.T) {
	dir := t.TempDir()
	for i, retention := range []time.Duration{3 * time.Hour, 5 * time.Hour} {
		s := admOpen(t, Options{DataDir: dir, Retention: retention})
		if i == 0 {
			// Data kept across the restart.
			if _, err := s.replays.Put(context.Background(), "job-1", []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.replays.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != retention || st.Values() != 1 {
			t.Errorf("start %d: got TTL %v with %d values, want %v with 1", i+1, st.TTL(), st.Values(), retention)
		}
		s.stop()
	}
}
