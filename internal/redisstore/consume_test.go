package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

func TestConsumers_silent_with_nothing_pending_are_removed_and_others_kept(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	pol, _ := retry.NewPolicy([]time.Duration{time.Minute})
	s, err := New(Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour, Group: "g", Consumer: "live",
		Retry: pol, ConsumerExpiry: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	stream := "hyvve:events:{acme}"
	if err := c.SAdd(ctx, "hyvve:tenants", "acme").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", "e1", "type", "a.b", "tenantId", "acme"}})
	// dead-pending holds an entry; dead-empty read and holds nothing.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead-pending", Streams: []string{stream, ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XGroupCreateConsumer(ctx, stream, "g", "dead-empty").Err(); err != nil {
		t.Fatal(err)
	}
	names := func() map[string]bool {
		cs, err := c.XInfoConsumers(ctx, stream, "g").Result()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, x := range cs {
			m[x.Name] = true
		}
		return m
	}
	if got := names(); !got["dead-pending"] || !got["dead-empty"] {
		t.Fatalf("consumers before: got %v", got)
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	deadline := time.Now().Add(5 * time.Second)
	for names()["dead-empty"] {
		if time.Now().After(deadline) {
			t.Fatalf("dead-empty was not removed; consumers: %v", names())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !names()["dead-pending"] {
		t.Errorf("dead-pending was removed although it holds a pending entry")
	}
	if pe, _ := c.XPending(ctx, stream, "g").Result(); pe.Count != 1 {
		t.Errorf("pending entries: got %d, want 1", pe.Count)
	}
}

func TestFetch_drains_a_backlog_of_due_retries_without_waiting_a_scan_interval_per_page(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	pol, _ := retry.NewPolicy([]time.Duration{time.Minute}) // scan interval 15 s
	s, err := New(Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour, Group: "g", Consumer: "live",
		Retry: pol, DiscoveryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	stream := "hyvve:events:{acme}"
	c.SAdd(ctx, "hyvve:tenants", "acme")
	if err := c.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", "e" + string(rune('a'+i%26)) + time.Now().String(), "type", "a.b", "tenantId", "acme"}})
	}
	// A dead consumer read them all long ago (idle set to 2 minutes).
	msgs, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{stream, ">"}, Count: n}).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[0].Messages {
		if err := c.Do(ctx, "XCLAIM", stream, "g", "dead", 0, m.ID, "IDLE", 120000, "JUSTID").Err(); err != nil {
			t.Fatal(err)
		}
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	got := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		ms, err := s.Fetch(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Attempt != 2 {
				t.Errorf("reclaimed entry %s: attempt %d, want 2", m.StreamID, m.Attempt)
			}
			got[m.StreamID] = true
		}
	}
	if len(got) != n {
		t.Errorf("reclaimed within 5 s: got %d of %d (a backlog must not wait a scan interval per page)", len(got), n)
	}
}

// newGroupStore is a Store of group "g" on srv, running, with tenant
// discovery every 20 ms, that reads through change signals whatever the
// number of streams (DirectRead -1), as with many tenants.
func newGroupStore(t *testing.T, srv *redistest.Server) *Store {
	t.Helper()
	pol, _ := retry.NewPolicy([]time.Duration{time.Minute})
	s, _ := runStore(t, Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour, Group: "g", Consumer: "live",
		Retry: pol, DiscoveryInterval: 20 * time.Millisecond, DirectRead: -1})
	return s
}

// seedTenants registers n tenants t0000… with an empty stream each.
func seedTenants(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	pipe := c.Pipeline()
	for i := range n {
		tenant := fmt.Sprintf("t%04d", i)
		pipe.XGroupCreateMkStream(ctx, "hyvve:events:{"+tenant+"}", "seed", "$")
		pipe.SAdd(ctx, "hyvve:tenants", tenant)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// fetchUntil calls Fetch until it returned want messages in all or the
// deadline passed, and returns what it got.
func fetchUntil(t *testing.T, s *Store, want int, within time.Duration) []*relay.Message {
	t.Helper()
	var got []*relay.Message
	for deadline := time.Now().Add(within); len(got) < want && time.Now().Before(deadline); {
		ms, err := s.Fetch(context.Background(), 16)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ms...)
	}
	return got
}

// waitStreams waits until the store's group reads n streams.
func waitStreams(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.consumer.mu.Lock()
		got := len(s.consumer.streams)
		s.consumer.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams discovered: got %d, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle calls Fetch until the first sweep and the first scan of the
// pending lists are over, and fails if that returned any message.
func settle(t *testing.T, s *Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ms, err := s.Fetch(context.Background(), 16)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) > 0 {
			t.Fatalf("settling: got %d messages, want none", len(ms))
		}
		if c := s.consumer; c.notifyID != "" && c.sweepPos < 0 && c.scanPos == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the first sweep did not end within 10 s")
		}
	}
}

// noSweepFor makes the store's next sweep due only after d, so what Fetch
// returns until then came by a change signal.
func noSweepFor(s *Store, d time.Duration) { s.consumer.lastSweep = time.Now().Add(d) }

func TestFetch_reads_a_published_event_by_its_signal_without_a_sweep(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	seedTenants(t, c, 50)
	s := newGroupStore(t, srv)
	waitStreams(t, s, 50)
	settle(t, s)
	noSweepFor(s, time.Hour)

	ev := testEvent("t0042", "user.joined", 1)
	res := make([]relay.PublishResult, 1)
	s.Publish(context.Background(), []relay.PublishRequest{{Event: ev}}, res)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	start := time.Now()
	got := fetchUntil(t, s, 1, 3*time.Second)
	if len(got) != 1 {
		t.Fatalf("got %d messages within 3 s, want the published one", len(got))
	}
	if got[0].StreamID != res[0].StreamID || got[0].Tenant != "t0042" || got[0].Event.ID != ev.ID {
		t.Errorf("got %s/%s event %s, want %s/t0042 event %s", got[0].StreamID, got[0].Tenant, got[0].Event.ID, res[0].StreamID, ev.ID)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the signalled event took %v, want well under a second", d)
	}
}

func TestFetch_finds_entries_without_a_signal_by_sweeping_every_stream(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	const n = 2*readChunk + 100 // a sweep of three XREADGROUPs
	seedTenants(t, c, n)
	s := newGroupStore(t, srv)
	waitStreams(t, s, n)
	settle(t, s)
	noSweepFor(s, time.Hour)

	// Appended by another program: no change signal.
	last := fmt.Sprintf("t%04d", n-1)
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:events:{" + last + "}", Values: testEvent(last, "user.joined", 1).AppendValues(nil)}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchUntil(t, s, 1, 600*time.Millisecond); len(got) != 0 {
		t.Fatalf("before a sweep: got %d messages, want 0 (nothing signalled it)", len(got))
	}
	noSweepFor(s, -time.Second) // due now
	got := fetchUntil(t, s, 1, 3*time.Second)
	if len(got) != 1 || got[0].StreamID != id {
		t.Fatalf("after a sweep: got %d messages (%v), want entry %s of %s", len(got), got, id, last)
	}
}

func TestFetch_sweeps_when_it_fell_a_page_of_signals_behind(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	seedTenants(t, c, 3)
	s := newGroupStore(t, srv)
	waitStreams(t, s, 3)
	settle(t, s)
	noSweepFor(s, time.Hour)

	// An entry without a signal, then a full page of signals naming other
	// tenants: as if its signal had been trimmed before this reader saw it.
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:events:{t0001}", Values: testEvent("t0001", "user.joined", 1).AppendValues(nil)}).Result()
	if err != nil {
		t.Fatal(err)
	}
	pipe := c.Pipeline()
	for range notifyPage {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:notify", Values: []any{notifyField, "t0002"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got := fetchUntil(t, s, 1, 3*time.Second)
	if len(got) != 1 || got[0].StreamID != id {
		t.Fatalf("got %d messages (%v), want entry %s found by the sweep a full page of signals starts", len(got), got, id)
	}
}

func TestFetch_reads_a_new_tenant_whose_signal_came_before_its_discovery(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	seedTenants(t, c, 1)
	s := newGroupStore(t, srv)
	waitStreams(t, s, 1)
	settle(t, s)
	noSweepFor(s, time.Hour)

	// Published through another store: registered, appended and signalled
	// at once, before this store's discovery saw the tenant.
	pub, _ := newPublishStore(t, srv.URL())
	res := make([]relay.PublishResult, 1)
	pub.Publish(context.Background(), []relay.PublishRequest{{Event: testEvent("newco", "user.joined", 1)}}, res)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := fetchUntil(t, s, 1, 3*time.Second)
	if len(got) != 1 || got[0].StreamID != res[0].StreamID || got[0].Tenant != "newco" {
		t.Fatalf("got %d messages (%v), want newco's entry %s", len(got), got, res[0].StreamID)
	}
}

func TestFetch_rereads_a_stream_that_filled_its_count(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	seedTenants(t, c, 2)
	s := newGroupStore(t, srv)
	waitStreams(t, s, 2)
	settle(t, s)
	noSweepFor(s, time.Hour)

	// One publish of 40 events, one signal: Fetch(16) must still get all.
	const n = 40
	reqs := make([]relay.PublishRequest, n)
	for i := range reqs {
		reqs[i] = relay.PublishRequest{Event: testEvent("t0001", "user.joined", i)}
	}
	res := make([]relay.PublishResult, n)
	s.Publish(context.Background(), reqs, res)
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	got := fetchUntil(t, s, n, 5*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.StreamID] = true
	}
	if len(seen) != n {
		t.Errorf("got %d distinct entries, want %d", len(seen), n)
	}
}

func TestFetch_reclaims_due_entries_of_streams_past_the_first_scan_chunk(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	const n = 2*readChunk + 100
	seedTenants(t, c, n)
	last := fmt.Sprintf("t%04d", n-1)
	stream := "hyvve:events:{" + last + "}"
	if err := c.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: testEvent(last, "user.joined", 1).AppendValues(nil)}).Result()
	if err != nil {
		t.Fatal(err)
	}
	// A dead consumer read it two minutes ago.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{stream, ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "XCLAIM", stream, "g", "dead", 0, id, "IDLE", 120000, "JUSTID").Err(); err != nil {
		t.Fatal(err)
	}
	s := newGroupStore(t, srv)
	waitStreams(t, s, n)
	got := fetchUntil(t, s, 1, 5*time.Second)
	if len(got) != 1 || got[0].StreamID != id || got[0].Attempt != 2 {
		t.Fatalf("got %d messages (%v), want entry %s of %s as attempt 2", len(got), got, id, last)
	}
}

// A sidecar is ready only once its group is registered: an event its app
// publishes right after /readyz answered 200 must reach the app's own group.
func TestPing_is_not_ready_until_the_group_is_registered(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	pol, _ := retry.NewPolicy([]time.Duration{time.Minute})
	s, err := New(Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour, Group: "billing", Consumer: "c1", Retry: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Ping(ctx); !errors.Is(err, relay.ErrUnavailable) || !strings.Contains(err.Error(), "consumer group billing is not registered yet") {
		t.Fatalf("Ping before Run: got %v, want ErrUnavailable naming the unregistered group", err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ping after Run: %v", s.Ping(ctx))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, _ := srv.Client(t).HExists(ctx, "hyvve:groups", "billing").Result(); !ok {
		t.Errorf("Ping answered ready, but the group billing is not in hyvve:groups")
	}
}

// With few streams a reader blocks on all of them at once: an entry another
// program wrote (no change signal) arrives at once, with no sweep.
func TestFetch_of_few_streams_blocks_on_them_directly(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	seedTenants(t, c, 3)
	pol, _ := retry.NewPolicy([]time.Duration{time.Minute})
	s, _ := runStore(t, Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour, Group: "g", Consumer: "live",
		Retry: pol, DiscoveryInterval: 20 * time.Millisecond})
	waitStreams(t, s, 3)
	noSweepFor(s, time.Hour)

	got := make(chan []*relay.Message, 1)
	go func() {
		for {
			ms, err := s.Fetch(context.Background(), 16)
			if err != nil || len(ms) > 0 {
				got <- ms
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // the reader is blocked in XREADGROUP now
	start := time.Now()
	if err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: "hyvve:events:{t0001}",
		Values: []any{"id", "e1", "type", "a.b", "tenantId", "t0001"}}).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0].Event == nil || ms[0].Event.ID != "e1" {
			t.Fatalf("got %v, want the entry e1", ms)
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("the entry took %v, want it at once (the reader blocks on every stream)", d)
		}
		if n, _ := c.XLen(context.Background(), "hyvve:notify").Result(); n != 0 {
			t.Errorf("signals: got %d, want none (nothing published through the store)", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the entry written without a signal did not arrive within 5 s")
	}
}
