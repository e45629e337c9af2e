package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// statsAnswer is the part of GET /v1/admin/stats the tests check.
type statsAnswer struct {
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
	Sidecar     struct {
		PublishedPerSec float64 `json:"publishedPerSec"`
		DeliveredPerSec float64 `json:"deliveredPerSec"`
		FailedPerSec    float64 `json:"failedPerSec"`
		PerMinute       []struct {
			Published int64 `json:"published"`
			Delivered int64 `json:"delivered"`
		} `json:"perMinute"`
	} `json:"sidecar"`
	Cluster struct {
		PublishedPerMinute []struct {
			Minute string `json:"minute"`
			Count  int64  `json:"count"`
		} `json:"publishedPerMinute"`
	} `json:"cluster"`
}

func getStats(t testing.TB, sc *sidecartest.Sidecar, query string) statsAnswer {
	t.Helper()
	a := admin(t, sc, "GET", "/v1/admin/stats"+query, adminToken)
	if a.Status != 200 {
		t.Fatalf("stats: got %d %s, want 200", a.Status, a.Raw)
	}
	var s statsAnswer
	if err := json.Unmarshal([]byte(a.Raw), &s); err != nil {
		t.Fatalf("stats %s: %v", a.Raw, err)
	}
	return s
}

// dashboardApp accepts every event but "order.failed", which it rejects
// (422): that event becomes a dead letter at once.
func dashboardApp(t testing.TB) *apptest.App {
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type string }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		if ev.Type == "order.failed" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, "order 42 does not exist")
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return app
}

func TestStats_match_what_was_published_and_dead_lettered(t *testing.T) {
	rdb := redistest.Start(t)
	c := rdb.Client(t)
	app := dashboardApp(t)
	sc := startSidecar(t, rdb, app, "--admin-token", adminToken)

	if a := admin(t, sc, "GET", "/v1/admin/stats", ""); a.Status != 401 {
		t.Errorf("stats without the token: got %d, want 401", a.Status)
	}
	for i := range 5 {
		publish(t, sc, eventBody("order.paid", "acme", "data", fmt.Sprintf(`{"n":%d}`, i)))
	}
	publish(t, sc, eventBody("order.failed", "acme"))
	for range 3 {
		publish(t, sc, eventBody("order.paid", "beta"))
	}
	eventually(t, 10*time.Second, "one dead letter and every push answered", func() bool {
		return xlen(t, c, "hyvve:dlq:{acme}") == 1 && len(app.Received()) == 9
	})
	// A group no sidecar reads, created at the start of acme's stream, then
	// an entry in the middle deleted: Redis cannot tell that group's lag any more.
	if err := c.XGroupCreate(context.Background(), "hyvve:events:{acme}", "audit", "0").Err(); err != nil {
		t.Fatal(err)
	}
	entries, err := c.XRangeN(context.Background(), "hyvve:events:{acme}", "-", "+", 3).Result()
	if err != nil || len(entries) != 3 {
		t.Fatalf("entries: %v %v", entries, err)
	}
	if err := c.XDel(context.Background(), "hyvve:events:{acme}", entries[2].ID).Err(); err != nil {
		t.Fatal(err)
	}

	var s statsAnswer
	eventually(t, 10*time.Second, "the group to catch up", func() bool {
		s = getStats(t, sc, "")
		for _, tn := range s.Tenants {
			for _, g := range tn.Groups {
				if g.Group == "hyvve-platform" && (g.Lag != 0 || g.Pending != 0) {
					return false
				}
			}
		}
		return true
	})
	if s.TenantCount != 2 || len(s.Tenants) != 2 || s.DLQTotal != 1 {
		t.Fatalf("got %d tenants of %d, %d dead letters; want 2 of 2, 1: %+v", len(s.Tenants), s.TenantCount, s.DLQTotal, s)
	}
	for i, want := range []struct {
		tenant      string
		length, dlq int64
		groups      map[string][2]int64 // group → lag, estimated (0/1)
	}{
		{"acme", 5, 1, map[string][2]int64{"hyvve-platform": {0, 0}, "audit": {5, 1}}},
		{"beta", 3, 0, map[string][2]int64{"hyvve-platform": {0, 0}}},
	} {
		got := s.Tenants[i]
		if got.TenantID != want.tenant || got.StreamLength != want.length || got.DLQLength != want.dlq {
			t.Errorf("tenant %d: got %s length %d dlq %d, want %s %d %d", i, got.TenantID, got.StreamLength, got.DLQLength,
				want.tenant, want.length, want.dlq)
		}
		if len(got.Groups) != len(want.groups) {
			t.Errorf("%s: got %d groups %+v, want %d", want.tenant, len(got.Groups), got.Groups, len(want.groups))
		}
		for _, g := range got.Groups {
			w, ok := want.groups[g.Group]
			est := int64(0)
			if g.LagEstimated {
				est = 1
			}
			if !ok || g.Lag != w[0] || est != w[1] || g.Pending != 0 {
				t.Errorf("%s/%s: got lag %d estimated %v pending %d, want lag %d estimated %v pending 0",
					want.tenant, g.Group, g.Lag, g.LagEstimated, g.Pending, w[0], w[1] == 1)
			}
		}
	}

	// This sidecar's rates come from a sample a second: wait for one after
	// the publishes.
	eventually(t, 5*time.Second, "this sidecar's rates", func() bool {
		s = getStats(t, sc, "")
		return s.Sidecar.PublishedPerSec > 0 && s.Sidecar.DeliveredPerSec > 0 && s.Sidecar.FailedPerSec > 0
	})
	var pub, del int64
	for _, m := range s.Sidecar.PerMinute {
		pub += m.Published
		del += m.Delivered
	}
	if pub != 9 || del != 8 {
		t.Errorf("this sidecar per minute: got %d published, %d delivered; want 9 and 8", pub, del)
	}
	if n := len(s.Cluster.PublishedPerMinute); n != 60 {
		t.Fatalf("cluster per minute: got %d minutes, want 60", n)
	}
	var cluster int64
	for _, m := range s.Cluster.PublishedPerMinute {
		cluster += m.Count
	}
	if cluster != 9 {
		t.Errorf("cluster per minute: got %d published in the last hour, want 9", cluster)
	}
}

func TestStats_pages_tenants(t *testing.T) {
	rdb := redistest.Start(t)
	sc := startSidecar(t, rdb, nil, "--admin-token", adminToken)
	for i := range 5 {
		publish(t, sc, eventBody("a.b", fmt.Sprintf("t%d", i)))
	}
	var seen []string
	cursor := ""
	for range 5 {
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		s := getStats(t, sc, q)
		for _, tn := range s.Tenants {
			seen = append(seen, tn.TenantID)
		}
		if cursor = s.NextCursor; cursor == "" {
			break
		}
	}
	if got := strings.Join(seen, ","); got != "t0,t1,t2,t3,t4" {
		t.Errorf("tenants over the pages: got %s, want t0,t1,t2,t3,t4", got)
	}
	if a := admin(t, sc, "GET", "/v1/admin/stats?limit=5000", adminToken); a.Status != 400 || a.errField("field") != "limit" {
		t.Errorf("limit 5000: got %d %s, want 400 naming limit", a.Status, a.Raw)
	}
}

func TestDashboard_page_is_served_with_strict_headers(t *testing.T) {
	rdb := redistest.Start(t)
	sc := startSidecar(t, rdb, nil, "--admin-token", adminToken)
	for _, p := range []string{"/admin/", "/admin/index.html", "/admin/app.js", "/admin/style.css"} {
		a := do(t, sc.Client(), "GET", sc.URL()+p, "", nil)
		if a.Status != 200 || len(a.Raw) < 500 {
			t.Errorf("%s: got %d (%d bytes), want 200 with the file", p, a.Status, len(a.Raw))
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if got := a.Header.Get(k); got != want {
				t.Errorf("%s %s: got %q, want %q", p, k, got, want)
			}
		}
		if csp := a.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
			t.Errorf("%s CSP: got %q, want default-src 'self'", p, csp)
		}
	}
	if a := do(t, sc.Client(), "GET", sc.URL()+"/admin/", "", nil); strings.Contains(a.Raw, adminToken) {
		t.Errorf("the page carries the admin token")
	}
}

// TestDashboard_in_a_browser runs e2e/browser/dashboard.test.mjs: headless
// Chromium, driven by playwright-core, against this sidecar and Redis. It is
// skipped when playwright-core or chromium is missing, unless CI is set.
// Screenshots go to $HYVVE_TEST_ARTIFACTS (default e2e/browser/artifacts);
// HYVVE_UPDATE_DOCS=1 also refreshes docs/dashboard.png.
func TestDashboard_in_a_browser(t *testing.T) {
	dir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, nodeErr := exec.LookPath("node")
	var missing []string
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = append(missing, "e2e/browser/node_modules/playwright-core (cd e2e/browser && npm ci)")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install chromium)")
	}
	if nodeErr != nil {
		missing = append(missing, "node")
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the browser test cannot run; missing: %s", strings.Join(missing, ", "))
		}
		t.Skipf("missing %s", strings.Join(missing, ", "))
	}

	rdb := redistest.Start(t)
	c := rdb.Client(t)
	app := dashboardApp(t)
	sc := startSidecar(t, rdb, app, "--admin-token", adminToken)
	for range 3 {
		publish(t, sc, eventBody("order.paid", "acme"))
	}
	publish(t, sc, eventBody("order.failed", "acme", "data", `{"orderId":"ord-browser-42"}`))
	eventually(t, 10*time.Second, "the dead letter", func() bool { return xlen(t, c, "hyvve:dlq:{acme}") == 1 })
	// The retried event is pushed again; the app now takes it.
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

	artifacts := os.Getenv("HYVVE_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(dir, "artifacts")
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dashboard.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"DASHBOARD_URL="+sc.URL()+"/admin/?token="+adminToken,
		"CHROMIUM="+chromium,
		"ARTIFACTS="+artifacts,
	)
	// docs/dashboard.png is rewritten only on request, so that a test run
	// does not change a tracked file.
	if os.Getenv("HYVVE_UPDATE_DOCS") == "1" {
		cmd.Env = append(cmd.Env, "DOCS_SCREENSHOT="+filepath.Join(dir, "..", "..", "docs", "dashboard.png"))
	}
	out, err := cmd.CombinedOutput()
	t.Logf("node dashboard.test.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	if n := xlen(t, c, "hyvve:dlq:{acme}"); n != 0 {
		t.Errorf("dead letters after the retry button: got %d, want 0", n)
	}
	if strings.Contains(sc.Logs(), adminToken) {
		t.Errorf("the admin token appears in the sidecar's logs")
	}
}
