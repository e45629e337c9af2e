package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
)

func TestStats_reports_lengths_lag_pending_and_published_per_minute(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	add := func(tenant string, n int) []string {
		var ids []string
		for i := range n {
			id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:events:{" + tenant + "}", Values: []any{"n", i}}).Result()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := c.SAdd(ctx, "hyvve:tenants", tenant).Err(); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	acme := add("acme", 10)
	add("beta", 3)
	add("gamma", 1)
	seedDLQ(t, c, testEvent("beta", "a.b", 1), "billing")
	seedDLQ(t, c, testEvent("beta", "a.b", 2), "billing")
	// billing reads 4 of acme's entries and acknowledges 1: lag 6, pending 3.
	if err := c.XGroupCreate(ctx, "hyvve:events:{acme}", "billing", "0").Err(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: "c1",
		Streams: []string{"hyvve:events:{acme}", ">"}, Count: 4}).Result()
	if err != nil || len(msgs[0].Messages) != 4 {
		t.Fatalf("read: %v %v", msgs, err)
	}
	c.XAck(ctx, "hyvve:events:{acme}", "billing", acme[0])
	// audit has read nothing when the first 5 entries are trimmed and one
	// more deleted: Redis cannot tell the groups' lag any more.
	if err := c.XGroupCreate(ctx, "hyvve:events:{acme}", "audit", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XTrimMinID(ctx, "hyvve:events:{acme}", acme[5]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XDel(ctx, "hyvve:events:{acme}", acme[7]).Err(); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	pipe := s.rdb.Pipeline()
	s.CountPublished(ctx, pipe, now, batchEvents([]*job{{reqs: make([]relay.PublishRequest, 3)}, {reqs: make([]relay.PublishRequest, 4)}}))
	s.CountPublished(ctx, pipe, now.Add(-2*time.Minute), 5)
	s.CountPublished(ctx, pipe, now.Add(-2*time.Hour), 99) // outside the hour
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	st, err := s.Stats(ctx, StatsQuery{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.TenantCount != 3 || len(st.Tenants) != 3 || st.NextCursor != "" {
		t.Fatalf("got %d tenants of %d, cursor %q, want 3 of 3 and no cursor", len(st.Tenants), st.TenantCount, st.NextCursor)
	}
	got := map[string]TenantStats{}
	for _, ts := range st.Tenants {
		got[ts.Tenant] = ts
	}
	for _, tc := range []struct {
		tenant      string
		length, dlq int64
	}{{"acme", 4, 0}, {"beta", 3, 2}, {"gamma", 1, 0}} {
		if g := got[tc.tenant]; g.StreamLength != tc.length || g.DLQLength != tc.dlq {
			t.Errorf("%s: got length %d, dlq %d; want %d, %d", tc.tenant, g.StreamLength, g.DLQLength, tc.length, tc.dlq)
		}
	}
	groups := map[string]GroupStats{}
	for _, g := range got["acme"].Groups {
		groups[g.Name] = g
	}
	// Entries 5, 6, 8 and 9 are left, all after both groups' positions.
	for _, tc := range []struct {
		group   string
		pending int64
	}{{"billing", 3}, {"audit", 0}} {
		if g := groups[tc.group]; g.Lag != 4 || !g.LagEstimated || g.Pending != tc.pending {
			t.Errorf("%s: got lag %d (estimated %v) pending %d, want 4 estimated and %d", tc.group, g.Lag, g.LagEstimated, g.Pending, tc.pending)
		}
	}
	if n := len(st.PublishedPerMinute); n != 60 {
		t.Fatalf("got %d minutes, want 60", n)
	}
	var total int64
	for _, m := range st.PublishedPerMinute {
		total += m.Count
	}
	if last, prev2 := st.PublishedPerMinute[59], st.PublishedPerMinute[57]; last.Count != 7 || prev2.Count != 5 || total != 12 {
		t.Errorf("per minute: got last %d, two before %d, total %d; want 7, 5, 12", last.Count, prev2.Count, total)
	}
	if !st.PublishedPerMinute[59].Start.Equal(now.Truncate(time.Minute)) {
		t.Errorf("last minute starts %v, want %v", st.PublishedPerMinute[59].Start, now.Truncate(time.Minute))
	}
}

func TestStats_pages_tenants_in_order(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	for i := range 25 {
		if err := c.SAdd(ctx, "hyvve:tenants", fmt.Sprintf("t%02d", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.SAdd(ctx, "hyvve:tenants", "bad tenant{}") // never becomes a key
	var seen []string
	cursor := ""
	for range 10 {
		st, err := s.Stats(ctx, StatsQuery{Limit: 10, Cursor: cursor}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if st.TenantCount != 25 {
			t.Errorf("got tenant count %d, want 25", st.TenantCount)
		}
		for _, ts := range st.Tenants {
			seen = append(seen, ts.Tenant)
		}
		if cursor = st.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 25 || seen[0] != "t00" || seen[24] != "t24" {
		t.Errorf("got %d tenants %v, want t00..t24 once each", len(seen), seen)
	}
	if _, err := s.Stats(ctx, StatsQuery{Cursor: "no such{"}, time.Now()); err == nil {
		t.Errorf("malformed cursor: got no error, want one")
	}
}
