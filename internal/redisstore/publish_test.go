package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

func newPublishStore(t testing.TB, url string) (*Store, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	s, err := New(Options{URL: url, Retention: time.Hour, DLQRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return s, stop, done
}

func pubEvent(i int) *event.Event {
	return &event.Event{ID: fmt.Sprintf("ev-%d", i), Type: "bench.event", Source: "test", Timestamp: "2026-01-01T00:00:00Z",
		CorrelationID: fmt.Sprintf("corr-%d", i), TenantID: "acme", Data: []byte(`{"n":1}`)}
}

func TestPublish_concurrent_callers_are_all_written_once(t *testing.T) {
	srv := redistest.Start(t)
	s, _, _ := newPublishStore(t, srv.URL())
	tests := []struct {
		name    string
		callers int
		perCall int
	}{
		{"one caller leads itself", 1, 1},
		{"many callers share pipelines", 64, 1},
		{"batches from many callers", 16, 10},
	}
	total := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			ids := map[string]bool{}
			var errs []error
			for c := range tt.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					reqs := make([]relay.PublishRequest, tt.perCall)
					for i := range reqs {
						reqs[i] = relay.PublishRequest{Event: pubEvent(c*1000 + i)}
					}
					res := make([]relay.PublishResult, len(reqs))
					s.Publish(context.Background(), reqs, res)
					mu.Lock()
					defer mu.Unlock()
					for i, r := range res {
						if r.Err != nil {
							errs = append(errs, r.Err)
							continue
						}
						if r.EventID != reqs[i].Event.ID {
							errs = append(errs, fmt.Errorf("result %d: got event id %q, want %q", i, r.EventID, reqs[i].Event.ID))
						}
						ids[r.StreamID] = true
					}
				}()
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("got %d errors, want none; first: %v", len(errs), errs[0])
			}
			want := tt.callers * tt.perCall
			if len(ids) != want {
				t.Errorf("got %d distinct stream ids, want %d", len(ids), want)
			}
			total += want
			n, err := srv.Client(t).XLen(context.Background(), "hyvve:events:{acme}").Result()
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(total) {
				t.Errorf("got stream length %d, want %d", n, total)
			}
		})
	}
}

func TestPublish_after_Run_ends_fails_unavailable(t *testing.T) {
	srv := redistest.Start(t)
	s, stop, done := newPublishStore(t, srv.URL())
	stop()
	<-done
	res := make([]relay.PublishResult, 1)
	start := time.Now()
	s.Publish(context.Background(), []relay.PublishRequest{{Event: pubEvent(1)}}, res)
	if !errors.Is(res[0].Err, relay.ErrUnavailable) {
		t.Errorf("got error %v, want ErrUnavailable", res[0].Err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish took %v after Run ended, want it to fail at once", d)
	}
	n, err := srv.Client(t).XLen(context.Background(), "hyvve:events:{acme}").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("got stream length %d after a failed publish, want 0", n)
	}
}

// BenchmarkPublish measures one event per Publish through a real Redis, with
// concurrent callers (-cpu sets their number via RunParallel).
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	s, _, _ := newPublishStore(b, srv.URL())
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		reqs := []relay.PublishRequest{{Event: pubEvent(1)}}
		res := make([]relay.PublishResult, 1)
		for pb.Next() {
			s.Publish(context.Background(), reqs, res)
			if res[0].Err != nil {
				b.Fatal(res[0].Err)
			}
		}
	})
}
