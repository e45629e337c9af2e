package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/testutil/freeport"
)

func TestPublish_fills_every_result_and_counts_what_it_wrote(t *testing.T) {
	s := openSetupOnly(t, Options{})
	evs := []*event.Event{newEvent("acme", 1), newEvent("globex", 2), newEvent("acme", 3)}
	res := publish(t, s, evs...)
	for i, r := range res {
		want := relay.PublishResult{Stream: "hyvve.events." + evs[i].TenantID, StreamID: strconv.Itoa(i + 1),
			EventID: evs[i].ID, CorrelationID: evs[i].CorrelationID}
		if r != want {
			t.Errorf("result %d: got %+v, want %+v", i, r, want)
		}
	}
	if got := s.published.Load(); got != int64(len(evs)) {
		t.Errorf("published counter: got %d, want %d", got, len(evs))
	}
}

func TestPublish_refuses_a_tenant_that_is_not_one_subject_token(t *testing.T) {
	s := openSetupOnly(t, Options{})
	for _, tenant := range []string{"", "a.b", "a*", "a>", "a b"} {
		t.Run(tenant, func(t *testing.T) {
			bad := newEvent("acme", 1)
			bad.TenantID = tenant
			good := newEvent("acme", 2)
			reqs := []relay.PublishRequest{{Event: bad}, {Event: good}}
			res := make([]relay.PublishResult, 2)
			s.Publish(context.Background(), reqs, res)
			var evErr *event.Error
			if !errors.As(res[0].Err, &evErr) || evErr.Field != "tenantId" {
				t.Errorf("tenant %q: got error %v, want an *event.Error on tenantId", tenant, res[0].Err)
			}
			if res[1].Err != nil || res[1].StreamID == "" {
				t.Errorf("the valid event of the same batch: got %+v, want it written", res[1])
			}
		})
	}
}

func TestPublish_with_an_idempotency_key_returns_the_first_ids(t *testing.T) {
	s := openSetupOnly(t, Options{})
	ctx := context.Background()
	publishKeyed := func(t *testing.T, reqs ...relay.PublishRequest) []relay.PublishResult {
		t.Helper()
		res := make([]relay.PublishResult, len(reqs))
		s.Publish(ctx, reqs, res)
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("result %d: %v", i, r.Err)
			}
		}
		return res
	}
	first := newEvent("acme", 1)
	firstRes := publishKeyed(t, relay.PublishRequest{Event: first, IdempotencyKey: "k1"})[0]
	if firstRes.Duplicate {
		t.Fatal("first publish with a key: got Duplicate, want a new event")
	}

	cases := []struct {
		name      string
		reqs      []relay.PublishRequest
		wantDup   []bool
		wantFirst []bool // the result carries the first publish's ids
	}{
		{"same key, same tenant",
			[]relay.PublishRequest{{Event: newEvent("acme", 2), IdempotencyKey: "k1"}},
			[]bool{true}, []bool{true}},
		{"same key, another tenant",
			[]relay.PublishRequest{{Event: newEvent("globex", 3), IdempotencyKey: "k1"}},
			[]bool{false}, []bool{false}},
		{"a new key twice in one batch",
			[]relay.PublishRequest{{Event: newEvent("acme", 4), IdempotencyKey: "k2"}, {Event: newEvent("acme", 5), IdempotencyKey: "k2"}},
			[]bool{false, true}, nil},
		{"no key is never a duplicate",
			[]relay.PublishRequest{{Event: first}, {Event: first}},
			[]bool{false, false}, []bool{false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.published.Load()
			res := publishKeyed(t, tc.reqs...)
			var written int64
			for i, r := range res {
				if r.Duplicate != tc.wantDup[i] {
					t.Errorf("result %d: got Duplicate %v, want %v", i, r.Duplicate, tc.wantDup[i])
				}
				if !r.Duplicate {
					written++
				}
				switch {
				case tc.wantFirst != nil && tc.wantFirst[i]:
					if r.StreamID != firstRes.StreamID || r.EventID != first.ID || r.CorrelationID != first.CorrelationID {
						t.Errorf("result %d: got entry %s, event %s, correlation %s; want the first publish's %s, %s, %s",
							i, r.StreamID, r.EventID, r.CorrelationID, firstRes.StreamID, first.ID, first.CorrelationID)
					}
				case tc.wantDup[i]: // a duplicate of the batch's first request
					if r.StreamID != res[0].StreamID || r.EventID != tc.reqs[0].Event.ID || r.CorrelationID != tc.reqs[0].Event.CorrelationID {
						t.Errorf("result %d: got entry %s, event %s; want the batch's first %s, %s",
							i, r.StreamID, r.EventID, res[0].StreamID, tc.reqs[0].Event.ID)
					}
				default:
					if r.EventID != tc.reqs[i].Event.ID || r.StreamID == firstRes.StreamID {
						t.Errorf("result %d: got entry %s, event %s; want a new entry of event %s", i, r.StreamID, r.EventID, tc.reqs[i].Event.ID)
					}
				}
			}
			if got := s.published.Load() - before; got != written {
				t.Errorf("published counter: got +%d, want +%d", got, written)
			}
		})
	}
	info, err := s.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(1 + 0 + 1 + 1 + 2); info.State.Msgs != want {
		t.Errorf("events stream: got %d messages, want %d", info.State.Msgs, want)
	}
}

func TestPublish_is_unavailable_when_the_server_cannot_be_reached(t *testing.T) {
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		store func(t *testing.T) *Store
	}{
		{"server went down", func(t *testing.T) *Store {
			srv, url := openServer(t)
			s := open(t, Options{URL: url})
			publish(t, s.Store, newEvent("acme", 0)) // it worked while the server was up
			srv.stop()
			return s.Store
		}},
		{"server never reached", func(t *testing.T) *Store {
			s, err := New(withDefaults(t, Options{URL: "nats://127.0.0.1:" + strconv.Itoa(port)}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done; s.Close() })
			return s
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.store(t)
			const timeout = 500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			reqs := []relay.PublishRequest{{Event: newEvent("acme", 1)}, {Event: newEvent("globex", 2), IdempotencyKey: "k"}}
			res := make([]relay.PublishResult, len(reqs))
			start := time.Now()
			s.Publish(ctx, reqs, res)
			if took := time.Since(start); took > timeout+250*time.Millisecond {
				t.Errorf("Publish took %s with a %s deadline", took, timeout)
			}
			for i, r := range res {
				if !errors.Is(r.Err, relay.ErrUnavailable) {
					t.Errorf("result %d: got error %v, want relay.ErrUnavailable", i, r.Err)
				}
			}
		})
	}
}

func TestPublish_of_many_concurrent_batches_writes_every_event(t *testing.T) {
	s := openSetupOnly(t, Options{})
	const callers, batch = 8, 600 // 4800 in flight: more than the async publisher's 4000 slots
	errs := make(chan error, callers)
	for c := range callers {
		go func() {
			reqs := make([]relay.PublishRequest, batch)
			for i := range reqs {
				reqs[i] = relay.PublishRequest{Event: newEvent("acme", c*batch+i)}
			}
			res := make([]relay.PublishResult, batch)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s.Publish(ctx, reqs, res)
			var bad []string
			for i, r := range res {
				if r.Err != nil || r.StreamID == "" {
					bad = append(bad, fmt.Sprintf("%d: %v", i, r.Err))
				}
			}
			if len(bad) > 0 {
				errs <- fmt.Errorf("caller %d: %d failed, first %s", c, len(bad), bad[0])
				return
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	info, err := s.events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != callers*batch {
		t.Errorf("events stream: got %d messages, want %d", info.State.Msgs, callers*batch)
	}
}

func BenchmarkPublish(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("1KiB/batch=%d", batch), func(b *testing.B) {
			s := openSetupOnly(b, Options{})
			ev := newEvent("acme", 0)
			ev.Data = []byte(`{"pad":"` + strings.Repeat("x", 1024-10) + `"}`)
			reqs := make([]relay.PublishRequest, batch)
			for i := range reqs {
				reqs[i] = relay.PublishRequest{Event: ev}
			}
			res := make([]relay.PublishResult, batch)
			ctx := context.Background()
			b.SetBytes(int64(len(ev.Data) * batch))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.Publish(ctx, reqs, res)
				if res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
		})
	}
	b.Run("1KiB/parallel", func(b *testing.B) {
		s := openSetupOnly(b, Options{})
		ev := newEvent("acme", 0)
		ev.Data = []byte(`{"pad":"` + strings.Repeat("x", 1024-10) + `"}`)
		b.SetBytes(int64(len(ev.Data)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			reqs := []relay.PublishRequest{{Event: ev}}
			res := make([]relay.PublishResult, 1)
			for pb.Next() {
				s.Publish(context.Background(), reqs, res)
				if res[0].Err != nil {
					b.Error(res[0].Err)
					return
				}
			}
		})
	})
}

// The embedded server takes the largest event the local API accepts, and
// can still dead-letter it (its failure headers need room too).
func TestPublish_of_an_event_of_max_event_bytes_is_stored_and_can_be_dead_lettered(t *testing.T) {
	const maxEventBytes = 1 << 20
	s := open(t, Options{MaxEventBytes: maxEventBytes, Group: "g", Retry: fastRetry(t)})
	ev := newEvent("acme", 1)
	ev.Data = []byte(`{"blob":"` + strings.Repeat("x", maxEventBytes-100) + `"}`)
	publish(t, s.Store, ev)
	msgs := fetchN(t, s.Store, 1, 5*time.Second)
	if got := len(msgs[0].Event.Data); got != len(ev.Data) {
		t.Fatalf("data read back: %d bytes, want %d", got, len(ev.Data))
	}
	moved, err := s.DeadLetter(context.Background(), msgs[0], 1, strings.Repeat("e", 4096))
	if err != nil || !moved {
		t.Fatalf("DeadLetter: %v, %v; want true, nil", moved, err)
	}
}

// A publish answered ErrUnavailable while the server was away is not sent
// later, when the connection is back: the app was told 503 and may publish
// again, so a late write would be a duplicate.
func TestPublish_refused_while_the_server_was_down_is_never_written(t *testing.T) {
	dir := t.TempDir()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := open(t, Options{Listen: addr, DataDir: dir})
	s := open(t, Options{URL: "nats://" + addr})
	publish(t, s.Store, newEvent("acme", 1))
	srv.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res := make([]relay.PublishResult, 1)
	s.Publish(ctx, []relay.PublishRequest{{Event: newEvent("acme", 2)}}, res)
	if !errors.Is(res[0].Err, relay.ErrUnavailable) {
		t.Fatalf("publish while down: got %v, want relay.ErrUnavailable", res[0].Err)
	}

	srv = open(t, Options{Listen: addr, DataDir: dir})
	eventually(t, 10*time.Second, "a publish after the server came back", func() bool {
		res := make([]relay.PublishResult, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Publish(ctx, []relay.PublishRequest{{Event: newEvent("acme", 3)}}, res)
		return res[0].Err == nil
	})
	info, err := srv.events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2 (the one refused while down must not be written)", info.State.Msgs)
	}
}
