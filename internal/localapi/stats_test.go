package localapi

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/metrics"
)

// fakeStats answers what the test set and records the query it got.
type fakeStats struct {
	mu     sync.Mutex // guards the fields below
	st     BrokerStats
	err    error
	limit  int
	cursor string
}

func (f *fakeStats) BrokerStats(_ context.Context, limit int, cursor string) (BrokerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit, f.cursor = limit, cursor
	return f.st, f.err
}

func TestStats_answers_the_documented_shape(t *testing.T) {
	minute := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	fs := &fakeStats{st: BrokerStats{
		Tenants: []TenantStats{
			{Tenant: "acme", StreamLength: 10, DLQLength: 2, Groups: []GroupStats{
				{Group: "billing", Consumers: 1, Pending: 3, Lag: 4, LastDeliveredID: "1-0"},
				{Group: "audit", Lag: 1000, LagEstimated: true, LastDeliveredID: "0-0"},
			}},
			{Tenant: "beta", StreamLength: 1, DLQLength: 5},
		},
		TenantCount: 7, NextCursor: "beta",
		PublishedPerMinute: []MinuteCount{{Minute: minute, Count: 42}},
	}}
	m := metrics.New()
	rates := m.NewRates()
	start := time.Now()
	rates.Sample(start)
	m.Published.WithLabelValues("ok").Add(120)
	m.Deliveries.WithLabelValues("ok").Add(60)
	m.Deliveries.WithLabelValues("app_error").Add(6)
	rates.Sample(start.Add(time.Minute))

	ts := startServer(t, Options{AdminToken: "admin-secret", Stats: fs, Rates: rates})
	r := ts.call(t, "GET", "/v1/admin/stats?limit=2&cursor=alpha", adminAuth)
	if r.status != 200 {
		t.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	if fs.limit != 2 || fs.cursor != "alpha" {
		t.Errorf("store got limit %d cursor %q, want 2 and alpha", fs.limit, fs.cursor)
	}
	var got struct {
		Tenants []struct {
			TenantID     string `json:"tenantId"`
			StreamLength int64  `json:"streamLength"`
			DLQLength    int64  `json:"dlqLength"`
			Groups       []struct {
				Group        string `json:"group"`
				Lag          int64  `json:"lag"`
				LagEstimated bool   `json:"lagEstimated"`
				Pending      int64  `json:"pending"`
			} `json:"groups"`
		} `json:"tenants"`
		TenantCount int    `json:"tenantCount"`
		NextCursor  string `json:"nextCursor"`
		DLQTotal    int64  `json:"dlqTotal"`
		LagTotal    int64  `json:"lagTotal"`
		Sidecar     struct {
			PublishedPerSec float64 `json:"publishedPerSec"`
			DeliveredPerSec float64 `json:"deliveredPerSec"`
			FailedPerSec    float64 `json:"failedPerSec"`
		} `json:"sidecar"`
		Cluster struct {
			PublishedPerMinute []struct {
				Minute string `json:"minute"`
				Count  int64  `json:"count"`
			} `json:"publishedPerMinute"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	if len(got.Tenants) != 2 || got.Tenants[0].TenantID != "acme" || len(got.Tenants[0].Groups) != 2 {
		t.Fatalf("tenants: got %s", r.body)
	}
	if g := got.Tenants[0].Groups[1]; g.Group != "audit" || g.Lag != 1000 || !g.LagEstimated {
		t.Errorf("audit: got %+v, want lag 1000 estimated", g)
	}
	if g := got.Tenants[1].Groups; g == nil || len(g) != 0 {
		t.Errorf("beta groups: got %v, want [] (not null)", g)
	}
	if got.TenantCount != 7 || got.NextCursor != "beta" || got.DLQTotal != 7 || got.LagTotal != 1004 {
		t.Errorf("got count %d cursor %q dlq %d lag %d, want 7, beta, 7, 1004", got.TenantCount, got.NextCursor, got.DLQTotal, got.LagTotal)
	}
	if s := got.Sidecar; s.PublishedPerSec != 2 || s.DeliveredPerSec != 1 || s.FailedPerSec != 0.1 {
		t.Errorf("rates: got %+v, want 2, 1, 0.1 per second", s)
	}
	if c := got.Cluster.PublishedPerMinute; len(c) != 1 || c[0].Count != 42 || c[0].Minute != "2026-11-26T10:00:00Z" {
		t.Errorf("per minute: got %+v, want 42 at 2026-11-26T10:00:00Z", c)
	}
}

// A broker with one consumer per group over all tenants (JetStream) answers
// the groups once, at the top level; their lag counts in lagTotal.
func TestStats_passes_groups_over_all_tenants(t *testing.T) {
	fs := &fakeStats{st: BrokerStats{
		Tenants: []TenantStats{{Tenant: "acme", StreamLength: 3}},
		Groups:  []GroupStats{{Group: "billing", Consumers: 2, Pending: 1, Lag: 5, LastDeliveredID: "7"}},
	}}
	ts := startServer(t, Options{AdminToken: "admin-secret", Stats: fs})
	r := ts.call(t, "GET", "/v1/admin/stats", adminAuth)
	var got struct {
		Groups []struct {
			Group           string `json:"group"`
			Pending         int64  `json:"pending"`
			Lag             int64  `json:"lag"`
			LastDeliveredID string `json:"lastDeliveredId"`
		} `json:"groups"`
		LagTotal int64 `json:"lagTotal"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
		t.Fatalf("got %d %s (%v), want 200 and JSON", r.status, r.body, err)
	}
	if len(got.Groups) != 1 || got.Groups[0].Group != "billing" || got.Groups[0].Pending != 1 ||
		got.Groups[0].Lag != 5 || got.Groups[0].LastDeliveredID != "7" || got.LagTotal != 5 {
		t.Errorf("got %s, want the billing group with pending 1, lag 5 and lagTotal 5", r.body)
	}
	fs.st.Groups = nil
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(ts.call(t, "GET", "/v1/admin/stats", adminAuth).body), &top); err != nil {
		t.Fatal(err)
	}
	if g, ok := top["groups"]; ok {
		t.Errorf("a broker without shared groups: got top-level groups %s, want none", g)
	}
}

func TestStats_refuses_bad_queries_and_maps_errors(t *testing.T) {
	fs := &fakeStats{}
	ts := startServer(t, Options{AdminToken: "admin-secret", Stats: fs})
	for _, tc := range []struct {
		name, path string
		status     int
		field      string
	}{
		{"no token", "/v1/admin/stats", 401, "Authorization"},
		{"limit 0", "/v1/admin/stats?limit=0", 400, "limit"},
		{"limit too big", "/v1/admin/stats?limit=1001", 400, "limit"},
		{"unknown parameter", "/v1/admin/stats?tenant=acme", 400, "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := adminAuth
			if tc.status == 401 {
				auth = ""
			}
			r := ts.call(t, "GET", tc.path, auth)
			if r.status != tc.status || r.errField(t, "field") != tc.field {
				t.Errorf("got %d %s, want %d naming %s", r.status, r.body, tc.status, tc.field)
			}
		})
	}
	if r := ts.call(t, "POST", "/v1/admin/stats", adminAuth); r.status != 405 {
		t.Errorf("POST: got %d, want 405", r.status)
	}
	fs.mu.Lock()
	fs.err = &event.Error{Code: event.CodeInvalidField, Field: "cursor", Message: "bad cursor"}
	fs.mu.Unlock()
	if r := ts.call(t, "GET", "/v1/admin/stats?cursor=x", adminAuth); r.status != 400 || r.errField(t, "field") != "cursor" {
		t.Errorf("bad cursor: got %d %s, want 400 naming cursor", r.status, r.body)
	}
	if r := startServer(t, Options{AdminToken: "admin-secret"}).call(t, "GET", "/v1/admin/stats", adminAuth); r.status != 404 {
		t.Errorf("without a Stats: got %d, want 404", r.status)
	}
}

func TestDashboard_serves_the_page_with_strict_headers(t *testing.T) {
	ts := startServer(t, Options{AdminToken: "admin-secret"})
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/admin/", "text/html", `<script src="app.js"`},
		{"/admin/index.html", "text/html", "Dead letters"},
		{"/admin/app.js", "text/javascript", "sessionStorage"},
		{"/admin/style.css", "text/css", "--accent"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			// No token: the page is public static content.
			r := ts.call(t, "GET", tc.path, "")
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) || !strings.Contains(r.body, tc.contains) {
				t.Fatalf("got %d %s (%d bytes), want 200 %s containing %q", r.status, r.header.Get("Content-Type"), len(r.body), tc.ctype, tc.contains)
			}
			for k, want := range map[string]string{
				"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
			} {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if csp := r.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP: got %q, want default-src 'self' without unsafe-inline", csp)
			}
		})
	}
	if r := ts.call(t, "GET", "/admin/index.html", ""); strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") {
		t.Errorf("index.html has inline script or style, which the CSP blocks")
	}
	for _, p := range []string{"/admin/nothing.js", "/admin/web/index.html", "/admin/../go.mod"} {
		if r := ts.call(t, "GET", p, ""); r.status != 404 {
			t.Errorf("%s: got %d, want 404", p, r.status)
		}
	}
	if r := ts.call(t, "POST", "/admin/", ""); r.status != 405 {
		t.Errorf("POST /admin/: got %d, want 405", r.status)
	}
}
