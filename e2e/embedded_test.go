package e2e

// The embedded store: NATS JetStream inside the sidecar process, its files in
// --data-dir. It is what a sidecar runs on without --redis-url or --nats-url.

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/freeport"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// embeddedSidecar starts a sidecar on the embedded store in dir, with
// adminToken; app may be nil.
func embeddedSidecar(t *testing.T, dir string, app *apptest.App, args ...string) *sidecartest.Sidecar {
	t.Helper()
	full := []string{"--data-dir", dir, "--tenant", "acme", "--admin-token", adminToken, "--log-level", "debug"}
	if app != nil {
		full = append(full, "--app-url", app.URL())
	}
	return sidecartest.Start(t, sidecartest.Options{Args: append(full, args...)})
}

// The quick start: no store flags, a fresh --data-dir that does not exist
// yet. The sidecar creates it, becomes ready, publishes and delivers.
func TestEmbedded_quick_start_without_store_flags_publishes_and_delivers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hyvve-data")
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	sc := sidecartest.Start(t, sidecartest.Options{Args: []string{
		"--data-dir", dir, "--tenant", "acme", "--app-url", app.URL(), "--admin-token", adminToken}})

	a := publish(t, sc, eventBody("order.paid", "acme", "data", `{"orderId":"o-1"}`))
	if a.Body["stream"] != "hyvve.events.acme" || !streamIDs["jetstream"].MatchString(str(a.Body, "streamId")) {
		t.Errorf("publish answer: got %s, want stream hyvve.events.acme and a decimal stream id", a.Raw)
	}
	app.WaitFor(t, 5*time.Second, "the push", func(ps []apptest.Push) bool { return answered(ps)[str(a.Body, "id")] })
	if p := app.Received()[0]; !strings.Contains(string(p.Body), `"data":{"orderId":"o-1"}`) || p.Header.Get("X-Tenant-Id") != "acme" {
		t.Errorf("push: got %s %v, want the published event", p.Body, p.Header)
	}
	waitCaughtUp(t, sc, "hyvve-platform", 3*time.Second)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("--data-dir %s: got %v, want a directory created by the sidecar", dir, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("--data-dir mode: got %o, want no access for group and others (it holds every tenant's events)", perm)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) == 0 {
		t.Errorf("--data-dir is empty after a publish: the store keeps no files there")
	}
	if code := sc.Stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}
}

// Durability (issue 8): kill -9 the embedded sidecar with 1,000 events
// accepted but not delivered (16 stuck in an app that answers nothing, the
// rest not read yet); a sidecar started again on the same --data-dir
// delivers every one of them.
func TestEmbedded_SIGKILL_with_1000_events_undelivered_loses_none_on_restart(t *testing.T) {
	dir := t.TempDir()
	stuck := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	stuck.SetHandler(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }) // answers nothing
	// A retry step of 2 s: what the first sidecar held comes back within
	// it (the ack wait), and 4 attempts take longer than this test needs.
	args := []string{"--retry-schedule", "2s,2s,2s", "--app-timeout", "1500ms", "--app-concurrency", "16"}
	first := embeddedSidecar(t, dir, stuck, args...)

	const n = 1000
	published := map[string]bool{}
	for batch := range n / 250 {
		var body strings.Builder
		body.WriteString(`{"events":[`)
		for i := range 250 {
			if i > 0 {
				body.WriteByte(',')
			}
			body.WriteString(eventBody("order.created", "acme", "data", `{"i":`+strconv.Itoa(batch*250+i)+`}`))
		}
		body.WriteString("]}")
		a := do(t, first.Client(), "POST", first.URL()+"/v1/events/batch", body.String(), nil)
		if a.Status != 202 || strings.Contains(a.Raw, `"error"`) {
			t.Fatalf("batch: got %d %.300s", a.Status, a.Raw)
		}
		for _, r := range a.Body["results"].([]any) {
			published[r.(map[string]any)["id"].(string)] = true
		}
	}
	stuck.WaitFor(t, 10*time.Second, "16 pushes in flight", func(ps []apptest.Push) bool { return len(ps) >= 16 })
	first.Kill(t)
	if got := len(answered(stuck.Received())); got != 0 {
		t.Fatalf("the app answered %d pushes, want none before the kill", got)
	}
	inFlight := countIDs(stuck.Received())

	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	second := embeddedSidecar(t, dir, app, args...)
	eventually(t, 30*time.Second, "all 1,000 events delivered", func() bool { return len(answered(app.Received())) >= n })
	waitCaughtUp(t, second, "hyvve-platform", 5*time.Second)
	got := answered(app.Received())
	missing := 0
	for id := range published {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 || len(got) != n {
		t.Errorf("after the restart: got %d distinct events delivered, %d of the 1,000 missing; want all 1,000", len(got), missing)
	}
	var attempts []string
	for _, p := range app.Received() {
		if inFlight[p.EventID] > 0 {
			attempts = append(attempts, p.Header.Get("X-Delivery-Attempt"))
		}
	}
	t.Logf("X-Delivery-Attempt after the restart of the %d events in flight at the kill: %v", len(inFlight), attempts)
	if dl := dlqLength(t, second, "acme"); dl != 0 {
		t.Errorf("dead letters: got %d, want 0", dl)
	}
	if sl := streamLength(t, second, "acme"); sl != n {
		t.Errorf("stream length after the restart: got %d, want %d", sl, n)
	}
}

// --embedded-listen lets other sidecars use the embedded store with
// --nats-url: both see one store, so each group gets the events published on
// either sidecar.
func TestEmbedded_listen_shares_the_store_with_sidecars_on_nats_url(t *testing.T) {
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	billing := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	audit := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	host := embeddedSidecar(t, t.TempDir(), billing, "--embedded-listen", addr, "--group", "billing")
	guest := sidecartest.Start(t, sidecartest.Options{Args: []string{"--nats-url", "nats://" + addr, "--tenant", "acme",
		"--app-url", audit.URL(), "--group", "audit", "--admin-token", adminToken}})

	onHost := publish(t, host, eventBody("order.paid", "acme"))
	onGuest := publish(t, guest, eventBody("order.paid", "globex"))
	for _, a := range []answer{onHost, onGuest} {
		id := str(a.Body, "id")
		for name, app := range map[string]*apptest.App{"billing (host)": billing, "audit (guest)": audit} {
			app.WaitFor(t, 5*time.Second, name+" to get "+id, func(ps []apptest.Push) bool { return answered(ps)[id] })
		}
	}
	for _, sc := range []*sidecartest.Sidecar{host, guest} {
		s := allStats(t, sc)
		if s.TenantCount != 2 {
			t.Errorf("tenants seen through %s: got %d, want 2 (one store)", sc.URL(), s.TenantCount)
		}
		for _, g := range []string{"billing", "audit"} {
			if _, _, found := s.group(g); !found {
				t.Errorf("group %s not in the stats through %s: got %+v", g, sc.URL(), s.Groups)
			}
		}
	}
	for _, g := range []string{"billing", "audit"} {
		waitCaughtUp(t, guest, g, 3*time.Second)
	}
	time.Sleep(300 * time.Millisecond) // let any duplicate arrive
	for name, app := range map[string]*apptest.App{"billing": billing, "audit": audit} {
		if got := countIDs(app.Received()); len(got) != 2 || len(app.Received()) != 2 {
			t.Errorf("%s: got %d pushes of %d events, want 2 of 2", name, len(app.Received()), len(got))
		}
	}
}

// Two sidecars on one --data-dir would corrupt the store: the second one
// exits at start with one line naming the directory, and the first goes on.
func TestEmbedded_a_second_sidecar_on_the_same_data_dir_is_refused(t *testing.T) {
	dir := t.TempDir()
	first := embeddedSidecar(t, dir, nil)
	out, code := sidecartest.Run(t, []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--tenant", "acme"}, nil)
	if code == 0 || !strings.Contains(out, "--data-dir "+dir+": in use by another sidecar (pid "+strconv.Itoa(first.PID())+")") {
		t.Errorf("second sidecar: exit %d, output:\n%s\nwant a non-zero exit naming the directory and pid %d", code, out, first.PID())
	}
	publish(t, first, eventBody("order.paid", "acme"))
}
