package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hyvve/sidecar/internal/relay"
)

// pagedDLQ is a DeadLetters whose listing is a fixed chain of pages keyed by
// cursor; it records the queries.
type pagedDLQ struct {
	fakeDLQ
	pages   map[string]relay.DLQPage
	mu      sync.Mutex // guards queries
	queries []relay.DLQQuery
}

func (p *pagedDLQ) ListDeadLetters(_ context.Context, q relay.DLQQuery) (relay.DLQPage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries = append(p.queries, q)
	return p.pages[q.Cursor], nil
}

func (p *pagedDLQ) gotQueries() []relay.DLQQuery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]relay.DLQQuery(nil), p.queries...)
}

// pagedStats is a Stats of fixed pages keyed by cursor.
type pagedStats struct {
	pages   map[string]BrokerStats
	mu      sync.Mutex // guards cursors
	cursors []string
}

func (p *pagedStats) BrokerStats(_ context.Context, _ int, cursor string) (BrokerStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cursors = append(p.cursors, cursor)
	return p.pages[cursor], nil
}

func dl(tenant, id string) relay.DeadLetter {
	return relay.DeadLetter{Tenant: tenant, ID: id, Group: "g"}
}

// allowed is the allow-list of these tests.
var allowed = []string{"acme", "beta"}

func TestTenants_publish_outside_the_allow_list_is_403(t *testing.T) {
	ls := startLimitServer(t, Options{Tenants: allowed})
	for _, tt := range []struct {
		tenant string
		want   int
	}{{"acme", 202}, {"beta", 202}, {"other", 403}} {
		tr := &http.Transport{}
		resp, err := (&http.Client{Transport: tr}).Post(ls.url+"/v1/events", "application/json",
			strings.NewReader(`{"type":"user.joined","tenantId":"`+tt.tenant+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != tt.want || (tt.want == 403 && !strings.Contains(string(b), `"code":"tenant_not_allowed"`)) {
			t.Errorf("tenant %s: got %d %s, want %d", tt.tenant, resp.StatusCode, b, tt.want)
		}
	}
}

func TestTenants_admin_requests_naming_a_tenant_outside_the_allow_list_are_403(t *testing.T) {
	dlq := &fakeDLQ{dl: &relay.DeadLetter{Tenant: "acme", ID: "1-0"}}
	rp := &fakeReplays{job: testJob}
	srv := startServer(t, Options{AdminToken: "admin-secret", Tenants: allowed, DeadLetters: dlq, Replays: rp})
	tests := []struct {
		method, path, body string
		want               int
		wantCall           string // what a store got; "" = nothing
	}{
		{"GET", "/v1/admin/dlq/other/1-0", "", 403, ""},
		{"DELETE", "/v1/admin/dlq/other/1-0", "", 403, ""},
		{"POST", "/v1/admin/dlq/other/1-0/retry", "", 403, ""},
		{"GET", "/v1/admin/dlq?tenantId=other", "", 403, ""},
		{"GET", "/v1/admin/dlq/acme/1-0", "", 200, "get acme 1-0"},
		{"DELETE", "/v1/admin/dlq/beta/1-0", "", 204, "delete beta 1-0"},
		{"POST", "/v1/admin/dlq/acme/1-0/retry", "", 202, "retry acme 1-0"},
		{"GET", "/v1/admin/dlq?tenantId=acme", "", 200, "list"},
		{"GET", "/v1/admin/dlq/ac%7Dme/1-0", "", 400, ""}, // a malformed tenant is still 400
		{"POST", "/v1/admin/replays", `{"tenantId":"other","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}`, 403, ""},
		{"POST", "/v1/admin/replays", `{"tenantId":"*","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}`, 403, ""},
		{"POST", "/v1/admin/replays", `{"tenantId":"acme","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}`, 202, "start"},
		{"POST", "/v1/admin/replays", `{"tenantId":"ot}her","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.body, func(t *testing.T) {
			before := len(dlq.lastCalls()) + len(rp.lastCalls())
			r := srv.send(t, tt.method, tt.path, "application/json", tt.body)
			if r.status != tt.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want == 403 {
				if code, field := r.errField(t, "code"), r.errField(t, "field"); code != "tenant_not_allowed" || field != "tenantId" {
					t.Errorf("got error %s on %q, want tenant_not_allowed on tenantId", code, field)
				}
			}
			calls := append(dlq.lastCalls(), rp.lastCalls()...)[before:]
			if tt.wantCall == "" && len(calls) != 0 || tt.wantCall != "" && (len(calls) != 1 || calls[0] != tt.wantCall) {
				t.Errorf("store calls: got %v, want [%s]", calls, tt.wantCall)
			}
		})
	}
}

func TestTenants_replay_jobs_of_other_tenants_are_hidden(t *testing.T) {
	job := func(id, tenant string) relay.ReplayJob {
		j := testJob
		j.ID, j.Tenant = id, tenant
		return j
	}
	rp := &fakeReplays{job: job("r-9", "other"), jobs: []relay.ReplayJob{
		job("r-1", "other"), job("r-2", "acme"), job("r-3", "*"), job("r-4", "beta"), job("r-5", "acme"),
	}}
	srv := startServer(t, Options{AdminToken: "admin-secret", Tenants: allowed, Replays: rp})

	r := srv.call(t, "GET", "/v1/admin/replays/r-9", adminAuth)
	if r.status != 403 || r.errField(t, "code") != "tenant_not_allowed" {
		t.Errorf("a job of another tenant: got %d %s, want 403 tenant_not_allowed", r.status, r.body)
	}

	r = srv.call(t, "GET", "/v1/admin/replays?limit=2", adminAuth)
	var list struct {
		Items []struct{ ID string } `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.body), &list); r.status != 200 || err != nil {
		t.Fatalf("listing: got %d %s (%v), want 200", r.status, r.body, err)
	}
	var ids []string
	for _, j := range list.Items {
		ids = append(ids, j.ID)
	}
	if want := []string{"r-2", "r-4"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("listing with limit 2: got jobs %v, want %v (the allowed tenants' newest)", ids, want)
	}
	if calls := rp.lastCalls(); calls[len(calls)-1] != fmt.Sprintf("list %d", relay.MaxReplayListLimit) {
		t.Errorf("store calls %v: want the listing asked for a full page (%d) before filtering", calls, relay.MaxReplayListLimit)
	}
}

func TestTenants_DLQ_listing_across_tenants_shows_only_allowed_ones(t *testing.T) {
	pages := map[string]relay.DLQPage{
		"":   {Items: []relay.DeadLetter{dl("other", "1-0"), dl("zeta", "2-0")}, NextCursor: "c1"},
		"c1": {Items: []relay.DeadLetter{dl("acme", "3-0"), dl("other", "4-0"), dl("beta", "5-0")}, NextCursor: "c2"},
		"c2": {Items: []relay.DeadLetter{dl("beta", "6-0")}},
	}
	type item struct{ TenantID, ID string }
	list := func(t *testing.T, srv testServer, path string) ([]item, string) {
		t.Helper()
		r := srv.call(t, "GET", path, adminAuth)
		var body struct {
			Items      []item `json:"items"`
			NextCursor string `json:"nextCursor"`
		}
		if err := json.Unmarshal([]byte(r.body), &body); r.status != 200 || err != nil {
			t.Fatalf("got %d %s (%v), want 200", r.status, r.body, err)
		}
		return body.Items, body.NextCursor
	}

	t.Run("several allowed tenants: pages are filtered, emptied pages skipped", func(t *testing.T) {
		store := &pagedDLQ{pages: pages}
		srv := startServer(t, Options{AdminToken: "admin-secret", Tenants: allowed, DeadLetters: store})
		for _, path := range []string{"/v1/admin/dlq?limit=3", "/v1/admin/dlq?tenantId=*&limit=3"} {
			items, next := list(t, srv, path)
			if want := []item{{"acme", "3-0"}, {"beta", "5-0"}}; !reflect.DeepEqual(items, want) || next != "c2" {
				t.Errorf("%s: got %v next %q, want %v next c2", path, items, next, want)
			}
		}
		items, next := list(t, srv, "/v1/admin/dlq?cursor=c2")
		if want := []item{{"beta", "6-0"}}; !reflect.DeepEqual(items, want) || next != "" {
			t.Errorf("last page: got %v next %q, want %v and no cursor", items, next, want)
		}
		if q := store.gotQueries(); len(q) != 5 || q[0].Limit != 3 || q[1].Cursor != "c1" {
			t.Errorf("store queries: got %+v, want (\"\", c1) twice with limit 3, then c2", q)
		}
	})

	t.Run("one allowed tenant: the listing is that tenant's", func(t *testing.T) {
		store := &pagedDLQ{pages: pages}
		srv := startServer(t, Options{AdminToken: "admin-secret", Tenants: []string{"acme"}, DeadLetters: store})
		list(t, srv, "/v1/admin/dlq?type=user.*")
		if q := store.gotQueries(); len(q) != 1 || q[0].Tenant != "acme" || q[0].Type != "user.*" {
			t.Errorf("store queries: got %+v, want one for tenant acme, type user.*", q)
		}
	})
}

func TestTenants_stats_show_only_allowed_tenants(t *testing.T) {
	ppm := []MinuteCount{{Count: 42}}
	store := &pagedStats{pages: map[string]BrokerStats{
		"": {Tenants: []TenantStats{{Tenant: "aaa", DLQLength: 100}, {Tenant: "abc", DLQLength: 100}},
			TenantCount: 9, NextCursor: "abc", PublishedPerMinute: ppm},
		"abc": {Tenants: []TenantStats{{Tenant: "acme", DLQLength: 1}, {Tenant: "alpha", DLQLength: 100}},
			TenantCount: 9, NextCursor: "alpha", PublishedPerMinute: ppm},
	}}
	srv := startServer(t, Options{AdminToken: "admin-secret", Tenants: allowed, Stats: store})
	r := srv.call(t, "GET", "/v1/admin/stats?limit=2", adminAuth)
	var body struct {
		Tenants     []struct{ TenantID string } `json:"tenants"`
		TenantCount int                         `json:"tenantCount"`
		NextCursor  string                      `json:"nextCursor"`
		DLQTotal    int64                       `json:"dlqTotal"`
		Cluster     struct {
			PublishedPerMinute []MinuteCount `json:"publishedPerMinute"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); r.status != 200 || err != nil {
		t.Fatalf("got %d %s (%v), want 200", r.status, r.body, err)
	}
	if len(body.Tenants) != 1 || body.Tenants[0].TenantID != "acme" || body.NextCursor != "alpha" {
		t.Errorf("got tenants %+v next %q, want only acme, next alpha", body.Tenants, body.NextCursor)
	}
	if body.TenantCount != len(allowed) || body.DLQTotal != 1 {
		t.Errorf("got tenantCount %d dlqTotal %d, want %d (at most the allow-list: more tenants than a page) and 1 (acme's only)",
			body.TenantCount, body.DLQTotal, len(allowed))
	}
	if len(body.Cluster.PublishedPerMinute) != 1 || body.Cluster.PublishedPerMinute[0].Count != 42 {
		t.Errorf("got cluster rates %+v, want the broker's", body.Cluster.PublishedPerMinute)
	}
}

func TestTenants_stats_count_exactly_when_every_tenant_fits_the_walk(t *testing.T) {
	store := &pagedStats{pages: map[string]BrokerStats{
		"": {Tenants: []TenantStats{{Tenant: "acme"}, {Tenant: "initech"}, {Tenant: "zeta"}}, TenantCount: 3},
	}}
	srv := startServer(t, Options{AdminToken: "admin-secret", Tenants: allowed, Stats: store})
	r := srv.call(t, "GET", "/v1/admin/stats", adminAuth)
	var body struct {
		Tenants     []struct{ TenantID string } `json:"tenants"`
		TenantCount int                         `json:"tenantCount"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); r.status != 200 || err != nil {
		t.Fatalf("got %d %s (%v), want 200", r.status, r.body, err)
	}
	if len(body.Tenants) != 1 || body.TenantCount != 1 {
		t.Errorf("got tenants %+v, tenantCount %d; want acme alone, 1 (beta has no stream yet)", body.Tenants, body.TenantCount)
	}
}
