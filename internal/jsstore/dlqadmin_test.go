package jsstore

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// admSeedDLQ writes a dead letter of ev failed by group the way the
// consumer does (the event's message plus the dead-letter headers) and
// returns its id.
func admSeedDLQ(t *testing.T, s *Store, ev *event.Event, group string) string {
	t.Helper()
	m := newMsg(s.names.dlqSubject(ev.TenantID), ev)
	m.Header[dlqHeaderOriginalStreamID] = []string{"7"}
	m.Header[dlqHeaderGroup] = []string{group}
	m.Header[dlqHeaderAttempts] = []string{"4"}
	m.Header[dlqHeaderLastError] = []string{"app answered 503"}
	m.Header[dlqHeaderFailedAt] = []string{"2026-11-26T10:30:00.000Z"}
	return admSeedMsg(t, s, m)
}

func admSeedMsg(t *testing.T, s *Store, m *nats.Msg) string {
	t.Helper()
	ack, err := s.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(ack.Sequence, 10)
}

// admListAll pages through q with the cursor and returns every id and the
// number of pages, failing on a page longer than the limit.
func admListAll(t *testing.T, s *Store, q relay.DLQQuery) ([]string, int) {
	t.Helper()
	var ids []string
	for pages := 1; pages <= 100; pages++ {
		p, err := s.ListDeadLetters(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Items == nil {
			t.Fatal("items: got nil, want a slice (empty at worst)")
		}
		if q.Limit > 0 && len(p.Items) > q.Limit {
			t.Fatalf("page %d: got %d items, want at most %d", pages, len(p.Items), q.Limit)
		}
		for _, dl := range p.Items {
			ids = append(ids, dl.ID)
		}
		if p.NextCursor == "" {
			return ids, pages
		}
		q.Cursor = p.NextCursor
	}
	t.Fatal("more than 100 pages")
	return nil, 0
}

func TestDeadLetter_written_by_the_consumer_reads_back_whole(t *testing.T) {
	s := admOpen(t, Options{Group: "billing"})
	ctx := context.Background()
	ev := admEvent("acme", "approval.requested", 1)
	seq := testPublishRaw(t, s.Store, ev)
	var msgs []*relay.Message
	for deadline := time.Now().Add(5 * time.Second); len(msgs) == 0 && time.Now().Before(deadline); {
		got, err := s.Fetch(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		msgs = got
	}
	if len(msgs) != 1 {
		t.Fatalf("fetched %d messages, want 1", len(msgs))
	}
	before := time.Now().Add(-time.Second)
	if ok, err := s.DeadLetter(ctx, msgs[0], 4, "app answered 503:\r\nbad gateway"); err != nil || !ok {
		t.Fatalf("DeadLetter: got %v, %v, want true, nil", ok, err)
	}

	page, err := s.ListDeadLetters(ctx, relay.DLQQuery{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.NextCursor != "" {
		t.Fatalf("list: got %d items, cursor %q, want 1 item and no cursor", len(page.Items), page.NextCursor)
	}
	got, err := s.GetDeadLetter(ctx, "acme", page.Items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Event == nil {
		t.Fatal("get: event is nil, want the dead-lettered event")
	}
	if string(got.Event.AppendJSON(nil)) != string(ev.AppendJSON(nil)) || got.Event.TraceParent != ev.TraceParent {
		t.Errorf("event: got %s (traceparent %q), want %s (%q)", got.Event.AppendJSON(nil), got.Event.TraceParent,
			ev.AppendJSON(nil), ev.TraceParent)
	}
	wantOrig := strconv.FormatUint(seq, 10)
	if got.Tenant != "acme" || got.OriginalStreamID != wantOrig || got.Group != "billing" || got.Attempts != 4 ||
		got.LastError != "app answered 503:  bad gateway" {
		t.Errorf("got tenant %q, original %q, group %q, attempts %d, error %q; want acme, %s, billing, 4, %q",
			got.Tenant, got.OriginalStreamID, got.Group, got.Attempts, got.LastError, wantOrig, "app answered 503:  bad gateway")
	}
	if got.FailedAt.Before(before) || got.FailedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("failedAt: got %v, want about now", got.FailedAt)
	}
}

func TestListDeadLetters_newest_first_by_tenant_and_type(t *testing.T) {
	s := admSetupOnly(t)
	// Interleaved tenants and types; ids in the order written.
	var acme, acmeApproval, beta, all []string
	for i, c := range []struct{ tenant, typ string }{
		{"acme", "approval.requested"}, {"beta", "approval.requested"}, {"acme", "user.invited"},
		{"acme", "approval.granted"}, {"beta", "user.joined"}, {"acme", "approval.requested"},
		{"acme", "user.joined"},
	} {
		id := admSeedDLQ(t, s, admEvent(c.tenant, c.typ, i), "billing")
		all = append([]string{id}, all...)
		if c.tenant == "acme" {
			acme = append([]string{id}, acme...)
			if c.typ[:9] == "approval." {
				acmeApproval = append([]string{id}, acmeApproval...)
			}
		} else {
			beta = append([]string{id}, beta...)
		}
	}
	tests := []struct {
		name      string
		q         relay.DLQQuery
		want      []string
		wantPages int
	}{
		{"one tenant, one page", relay.DLQQuery{Tenant: "acme"}, acme, 1},
		{"one tenant, pages of 2", relay.DLQQuery{Tenant: "acme", Limit: 2}, acme, 3},
		{"a page ending at the oldest has no cursor", relay.DLQQuery{Tenant: "beta", Limit: 2}, beta, 1},
		{"every tenant", relay.DLQQuery{}, all, 1},
		{"every tenant with *", relay.DLQQuery{Tenant: "*", Limit: 3}, all, 3},
		{"type filter", relay.DLQQuery{Tenant: "acme", Type: "approval.*", Limit: 2}, acmeApproval, 2},
		{"type filter over every tenant", relay.DLQQuery{Type: "user.joined"}, []string{all[0], all[2]}, 1},
		{"a tenant without dead letters", relay.DLQQuery{Tenant: "gamma"}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := admListAll(t, s, tt.q)
			if !slices.Equal(got, tt.want) || pages != tt.wantPages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tt.want, tt.wantPages)
			}
		})
	}

	// Every item is decoded, with its tenant.
	p, err := s.ListDeadLetters(context.Background(), relay.DLQQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if dl := p.Items[0]; dl.Tenant != "acme" || dl.Event == nil || dl.Event.Type != "user.joined" || dl.Group != "billing" {
		t.Errorf("newest: got tenant %q group %q event %+v, want acme billing user.joined", dl.Tenant, dl.Group, dl.Event)
	}
}

func TestListDeadLetters_skips_deleted_and_bounds_one_call(t *testing.T) {
	s := admSetupOnly(t)
	ctx := context.Background()
	oldest := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 0), "billing")
	// More dead letters of another tenant than one call reads.
	for i := range maxDLQScan + 50 {
		m := newMsg(s.names.dlqSubject("beta"), admEvent("beta", "approval.requested", i))
		if _, err := s.js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("async publishes not acknowledged within 10s")
	}
	deleted := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 1), "billing")
	newest := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 2), "billing")
	if err := s.DeleteDeadLetter(ctx, "acme", deleted); err != nil {
		t.Fatal(err)
	}

	first, err := s.ListDeadLetters(ctx, relay.DLQQuery{Tenant: "acme", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 1 || first.Items[0].ID != newest || first.NextCursor == "" {
		t.Fatalf("first page: got %d items (%v), cursor %q; want only %s and a cursor (the scan is bounded)",
			len(first.Items), first.Items, first.NextCursor, newest)
	}
	got, pages := admListAll(t, s, relay.DLQQuery{Tenant: "acme", Limit: 10})
	if !slices.Equal(got, []string{newest, oldest}) || pages != 2 {
		t.Errorf("got %v in %d pages, want [%s %s] in 2", got, pages, newest, oldest)
	}
	all, _ := admListAll(t, s, relay.DLQQuery{Limit: relay.MaxDLQLimit})
	if len(all) != maxDLQScan+52 || all[0] != newest || all[len(all)-1] != oldest || slices.Contains(all, deleted) {
		t.Errorf("every tenant: got %d (first %s, last %s), want %d from %s to %s without %s",
			len(all), all[0], all[len(all)-1], maxDLQScan+52, newest, oldest, deleted)
	}
}

func TestListDeadLetters_rejects_bad_queries_naming_the_field(t *testing.T) {
	s := admSetupOnly(t)
	admSeedDLQ(t, s, admEvent("acme", "approval.requested", 1), "billing")
	acmeCursor := encodeCursor("acme", 5)
	tests := []struct {
		name, field string
		q           relay.DLQQuery
	}{
		{"bad tenant", "tenantId", relay.DLQQuery{Tenant: "ac me"}},
		{"bad type pattern", "type", relay.DLQQuery{Type: "Approval.**"}},
		{"cursor not base64url", "cursor", relay.DLQQuery{Cursor: "!!!"}},
		{"cursor without a sequence", "cursor", relay.DLQQuery{Cursor: base64.RawURLEncoding.EncodeToString([]byte("acme"))}},
		{"cursor with sequence 0", "cursor", relay.DLQQuery{Cursor: encodeCursor("acme", 0)}},
		{"cursor with a bad tenant", "cursor",
			relay.DLQQuery{Cursor: base64.RawURLEncoding.EncodeToString([]byte("a.b 5"))}},
		{"cursor of a signed sequence", "cursor",
			relay.DLQQuery{Cursor: base64.RawURLEncoding.EncodeToString([]byte("acme +5"))}},
		{"cursor too long", "cursor", relay.DLQQuery{Cursor: string(make([]byte, 300))}},
		{"cursor of another tenant", "cursor", relay.DLQQuery{Tenant: "beta", Cursor: acmeCursor}},
		{"cursor of a tenant for every tenant", "cursor", relay.DLQQuery{Cursor: acmeCursor}},
		{"cursor of every tenant for one", "cursor", relay.DLQQuery{Tenant: "acme", Cursor: encodeCursor("*", 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ListDeadLetters(context.Background(), tt.q)
			var e *event.Error
			if !errors.As(err, &e) || e.Field != tt.field {
				t.Errorf("got %v, want an *event.Error naming %s", err, tt.field)
			}
		})
	}
	if _, err := s.ListDeadLetters(context.Background(), relay.DLQQuery{Tenant: "acme", Cursor: acmeCursor}); err != nil {
		t.Errorf("the tenant's own cursor: got %v, want nil", err)
	}
}

func TestGetDeadLetter_unknown_and_malformed(t *testing.T) {
	s := admSetupOnly(t)
	id := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 1), "billing")
	tests := []struct {
		name, tenant, id string
		wantNotFound     bool
		wantField        string
	}{
		{"unknown id", "acme", "999", true, ""},
		{"another tenant's dead letter", "beta", id, true, ""},
		{"a Redis stream id", "acme", "1764000000000-0", false, "entryId"},
		{"zero", "acme", "0", false, "entryId"},
		{"negative", "acme", "-1", false, "entryId"},
		{"signed", "acme", "+1", false, "entryId"},
		{"empty id", "acme", "", false, "entryId"},
		{"over 64 bits", "acme", "18446744073709551616", false, "entryId"},
		{"bad tenant", "ac.me", id, false, "tenantId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			_, gerr := s.GetDeadLetter(ctx, tt.tenant, tt.id)
			derr := s.DeleteDeadLetter(ctx, tt.tenant, tt.id)
			_, rerr := s.RetryDeadLetter(ctx, tt.tenant, tt.id)
			for op, err := range map[string]error{"get": gerr, "delete": derr, "retry": rerr} {
				if tt.wantNotFound {
					if !errors.Is(err, relay.ErrNotFound) {
						t.Errorf("%s: got %v, want relay.ErrNotFound", op, err)
					}
					continue
				}
				var e *event.Error
				if !errors.As(err, &e) || e.Field != tt.wantField {
					t.Errorf("%s: got %v, want an *event.Error naming %s", op, err, tt.wantField)
				}
			}
		})
	}
	if _, err := s.GetDeadLetter(context.Background(), "acme", id); err != nil {
		t.Errorf("the dead letter after those calls: got %v, want it still there", err)
	}
}

func TestDeleteDeadLetter_removes_it_once(t *testing.T) {
	s := admSetupOnly(t)
	ctx := context.Background()
	id := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 1), "billing")
	keep := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 2), "billing")
	if err := s.DeleteDeadLetter(ctx, "acme", id); err != nil {
		t.Fatalf("delete: got %v, want nil", err)
	}
	if _, err := s.GetDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("get after delete: got %v, want relay.ErrNotFound", err)
	}
	if err := s.DeleteDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("second delete: got %v, want relay.ErrNotFound", err)
	}
	if got, _ := admListAll(t, s, relay.DLQQuery{Tenant: "acme"}); !slices.Equal(got, []string{keep}) {
		t.Errorf("left: got %v, want [%s]", got, keep)
	}
}

func TestRetryDeadLetter_republishes_for_the_failed_group_only(t *testing.T) {
	s := admSetupOnly(t)
	ctx := context.Background()
	ev := admEvent("acme", "approval.requested", 1)
	id := admSeedDLQ(t, s, ev, "billing")

	res, err := s.RetryDeadLetter(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stream != "hyvve.events.acme" || res.EventID != ev.ID || res.CorrelationID != ev.CorrelationID ||
		res.Duplicate || res.Err != nil {
		t.Errorf("result: got %+v, want stream hyvve.events.acme, event %s, correlation %s", res, ev.ID, ev.CorrelationID)
	}
	seq, err := strconv.ParseUint(res.StreamID, 10, 64)
	if err != nil {
		t.Fatalf("stream id %q: %v", res.StreamID, err)
	}
	m, err := s.events.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEvent(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	want := *ev
	want.TargetGroup = "billing"
	if string(got.AppendJSON(nil)) != string(want.AppendJSON(nil)) || got.TraceParent != ev.TraceParent {
		t.Errorf("re-published: got %s, want %s", got.AppendJSON(nil), want.AppendJSON(nil))
	}
	for _, k := range []string{dlqHeaderGroup, dlqHeaderAttempts, dlqHeaderLastError} {
		if _, ok := m.Header[k]; ok {
			t.Errorf("re-published: got dead-letter header %s, want none", k)
		}
	}
	if _, err := s.GetDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("dead letter after retry: got %v, want relay.ErrNotFound", err)
	}
	if n := s.published.Load(); n != 1 {
		t.Errorf("published count: got %d, want 1", n)
	}
	if _, err := s.RetryDeadLetter(ctx, "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("second retry: got %v, want relay.ErrNotFound", err)
	}
}

func TestRetryDeadLetter_refuses_what_cannot_be_retried(t *testing.T) {
	s := admSetupOnly(t)
	noGroup := admEvent("acme", "approval.requested", 1)
	otherTenant := admEvent("beta", "approval.requested", 2)
	invalid := admEvent("acme", "Not A Type", 3)
	undecodable := &nats.Msg{Subject: s.names.dlqSubject("acme"), Header: nats.Header{
		"type": {"approval.requested"}, dlqHeaderGroup: {"billing"}, dlqHeaderAttempts: {"1"}}, Data: []byte("{")}
	wrongTenant := newMsg(s.names.dlqSubject("acme"), otherTenant)
	wrongTenant.Header[dlqHeaderGroup] = []string{"billing"}
	tests := []struct {
		name string
		id   string
	}{
		{"no group", admSeedDLQ(t, s, noGroup, "")},
		{"undecodable", admSeedMsg(t, s, undecodable)},
		{"event of another tenant", admSeedMsg(t, s, wrongTenant)},
		{"invalid event", admSeedDLQ(t, s, invalid, "billing")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := s.RetryDeadLetter(ctx, "acme", tt.id); !errors.Is(err, relay.ErrNotRetryable) {
				t.Errorf("retry: got %v, want relay.ErrNotRetryable", err)
			}
			if _, err := s.GetDeadLetter(ctx, "acme", tt.id); err != nil {
				t.Errorf("dead letter after a refused retry: got %v, want it kept", err)
			}
		})
	}
	info, err := s.events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("events stream: got %d messages, want 0", info.State.Msgs)
	}
}

func TestRetryDeadLetter_ten_concurrent_retries_publish_once(t *testing.T) {
	s := admSetupOnly(t)
	id := admSeedDLQ(t, s, admEvent("acme", "approval.requested", 1), "billing")
	const n = 10
	errs := make([]error, n)
	results := make([]relay.PublishResult, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.RetryDeadLetter(context.Background(), "acme", id)
		})
	}
	close(start)
	wg.Wait()
	var ok, notFound int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			if results[i].StreamID != "1" {
				t.Errorf("winner: got stream id %q, want 1", results[i].StreamID)
			}
		case errors.Is(err, relay.ErrNotFound):
			notFound++
		default:
			t.Errorf("retry %d: got %v, want nil or relay.ErrNotFound", i, err)
		}
	}
	if ok != 1 || notFound != n-1 {
		t.Errorf("got %d successes and %d not found, want 1 and %d", ok, notFound, n-1)
	}
	info, err := s.events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("events stream: got %d messages, want 1", info.State.Msgs)
	}
	if _, err := s.GetDeadLetter(context.Background(), "acme", id); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("dead letter: got %v, want relay.ErrNotFound", err)
	}
	if got := s.published.Load(); got != 1 {
		t.Errorf("published count: got %d, want 1", got)
	}
}

func TestDeadLetters_report_an_unavailable_server(t *testing.T) {
	srv, url := admOpenServer(t)
	id := admSeedDLQ(t, srv.Store, admEvent("acme", "approval.requested", 1), "billing")
	s := admOpen(t, Options{URL: url})
	srv.stop()
	calls := map[string]func(ctx context.Context) error{
		"list": func(ctx context.Context) error {
			_, err := s.ListDeadLetters(ctx, relay.DLQQuery{})
			return err
		},
		"get": func(ctx context.Context) error {
			_, err := s.GetDeadLetter(ctx, "acme", id)
			return err
		},
		"retry": func(ctx context.Context) error {
			_, err := s.RetryDeadLetter(ctx, "acme", id)
			return err
		},
		"delete": func(ctx context.Context) error { return s.DeleteDeadLetter(ctx, "acme", id) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := call(ctx); !errors.Is(err, relay.ErrUnavailable) {
				t.Errorf("got %v, want relay.ErrUnavailable", err)
			}
		})
	}
}
