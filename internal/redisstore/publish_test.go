package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// runStore is a Store made with o, running until the test ends; stop ends
// Run earlier and waits for it (twice is once).
func runStore(t testing.TB, o Options) (s *Store, stop func()) {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

// newPublishStore is a running publish-only Store on url.
func newPublishStore(t testing.TB, url string) (*Store, func()) {
	t.Helper()
	return runStore(t, Options{URL: url, Retention: time.Hour, DLQRetention: time.Hour})
}

func pubEvent(i int) *event.Event {
	return &event.Event{ID: fmt.Sprintf("ev-%d", i), Type: "bench.event", Source: "test", Timestamp: "2026-01-01T00:00:00Z",
		CorrelationID: fmt.Sprintf("corr-%d", i), TenantID: "acme", Data: []byte(`{"n":1}`)}
}

func TestPublish_concurrent_callers_are_all_written_once(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newPublishStore(t, srv.URL())
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

// A publisher that finds a pipeline free sends it itself; a Redis that
// accepts the connection and never answers must still not hold it past its
// deadline, nor the publishers that queue behind it past theirs.
func TestPublish_keeps_the_publishers_deadline_when_Redis_does_not_answer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) // read and never answer
		}
	}()
	s, _ := newPublishStore(t, "redis://"+ln.Addr().String())
	const deadline = 300 * time.Millisecond
	var wg sync.WaitGroup
	errs := make([]error, 8) // more than the pipelines in flight: some queue
	took := make([]time.Duration, len(errs))
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			res := make([]relay.PublishResult, 1)
			start := time.Now()
			s.Publish(ctx, []relay.PublishRequest{{Event: pubEvent(i)}}, res)
			errs[i], took[i] = res[0].Err, time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, relay.ErrUnavailable) {
			t.Errorf("publish %d: got %v, want ErrUnavailable", i, err)
		}
		if took[i] > deadline+time.Second {
			t.Errorf("publish %d took %v, want about its %v deadline", i, took[i], deadline)
		}
	}
	s.Close() // the writers' own pipelines are still waiting: end them
}

func TestPublish_after_Run_ends_fails_unavailable(t *testing.T) {
	srv := redistest.Start(t)
	s, stop := newPublishStore(t, srv.URL())
	stop()
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
// 16 concurrent callers per -cpu (RunParallel), for a small and a 1 KiB data
// object.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	s, _ := newPublishStore(b, srv.URL())
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("data=%dB", size), func(b *testing.B) {
			data := []byte(`{"pad":"` + strings.Repeat("x", size-len(`{"pad":""}`)) + `"}`)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				ev := pubEvent(1)
				ev.Data = data
				reqs := []relay.PublishRequest{{Event: ev}}
				res := make([]relay.PublishResult, 1)
				for pb.Next() {
					s.Publish(context.Background(), reqs, res)
					if res[0].Err != nil {
						b.Fatal(res[0].Err)
					}
				}
			})
		})
	}
}

func TestAppendEntry_writes_the_fields_of_AppendValues(t *testing.T) {
	// Every string field set (found by reflection, so a field added to
	// Event and to AppendValues but not here fails), and the minimal event.
	full := &event.Event{Replay: true, Data: []byte(`{"a":1}`)}
	v := reflect.ValueOf(full).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString(v.Type().Field(i).Name + "-value")
		}
	}
	tests := []struct {
		name string
		ev   *event.Event
	}{
		{"every field set", full},
		{"required fields only, no data", &event.Event{ID: "e1", Type: "a.b", TenantID: "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []any
			for _, a := range appendEntry(nil, tt.ev) {
				switch x := a.(type) {
				case *string:
					got = append(got, *x)
				case []byte:
					got = append(got, string(x))
				default:
					got = append(got, x)
				}
			}
			if want := tt.ev.AppendValues(nil); !reflect.DeepEqual(got, want) {
				t.Errorf("appendEntry, dereferenced:\ngot  %q\nwant %q", got, want)
			}
		})
	}
}

func TestPublish_signals_each_tenant_of_a_pipeline_once(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newPublishStore(t, srv.URL())
	c := srv.Client(t)
	reqs := []relay.PublishRequest{{Event: pubEvent(1)}, {Event: pubEvent(2)}, {Event: pubEvent(3)}}
	reqs[1].Event.TenantID = "globex"
	res := make([]relay.PublishResult, len(reqs))
	s.Publish(context.Background(), reqs, res)
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	sigs, err := c.XRange(context.Background(), "hyvve:notify", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 1 {
		t.Fatalf("got %d signals, want 1 for the one pipeline", len(sigs))
	}
	if got, want := sigs[0].Values[notifyField], "acme globex"; got != want {
		t.Errorf("signal names %q, want %q", got, want)
	}
}

func TestPublish_writes_entries_readable_as_events(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newPublishStore(t, srv.URL())
	ev := testEvent("acme", "user.joined", 7)
	ev.Replay, ev.ReplayOf, ev.TraceState = true, "1-1", "vendor=x"
	reqs := []relay.PublishRequest{{Event: ev}, {Event: ev, IdempotencyKey: "k1"}}
	res := make([]relay.PublishResult, len(reqs))
	s.Publish(context.Background(), reqs, res)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("request %d: %v", i, r.Err)
		}
		msgs, err := srv.Client(t).XRange(context.Background(), "hyvve:events:{acme}", r.StreamID, r.StreamID).Result()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("request %d: entry %s: %v, %d entries", i, r.StreamID, err, len(msgs))
		}
		got, err := event.FromValues(msgs[0].Values)
		if err != nil {
			t.Fatalf("request %d: FromValues: %v", i, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("request %d: read back\ngot  %+v\nwant %+v", i, got, ev)
		}
	}
}

// The published-per-minute counter costs one INCRBY per pipeline; its TTL is
// set once, and again if the counter was deleted meanwhile.
func TestPublish_sets_the_counters_TTL_once_and_again_when_it_vanished(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	s, _ := newPublishStore(t, srv.URL())
	publish := func(i int) {
		t.Helper()
		res := make([]relay.PublishResult, 1)
		s.Publish(ctx, []relay.PublishRequest{{Event: pubEvent(i)}}, res)
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
	expires := func() int {
		t.Helper()
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if rest, ok := strings.CutPrefix(line, "cmdstat_expire:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				return n
			}
		}
		return 0
	}
	counter := func() string {
		t.Helper()
		keys, err := c.Keys(ctx, "hyvve:stats:published:*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("got counters %v (%v), want one", keys, err)
		}
		if ttl := c.TTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > publishedTTL {
			t.Errorf("counter %s: got TTL %v, want within %v", keys[0], ttl, publishedTTL)
		}
		return keys[0]
	}

	for i := range 5 {
		publish(i)
	}
	key := counter()
	if got := expires(); got > 2 { // a minute may turn during the test
		t.Errorf("got %d EXPIRE for 5 pipelines, want 1 (2 if the minute turned)", got)
	}
	if n, _ := c.Get(ctx, key).Int(); n != 5 {
		t.Errorf("got count %d, want 5", n)
	}

	c.Del(ctx, key)
	publish(5) // recreates the counter without a TTL, and learns it
	publish(6)
	counter()
}
