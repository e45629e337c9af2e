package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
)

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
	forEachStore(t, func(t *testing.T, b broker) {
		app := dashboardApp(t)
		sc := startSidecar(t, b, app)

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
		app.WaitFor(t, 10*time.Second, "every push answered", func(ps []apptest.Push) bool {
			return len(ps) == 9 && !slices.ContainsFunc(ps, func(p apptest.Push) bool { return p.Pending })
		})

		var s statsAnswer
		eventually(t, 10*time.Second, "the group to catch up and the dead letter to show", func() bool {
			s = allStats(t, sc)
			pending, lag, found := s.group("hyvve-platform")
			return found && pending == 0 && lag == 0 && s.DLQTotal == 1
		})
		if s.TenantCount != 2 || len(s.Tenants) != 2 || s.DLQTotal != 1 || s.LagTotal != 0 {
			t.Fatalf("got %d tenants of %d, %d dead letters, lag %d; want 2 of 2, 1, 0: %+v", len(s.Tenants), s.TenantCount, s.DLQTotal, s.LagTotal, s)
		}
		for i, want := range []struct {
			tenant      string
			length, dlq int64
		}{{"acme", 6, 1}, {"beta", 3, 0}} {
			got := s.Tenants[i]
			if got.TenantID != want.tenant || got.StreamLength != want.length || got.DLQLength != want.dlq {
				t.Errorf("tenant %d: got %s length %d dlq %d, want %s %d %d", i, got.TenantID, got.StreamLength, got.DLQLength,
					want.tenant, want.length, want.dlq)
			}
		}
		// Where the groups are: per tenant on Redis (each tenant stream has
		// its consumer groups), once over all tenants on JetStream (one
		// consumer per group covers every tenant).
		switch b.name() {
		case "redis":
			for _, tn := range s.Tenants {
				if len(tn.Groups) != 1 || tn.Groups[0].Group != "hyvve-platform" || tn.Groups[0].Consumers != 1 {
					t.Errorf("%s's groups: got %+v, want hyvve-platform with 1 consumer", tn.TenantID, tn.Groups)
				}
			}
			if len(s.Groups) != 0 {
				t.Errorf("top-level groups on Redis: got %+v, want none", s.Groups)
			}
		case "jetstream":
			if len(s.Groups) != 1 || s.Groups[0].Group != "hyvve-platform" || s.Groups[0].Consumers != 1 {
				t.Errorf("top-level groups: got %+v, want hyvve-platform with 1 consumer", s.Groups)
			}
			for _, tn := range s.Tenants {
				if len(tn.Groups) != 0 {
					t.Errorf("%s's groups on JetStream: got %+v, want none (they are over all tenants)", tn.TenantID, tn.Groups)
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
		// The cluster count is shared through the store; a store may flush
		// it with a delay.
		eventually(t, 5*time.Second, "9 published in the cluster's last hour", func() bool {
			var cluster int64
			for _, m := range getStats(t, sc, "").Cluster.PublishedPerMinute {
				cluster += m.Count
			}
			return cluster == 9
		})
	})
}

// Redis keeps no lag for a group once an entry in its range was deleted: the
// stats count it instead and say so (lagEstimated). JetStream always knows a
// consumer's pending count, so this is Redis-only.
func TestRedis_stats_estimate_the_lag_a_group_cannot_tell(t *testing.T) {
	rb := startRedis(t)
	c := rb.client(t)
	app := dashboardApp(t)
	sc := startSidecar(t, rb, app)
	for i := range 5 {
		publish(t, sc, eventBody("order.paid", "acme", "data", fmt.Sprintf(`{"n":%d}`, i)))
	}
	app.WaitFor(t, 10*time.Second, "5 pushes", func(ps []apptest.Push) bool { return len(answered(ps)) == 5 })
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
	waitCaughtUp(t, sc, "hyvve-platform", 5*time.Second)
	acme, _ := allStats(t, sc).tenant("acme")
	want := map[string]string{"hyvve-platform": "lag 0 estimated false", "audit": "lag 4 estimated true"}
	if len(acme.Groups) != len(want) {
		t.Errorf("acme's groups: got %+v, want %v", acme.Groups, want)
	}
	for _, g := range acme.Groups {
		if got := fmt.Sprintf("lag %d estimated %v", g.Lag, g.LagEstimated); got != want[g.Group] || g.Pending != 0 {
			t.Errorf("group %s: got %s pending %d, want %s pending 0", g.Group, got, g.Pending, want[g.Group])
		}
	}
}

func TestStats_pages_tenants(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		sc := startSidecar(t, b, nil)
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
			if s.TenantCount != 5 {
				t.Errorf("tenantCount: got %d, want 5", s.TenantCount)
			}
			for _, tn := range s.Tenants {
				seen = append(seen, tn.TenantID)
				if tn.StreamLength != 1 {
					t.Errorf("%s's stream length: got %d, want 1", tn.TenantID, tn.StreamLength)
				}
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
	})
}

// The dashboard's files come from the binary; no store is involved.
func TestDashboard_page_is_served_with_strict_headers(t *testing.T) {
	sc := startSidecar(t, startRedis(t), nil)
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

	// One store is enough for the page; it reads the store only through
	// the admin API, which the other tests cover on both.
	app := dashboardApp(t)
	sc := startSidecar(t, startRedis(t), app)
	for range 3 {
		publish(t, sc, eventBody("order.paid", "acme"))
	}
	publish(t, sc, eventBody("order.failed", "acme", "data", `{"orderId":"ord-browser-42"}`))
	eventually(t, 10*time.Second, "the dead letter", func() bool { return dlqLength(t, sc, "acme") == 1 })
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
	if n := dlqLength(t, sc, "acme"); n != 0 {
		t.Errorf("dead letters after the retry button: got %d, want 0", n)
	}
	if strings.Contains(sc.Logs(), adminToken) {
		t.Errorf("the admin token appears in the sidecar's logs")
	}
}
