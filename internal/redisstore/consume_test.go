package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
