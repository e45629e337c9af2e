package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
)

// A slow app holds --app-concurrency pushes; the sidecar must stop reading
// rather than buffer the rest. 10,000 events of 4 KiB through each store stay
// well under the time budget, so this runs on both.
func TestBackpressure_a_slow_app_does_not_grow_the_sidecars_memory(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/slow"}))
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }) // never answers
		const concurrency = 16
		sub := startSidecar(t, b, app, "--app-timeout", "5m", "--retry-schedule", "10m", "--app-concurrency", fmt.Sprint(concurrency), "--shutdown-timeout", "1s")
		pub := startSidecar(t, b, nil)

		// 10,000 events of 4 KiB: 40 MiB if the sidecar held them all.
		data := `{"pad":"` + strings.Repeat("x", 4096) + `"}`
		batch := func() string {
			var b strings.Builder
			b.WriteString(`{"events":[`)
			for i := range 500 {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(eventBody("load.test", "acme", "data", data))
			}
			b.WriteString("]}")
			return b.String()
		}()
		send := func() {
			if a := do(t, pub.Client(), "POST", pub.URL()+"/v1/events/batch", batch, nil); a.Status != 202 {
				t.Fatalf("batch publish: got %d %.200s", a.Status, a.Raw)
			}
		}
		send()
		app.WaitFor(t, 10*time.Second, "the app to hold a full window", func(ps []apptest.Push) bool { return len(ps) >= concurrency })
		time.Sleep(500 * time.Millisecond)
		base := sub.RSS(t)
		for range 19 {
			send()
		}
		time.Sleep(2 * time.Second) // give a leaky reader time to read everything

		if n := streamLength(t, pub, "acme"); n != 10000 {
			t.Fatalf("stream length: got %d, want 10000", n)
		}
		if p := pendingOf(t, pub, "hyvve-platform"); p > concurrency {
			t.Errorf("events read by the sidecar and not acknowledged: got %d, want ≤ %d (--app-concurrency): it must stop reading", p, concurrency)
		}
		if got := len(app.Received()); got != concurrency {
			t.Errorf("pushes in flight: got %d, want %d", got, concurrency)
		}
		grew := sub.RSS(t) - base
		t.Logf("sidecar RSS %d KiB at the start of the wait, grew by %d KiB while 10,000 events waited", base>>10, grew>>10)
		if grew > 16<<20 {
			t.Errorf("sidecar RSS grew by %d MiB while events waited; want < 16 MiB", grew>>20)
		}

		// SIGTERM with pushes stuck: they are handed back after --shutdown-timeout.
		if code := sub.Stop(t); code != 0 {
			t.Errorf("exit code after SIGTERM with pushes in flight: got %d, want 0", code)
		}
		if !strings.Contains(sub.Logs(), "handing back") {
			t.Errorf("no log line about handing back the pushes in flight")
		}
		pending, lag, _ := allStats(t, pub).group("hyvve-platform")
		if pending+lag != 10000 || pending > concurrency {
			t.Errorf("after the handback: got %d pending and %d not yet read, want all 10000 still owed to the app, at most %d of them pending",
				pending, lag, concurrency)
		}
	})
}

func TestReadiness_follows_the_broker_down_and_back_without_a_restart(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		sc := startSidecar(t, b, app)

		b.kill(t)
		eventually(t, 5*time.Second, "/readyz to turn 503", func() bool {
			return do(t, sc.Client(), "GET", sc.URL()+"/readyz", "", nil).Status == 503
		})
		a := do(t, sc.Client(), "GET", sc.URL()+"/readyz", "", nil)
		if !strings.Contains(a.errField("message"), "broker") {
			t.Errorf("/readyz reason: got %q, want it to name the broker", a.errField("message"))
		}
		if h := do(t, sc.Client(), "GET", sc.URL()+"/healthz", "", nil); h.Status != 200 {
			t.Errorf("/healthz while the broker is down: got %d, want 200 (the process still serves)", h.Status)
		}
		start := time.Now()
		refused := eventBody("a.b", "acme", "id", `"refused-while-down"`)
		p := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", refused, nil)
		if p.Status != 503 || p.errField("code") != "broker_unavailable" {
			t.Errorf("publish while the broker is down: got %d %s, want 503 broker_unavailable", p.Status, p.Raw)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Errorf("publish while the broker is down took %s; want a bounded retry (< 8s)", took)
		}

		b.restart(t)
		eventually(t, 10*time.Second, "/readyz to turn 200", func() bool {
			return do(t, sc.Client(), "GET", sc.URL()+"/readyz", "", nil).Status == 200
		})
		a = publish(t, sc, eventBody("a.b", "acme"))
		app.WaitFor(t, 10*time.Second, "delivery after the broker came back", func(ps []apptest.Push) bool {
			return answered(ps)[a.Body["id"].(string)]
		})
		// A 503 means not published: the app publishes again, and must not
		// find the refused event delivered as well.
		time.Sleep(time.Second)
		if n := countIDs(app.Received())["refused-while-down"]; n != 0 {
			t.Errorf("the event refused with 503 while the broker was down was delivered %d times, want 0", n)
		}
	})
}
