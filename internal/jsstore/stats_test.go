package jsstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/localapi"
	"github.com/hyvve/sidecar/internal/relay"
)

// admMinuteCount reads the stats bucket's counter of now's minute (0 when
// there is none).
func admMinuteCount(t *testing.T, s *Store, now time.Time) int64 {
	t.Helper()
	e, err := s.stats.Get(context.Background(), statsKey(now))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		t.Fatalf("counter %s: got %q, want a number", statsKey(now), e.Value())
	}
	return n
}

// admPublishedLastHour sums BrokerStats' PublishedPerMinute.
func admPublishedLastHour(t *testing.T, s *Store) int64 {
	t.Helper()
	st, err := s.BrokerStats(context.Background(), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range st.PublishedPerMinute {
		n += m.Count
	}
	return n
}

func TestFlushPublished_adds_the_count_to_the_minute_and_resets_it(t *testing.T) {
	s := admSetupOnly(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 30, 15, 0, time.UTC)
	for _, step := range []struct {
		add, want int64
	}{{5, 5}, {0, 5}, {3, 8}} {
		s.published.Add(step.add)
		if err := s.flushPublished(ctx, now); err != nil {
			t.Fatal(err)
		}
		if got := s.published.Load(); got != 0 {
			t.Errorf("after flushing %d: published is %d, want 0", step.add, got)
		}
		if got := admMinuteCount(t, s, now); got != step.want {
			t.Errorf("after flushing %d: minute counter %d, want %d", step.add, got, step.want)
		}
	}
	if got := admMinuteCount(t, s, now.Add(time.Minute)); got != 0 {
		t.Errorf("next minute: got %d, want 0", got)
	}
}

func TestFlushPublished_keeps_the_count_when_the_server_is_down(t *testing.T) {
	srv, url := admOpenServer(t)
	s := admOpen(t, Options{URL: url})
	srv.stop()
	s.published.Add(4) // after the store's last background flush could take it
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := s.flushPublished(ctx, time.Now())
	if !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("flush: got %v, want relay.ErrUnavailable", err)
	}
	if got := s.published.Load(); got < 4 {
		t.Errorf("published after a failed flush: got %d, want at least 4 (kept for the next flush)", got)
	}
}

func TestAddPublished_sidecars_sharing_a_server_lose_no_count(t *testing.T) {
	srv, url := admOpenServer(t)
	other := admOpen(t, Options{URL: url})
	now := time.Now()
	const perWriter, writers = 25, 4
	var wg sync.WaitGroup
	for _, s := range []*Store{srv.Store, other.Store} {
		for range writers {
			wg.Go(func() {
				for range perWriter {
					// A flush that lost maxCASAttempts races keeps its count
					// for the next one: do as runBackground does.
					for s.addPublished(context.Background(), now, 1) != nil {
					}
				}
			})
		}
	}
	wg.Wait()
	if got, want := admMinuteCount(t, srv.Store, now), int64(2*writers*perWriter); got != want {
		t.Errorf("counter: got %d, want %d", got, want)
	}
}

func TestRunBackground_flushes_every_second_and_when_stopped(t *testing.T) {
	srv, url := admOpenServer(t)
	s := admOpen(t, Options{URL: url})

	s.published.Add(3)
	deadline := time.Now().Add(5 * time.Second)
	for admPublishedLastHour(t, srv.Store) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("published last hour: got %d, want 3 within 5s", admPublishedLastHour(t, srv.Store))
		}
		time.Sleep(50 * time.Millisecond)
	}

	s.published.Add(4)
	s.stop() // the last flush, before the next tick
	if got := admPublishedLastHour(t, srv.Store); got != 7 {
		t.Errorf("published last hour after stop: got %d, want 7", got)
	}
}

// admPage is one BrokerStats page's tenants and cursor.
func admPage(st localapi.BrokerStats) ([]string, string) {
	var ts []string
	for _, t := range st.Tenants {
		ts = append(ts, t.Tenant)
	}
	return ts, st.NextCursor
}

func TestBrokerStats_pages_tenants_in_order(t *testing.T) {
	s := admOpen(t, Options{})
	for _, tenant := range []string{"t3", "t1", "t4", "t0", "t2"} {
		testPublishRaw(t, s.Store, admEvent(tenant, "approval.requested", 1))
	}
	ctx := context.Background()
	tests := []struct {
		name        string
		limit       int
		cursor      string
		want        []string
		wantCursor  string
		wantInvalid bool
	}{
		{"first page", 2, "", []string{"t0", "t1"}, "t1", false},
		{"middle page", 2, "t1", []string{"t2", "t3"}, "t3", false},
		{"last page", 2, "t3", []string{"t4"}, "", false},
		{"limit 0 is the default", 0, "", []string{"t0", "t1", "t2", "t3", "t4"}, "", false},
		{"a limit over the most is cut", 5000, "", []string{"t0", "t1", "t2", "t3", "t4"}, "", false},
		{"a cursor between tenants", 2, "t1a", []string{"t2", "t3"}, "t3", false},
		{"a cursor past the end", 2, "zz", nil, "", false},
		{"a malformed cursor", 2, "t1 ", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := s.BrokerStats(ctx, tt.limit, tt.cursor)
			if tt.wantInvalid {
				var e *event.Error
				if !errors.As(err, &e) || e.Field != "cursor" {
					t.Fatalf("got %v, want an *event.Error naming cursor", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, cur := admPage(st)
			if !slices.Equal(got, tt.want) || cur != tt.wantCursor || st.TenantCount != 5 {
				t.Errorf("got %v cursor %q count %d, want %v cursor %q count 5", got, cur, st.TenantCount, tt.want, tt.wantCursor)
			}
		})
	}
}

func TestBrokerStats_counts_streams_dead_letters_and_groups(t *testing.T) {
	billing := admOpen(t, Options{Group: "billing"})
	s := billing.Store
	ctx := context.Background()
	// crm.app exists before the events (it will lag behind all of them); a
	// consumer without the group metadata is not a group.
	if _, err := s.js.CreateOrUpdateConsumer(ctx, s.names.eventsStream(), jetstream.ConsumerConfig{
		Durable: durableName("crm.app"), DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: s.names.allEvents(), Metadata: map[string]string{groupMetadataKey: "crm.app"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.CreateOrUpdateConsumer(ctx, s.names.eventsStream(), jetstream.ConsumerConfig{
		Durable: "someone-else", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		testPublishRaw(t, s, admEvent("acme", "approval.requested", i))
	}
	for i := range 2 {
		testPublishRaw(t, s, admEvent("beta", "approval.requested", i))
	}
	admSeedDLQ(t, s, admEvent("acme", "approval.requested", 9), "billing")
	admSeedDLQ(t, s, admEvent("gamma", "approval.requested", 9), "billing")

	// billing holds 2 of the 5 events, delivered and not acknowledged.
	batch, err := s.cons.FetchNoWait(2)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 2 {
		t.Fatalf("fetched %d, want 2", n)
	}
	// late is created after the events: no lag, and one sidecar waiting.
	late, err := s.js.CreateOrUpdateConsumer(ctx, s.names.eventsStream(), jetstream.ConsumerConfig{
		Durable: durableName("late"), DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: s.names.allEvents(), Metadata: map[string]string{groupMetadataKey: "late"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := late.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for range waiting.Messages() {
		}
	}()

	want := localapi.BrokerStats{
		Tenants: []localapi.TenantStats{
			{Tenant: "acme", StreamLength: 3, DLQLength: 1, Groups: []localapi.GroupStats{}},
			{Tenant: "beta", StreamLength: 2, Groups: []localapi.GroupStats{}},
			{Tenant: "gamma", DLQLength: 1, Groups: []localapi.GroupStats{}},
		},
		TenantCount: 3,
		Groups: []localapi.GroupStats{
			{Group: "billing", Pending: 2, Lag: 3, LastDeliveredID: "2"},
			{Group: "crm.app", Lag: 5, LastDeliveredID: "0"},
			{Group: "late", Consumers: 1, LastDeliveredID: "5"},
		},
	}
	var st localapi.BrokerStats
	deadline := time.Now().Add(900 * time.Millisecond) // the pull request waits 1s
	for {
		if st, err = s.BrokerStats(ctx, 0, ""); err != nil {
			t.Fatal(err)
		}
		if st.Groups[len(st.Groups)-1].Consumers == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.EqualFunc(st.Tenants, want.Tenants, func(a, b localapi.TenantStats) bool {
		return a.Tenant == b.Tenant && a.StreamLength == b.StreamLength && a.DLQLength == b.DLQLength &&
			a.Groups != nil && len(a.Groups) == 0
	}) || st.TenantCount != want.TenantCount || st.NextCursor != "" {
		t.Errorf("tenants: got %+v (count %d, cursor %q), want %+v (count 3, no cursor)", st.Tenants, st.TenantCount,
			st.NextCursor, want.Tenants)
	}
	if !slices.Equal(st.Groups, want.Groups) {
		t.Errorf("groups:\n got %+v\nwant %+v", st.Groups, want.Groups)
	}
}

func TestBrokerStats_published_per_minute_is_the_last_hour_oldest_first(t *testing.T) {
	s := admSetupOnly(t)
	ctx := context.Background()
	now := time.Now()
	for _, c := range []struct {
		ago time.Duration
		n   int64
	}{{0, 6}, {2 * time.Minute, 4}, {59 * time.Minute, 1}, {60 * time.Minute, 100}} {
		if err := s.addPublished(ctx, now.Add(-c.ago), c.n); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.brokerStats(ctx, 0, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.PublishedPerMinute) != 60 {
		t.Fatalf("got %d minutes, want 60", len(st.PublishedPerMinute))
	}
	last := now.UTC().Truncate(time.Minute)
	for i, m := range st.PublishedPerMinute {
		want := localapi.MinuteCount{Minute: last.Add(time.Duration(i-59) * time.Minute)}
		switch i {
		case 59:
			want.Count = 6
		case 57:
			want.Count = 4
		case 0:
			want.Count = 1
		}
		if !m.Minute.Equal(want.Minute) || m.Minute.Location() != time.UTC || m.Count != want.Count {
			t.Errorf("minute %d: got %v %d, want %v %d", i, m.Minute, m.Count, want.Minute, want.Count)
		}
	}
}

func TestBrokerStats_reports_an_unavailable_server(t *testing.T) {
	srv, url := admOpenServer(t)
	s := admOpen(t, Options{URL: url})
	srv.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := s.BrokerStats(ctx, 0, ""); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("got %v, want relay.ErrUnavailable", err)
	}
}
