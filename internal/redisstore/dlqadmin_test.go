package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// newDLQStore starts a redis-server and a publish-only Store on it.
func newDLQStore(t *testing.T) (*Store, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, srv.Client(t), srv
}

func testEvent(tenant, typ string, n int) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("ev-%s-%d", tenant, n), Type: typ, Source: "crm",
		Timestamp: "2026-11-26T10:00:00.123Z", CorrelationID: fmt.Sprintf("corr-%d", n), TenantID: tenant,
		UserID: "u-42", Version: "1.0", Data: []byte(fmt.Sprintf(`{"n":%d}`, n)),
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

// seedDLQ writes a dead letter the way Store.DeadLetter does (the event's
// fields, then the dead-letter fields), registers the tenant, and returns the
// dead letter's id.
func seedDLQ(t *testing.T, c *redis.Client, ev *event.Event, group string) string {
	t.Helper()
	ctx := context.Background()
	values := ev.AppendValues(nil)
	values = append(values, fieldOriginalStreamID, "1764000000000-0", fieldGroup, group, fieldAttempts, "4",
		fieldLastError, "app answered 503", fieldFailedAt, "2026-11-26T10:30:00.000Z")
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:dlq:{" + ev.TenantID + "}", Values: values}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SAdd(ctx, "hyvve:tenants", ev.TenantID).Err(); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestDeadLetter_written_by_the_consumer_reads_back_whole(t *testing.T) {
	s, c, srv := newDLQStore(t)
	ctx := context.Background()
	consumer, err := New(Options{URL: srv.URL(), Group: "billing", Consumer: "c1", DLQRetention: time.Hour,
		Retry: retry.Policy{Schedule: []time.Duration{time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ev := testEvent("acme", "approval.requested", 1)
	stream := "hyvve:events:{acme}"
	if err := c.XGroupCreateMkStream(ctx, stream, "billing", "0").Err(); err != nil {
		t.Fatal(err)
	}
	sid, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: ev.AppendValues(nil)}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: "c1", Streams: []string{stream, ">"}}).Err(); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	ok, err := consumer.DeadLetter(ctx, &relay.Message{Event: ev, Tenant: "acme", Stream: stream, StreamID: sid}, 4, "app answered 503")
	if err != nil || !ok {
		t.Fatalf("DeadLetter: got %v, %v, want true, nil", ok, err)
	}

	page, err := s.ListDeadLetters(ctx, relay.DLQQuery{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.NextCursor != "" {
		t.Fatalf("list: got %d items, cursor %q, want 1 item and no cursor", len(page.Items), page.NextCursor)
	}
	dl := page.Items[0]
	got, err := s.GetDeadLetter(ctx, "acme", dl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Event == nil {
		t.Fatalf("get: event is nil, want the dead-lettered event")
	}
	if string(got.Event.AppendJSON(nil)) != string(ev.AppendJSON(nil)) || got.Event.TraceParent != ev.TraceParent {
		t.Errorf("event: got %s (traceparent %q), want %s (%q)", got.Event.AppendJSON(nil), got.Event.TraceParent,
			ev.AppendJSON(nil), ev.TraceParent)
	}
	if got.Tenant != "acme" || got.OriginalStreamID != sid || got.Group != "billing" || got.Attempts != 4 ||
		got.LastError != "app answered 503" {
		t.Errorf("got tenant %q, original %q, group %q, attempts %d, error %q; want acme, %s, billing, 4, app answered 503",
			got.Tenant, got.OriginalStreamID, got.Group, got.Attempts, got.LastError, sid)
	}
	if got.FailedAt.Before(before) || got.FailedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("failedAt: got %v, want about now", got.FailedAt)
	}
}

// listAll pages through q with the cursor and returns every id, failing on a
// page longer than the limit.
func listAll(t *testing.T, s *Store, q relay.DLQQuery) ([]string, int) {
	t.Helper()
	var ids []string
	calls := 0
	for {
		calls++
		if calls > 100 {
			t.Fatalf("more than 100 pages for %+v", q)
		}
		page, err := s.ListDeadLetters(context.Background(), q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		if q.Limit > 0 && len(page.Items) > q.Limit {
			t.Fatalf("page of %d items, want at most %d", len(page.Items), q.Limit)
		}
		for _, dl := range page.Items {
			ids = append(ids, dl.Tenant+"/"+dl.Event.Type+"/"+dl.ID)
		}
		if page.NextCursor == "" {
			return ids, calls
		}
		q.Cursor = page.NextCursor
	}
}

func TestListDeadLetters_pages_newest_first_with_filters(t *testing.T) {
	s, c, _ := newDLQStore(t)
	// acme: 6 dead letters, alternating types; beta: 2; "empty" is registered
	// without dead letters; a registry member that is not a tenant id is skipped.
	var acme, acmeApproval, beta []string
	for i := range 6 {
		typ := "approval.requested"
		if i%2 == 1 {
			typ = "user.joined"
		}
		id := "acme/" + typ + "/" + seedDLQ(t, c, testEvent("acme", typ, i), "billing")
		acme = append([]string{id}, acme...)
		if typ == "approval.requested" {
			acmeApproval = append([]string{id}, acmeApproval...)
		}
	}
	for i := range 2 {
		beta = append([]string{"beta/crm.deal.won/" + seedDLQ(t, c, testEvent("beta", "crm.deal.won", i), "audit")}, beta...)
	}
	c.SAdd(context.Background(), "hyvve:tenants", "empty", "bad}key")
	all := slices.Concat(acme, beta)

	tests := []struct {
		name string
		q    relay.DLQQuery
		want []string
	}{
		{"one tenant", relay.DLQQuery{Tenant: "acme"}, acme},
		{"one tenant by type", relay.DLQQuery{Tenant: "acme", Type: "approval.*"}, acmeApproval},
		{"every tenant", relay.DLQQuery{}, all},
		{"every tenant as *", relay.DLQQuery{Tenant: "*"}, all},
		{"every tenant by type", relay.DLQQuery{Type: "crm.**"}, beta},
		{"no match", relay.DLQQuery{Type: "nothing.here"}, nil},
		{"unknown tenant", relay.DLQQuery{Tenant: "nobody"}, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{0, 1, 2, 3, 5, 6, 500} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit = limit
				got, _ := listAll(t, s, q)
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
	}

	t.Run("an unfiltered page ending at the oldest entry has no cursor", func(t *testing.T) {
		page, err := s.ListDeadLetters(context.Background(), relay.DLQQuery{Tenant: "acme", Limit: 6})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 6 || page.NextCursor != "" {
			t.Errorf("got %d items, cursor %q; want 6, no cursor", len(page.Items), page.NextCursor)
		}
	})
	t.Run("the default limit is 50", func(t *testing.T) {
		for i := range 60 {
			seedDLQ(t, c, testEvent("many", "approval.requested", i), "billing")
		}
		page, err := s.ListDeadLetters(context.Background(), relay.DLQQuery{Tenant: "many"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 50 || page.NextCursor == "" {
			t.Errorf("got %d items, cursor %q; want 50 and a cursor", len(page.Items), page.NextCursor)
		}
	})
}

func TestListDeadLetters_reads_a_bounded_number_of_entries_per_call(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	// The one match is the oldest of 2001 entries: a call reads at most
	// maxDLQScan entries, so it takes ceil(2001/512) = 4 calls to reach it.
	seedDLQ(t, c, testEvent("acme", "approval.requested", 0), "billing")
	pipe := c.Pipeline()
	for i := 1; i <= 2000; i++ {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:dlq:{acme}", Values: testEvent("acme", "user.joined", i).AppendValues(nil)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	q := relay.DLQQuery{Tenant: "acme", Type: "approval.*", Limit: 10}
	for call := 1; ; call++ {
		page, err := s.ListDeadLetters(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if call < 4 {
			if len(page.Items) != 0 || page.NextCursor == "" {
				t.Fatalf("call %d: got %d items, cursor %q; want none and a cursor", call, len(page.Items), page.NextCursor)
			}
			q.Cursor = page.NextCursor
			continue
		}
		if len(page.Items) != 1 || page.Items[0].Event.ID != "ev-acme-0" || page.NextCursor != "" {
			t.Fatalf("call %d: got %d items, cursor %q; want ev-acme-0 and no cursor", call, len(page.Items), page.NextCursor)
		}
		return
	}
}

func TestListDeadLetters_probes_a_bounded_number_of_tenants_per_call(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	members := make([]any, 1500)
	for i := range members {
		members[i] = fmt.Sprintf("t%04d", i)
	}
	if err := c.SAdd(ctx, "hyvve:tenants", members...).Err(); err != nil {
		t.Fatal(err)
	}
	seedDLQ(t, c, testEvent("t1499", "approval.requested", 0), "billing")
	first, err := s.ListDeadLetters(ctx, relay.DLQQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 0 || first.NextCursor == "" {
		t.Fatalf("first call: got %d items, cursor %q; want none and a cursor", len(first.Items), first.NextCursor)
	}
	second, err := s.ListDeadLetters(ctx, relay.DLQQuery{Cursor: first.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Items) != 1 || second.Items[0].Tenant != "t1499" || second.NextCursor != "" {
		t.Fatalf("second call: got %d items, cursor %q; want t1499's dead letter and no cursor", len(second.Items), second.NextCursor)
	}
}

func TestListDeadLetters_rejects_bad_queries(t *testing.T) {
	s, c, _ := newDLQStore(t)
	seedDLQ(t, c, testEvent("acme", "approval.requested", 0), "billing")
	tests := []struct {
		name      string
		q         relay.DLQQuery
		wantField string
	}{
		{"tenant with a brace", relay.DLQQuery{Tenant: "acme}x"}, "tenantId"},
		{"bad pattern", relay.DLQQuery{Type: "Approval.*"}, "type"},
		{"cursor not base64", relay.DLQQuery{Cursor: "!!!"}, "cursor"},
		{"cursor without id", relay.DLQQuery{Cursor: encodeCursor("acme", "")}, "cursor"},
		{"cursor with a bad id", relay.DLQQuery{Cursor: encodeCursor("acme", "12-x")}, "cursor"},
		{"cursor with a bad tenant", relay.DLQQuery{Cursor: encodeCursor("a}b", "+")}, "cursor"},
		{"cursor of another tenant", relay.DLQQuery{Tenant: "acme", Cursor: encodeCursor("beta", "1-0")}, "cursor"},
		{"cursor too long", relay.DLQQuery{Cursor: encodeCursor("acme", "1-"+string(make([]byte, 300)))}, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ListDeadLetters(context.Background(), tt.q)
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Field != tt.wantField {
				t.Errorf("got %v, want an *event.Error naming %s", err, tt.wantField)
			}
		})
	}
}

func TestGetDeadLetter(t *testing.T) {
	s, c, _ := newDLQStore(t)
	id := seedDLQ(t, c, testEvent("acme", "approval.requested", 7), "billing")
	tests := []struct {
		name, tenant, id string
		wantErr          error  // errors.Is target, or nil
		wantField        string // *event.Error field, or ""
	}{
		{"present", "acme", id, nil, ""},
		{"absent id", "acme", "1-0", relay.ErrNotFound, ""},
		{"other tenant", "beta", id, relay.ErrNotFound, ""},
		{"malformed id", "acme", "1-0+", nil, "entryId"},
		{"id range", "acme", "-", nil, "entryId"},
		{"id too big", "acme", "99999999999999999999-0", nil, "entryId"},
		{"malformed tenant", "acme}", id, nil, "tenantId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl, err := s.GetDeadLetter(context.Background(), tt.tenant, tt.id)
			switch {
			case tt.wantField != "":
				var ee *event.Error
				if !errors.As(err, &ee) || ee.Field != tt.wantField {
					t.Errorf("got %v, want an *event.Error naming %s", err, tt.wantField)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("got %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("got %v, want nil", err)
			case dl.ID != id || dl.Event == nil || dl.Event.ID != "ev-acme-7" || dl.Group != "billing" || dl.Attempts != 4:
				t.Errorf("got %+v, want dead letter %s of ev-acme-7, group billing, 4 attempts", dl, id)
			}
		})
	}
}

func TestRetryDeadLetter_republishes_for_the_failed_group_and_removes_it(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	ev := testEvent("acme", "approval.requested", 3)
	id := seedDLQ(t, c, ev, "billing")
	c.Del(ctx, "hyvve:tenants") // a registry that lost data is repaired

	res, err := s.RetryDeadLetter(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stream != "hyvve:events:{acme}" || res.EventID != ev.ID || res.CorrelationID != ev.CorrelationID {
		t.Errorf("result: got %+v, want stream hyvve:events:{acme}, id %s, correlation %s", res, ev.ID, ev.CorrelationID)
	}
	msgs, err := c.XRange(ctx, "hyvve:events:{acme}", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != res.StreamID {
		t.Fatalf("stream: got %v, want one entry %s", msgs, res.StreamID)
	}
	// Readers waiting on the signal stream are told at once.
	if sig, err := c.XRevRangeN(ctx, "hyvve:notify", "+", "-", 1).Result(); err != nil || len(sig) != 1 || sig[0].Values["tenants"] != "acme" {
		t.Errorf("signal after the retry: got %v, %v; want one naming acme", sig, err)
	}
	got, err := event.FromValues(msgs[0].Values)
	if err != nil {
		t.Fatal(err)
	}
	want := *ev
	want.TargetGroup = "billing"
	if string(got.AppendJSON(nil)) != string(want.AppendJSON(nil)) || got.TraceParent != want.TraceParent {
		t.Errorf("re-published event: got %s (traceparent %q), want %s (%q)", got.AppendJSON(nil), got.TraceParent,
			want.AppendJSON(nil), want.TraceParent)
	}
	for _, f := range []string{fieldOriginalStreamID, fieldGroup, fieldAttempts, fieldLastError, fieldFailedAt} {
		if _, ok := msgs[0].Values[f]; ok {
			t.Errorf("re-published entry carries dead-letter field %s", f)
		}
	}
	if n, _ := c.XLen(ctx, "hyvve:dlq:{acme}").Result(); n != 0 {
		t.Errorf("DLQ length after retry: got %d, want 0", n)
	}
	if ok, _ := c.SIsMember(ctx, "hyvve:tenants", "acme").Result(); !ok {
		t.Errorf("tenant acme is not registered after the retry")
	}
	if _, err := s.RetryDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("second retry: got %v, want ErrNotFound", err)
	}
}

func TestRetryDeadLetter_concurrent_retries_publish_once(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	id := seedDLQ(t, c, testEvent("acme", "approval.requested", 1), "billing")
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.RetryDeadLetter(ctx, "acme", id)
		})
	}
	close(start)
	wg.Wait()
	ok, notFound := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, relay.ErrNotFound):
			notFound++
		default:
			t.Errorf("retry: got %v, want nil or ErrNotFound", err)
		}
	}
	if ok != 1 || notFound != n-1 {
		t.Errorf("got %d successes and %d ErrNotFound, want 1 and %d", ok, notFound, n-1)
	}
	if l, _ := c.XLen(ctx, "hyvve:events:{acme}").Result(); l != 1 {
		t.Errorf("stream length: got %d, want 1", l)
	}
}

func TestRetryDeadLetter_refuses_an_entry_without_a_retryable_event(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	foreign := testEvent("beta", "approval.requested", 1)
	tests := []struct {
		name   string
		values []any
	}{
		{"undecodable", []any{"undecodable", "true", fieldGroup, "billing", fieldAttempts, "1"}},
		{"no group", testEvent("acme", "approval.requested", 1).AppendValues(nil)},
		{"event of another tenant", append(foreign.AppendValues(nil), fieldGroup, "billing")},
		{"invalid event", append(testEvent("acme", "Not A Type", 1).AppendValues(nil), fieldGroup, "billing")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:dlq:{acme}", Values: tt.values}).Result()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.RetryDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotRetryable) {
				t.Errorf("got %v, want ErrNotRetryable", err)
			}
			if _, err := s.GetDeadLetter(ctx, "acme", id); err != nil {
				t.Errorf("the dead letter is gone after a refused retry: %v", err)
			}
		})
	}
	if l, _ := c.XLen(ctx, "hyvve:events:{acme}").Result(); l != 0 {
		t.Errorf("stream length: got %d, want 0", l)
	}
}

func TestDeleteDeadLetter(t *testing.T) {
	s, c, _ := newDLQStore(t)
	ctx := context.Background()
	id := seedDLQ(t, c, testEvent("acme", "approval.requested", 1), "billing")
	keep := seedDLQ(t, c, testEvent("acme", "approval.requested", 2), "billing")
	if err := s.DeleteDeadLetter(ctx, "acme", id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.GetDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("get after delete: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("second delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetDeadLetter(ctx, "acme", keep); err != nil {
		t.Errorf("the other dead letter: %v", err)
	}
	var ee *event.Error
	if err := s.DeleteDeadLetter(ctx, "acme", "x"); !errors.As(err, &ee) || ee.Field != "entryId" {
		t.Errorf("malformed id: got %v, want an *event.Error naming entryId", err)
	}
}

func TestDLQAdmin_reports_an_unavailable_broker(t *testing.T) {
	s, c, srv := newDLQStore(t)
	id := seedDLQ(t, c, testEvent("acme", "approval.requested", 1), "billing")
	srv.Kill(t)
	ctx := context.Background()
	calls := map[string]func() error{
		"list":   func() error { _, err := s.ListDeadLetters(ctx, relay.DLQQuery{}); return err },
		"get":    func() error { _, err := s.GetDeadLetter(ctx, "acme", id); return err },
		"retry":  func() error { _, err := s.RetryDeadLetter(ctx, "acme", id); return err },
		"delete": func() error { return s.DeleteDeadLetter(ctx, "acme", id) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			if err := call(); !errors.Is(err, relay.ErrUnavailable) {
				t.Errorf("got %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v, want a bounded retry", d)
			}
		})
	}
}

func TestValidStreamID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0-0", true}, {"1764000000000-12", true}, {"18446744073709551615-18446744073709551615", true},
		{"", false}, {"-", false}, {"1", false}, {"1-", false}, {"-1", false}, {"1-2-3", false}, {"+", false},
		{"1-2 ", false}, {"a-1", false}, {"18446744073709551616-0", false}, {"1-x", false},
	}
	for _, tt := range tests {
		if got := validStreamID(tt.id); got != tt.want {
			t.Errorf("validStreamID(%q): got %v, want %v", tt.id, got, tt.want)
		}
	}
}
