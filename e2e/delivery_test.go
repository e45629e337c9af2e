package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

func TestDelivery_pushes_the_event_with_the_push_contract_headers(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "review.*", Path: "/events/approval"}))
		sub := startSidecar(t, b, app, "--app-token", "app-secret")
		pub := startSidecar(t, b, nil)
		tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		a := do(t, pub.Client(), "POST", pub.URL()+"/v1/events", `{"type":"review.requested","data":{"k":"v"}}`,
			map[string]string{"X-Correlation-Id": "corr-1", "traceparent": tp})
		if a.Status != 202 {
			t.Fatalf("publish: got %d %s", a.Status, a.Raw)
		}
		app.WaitFor(t, 5*time.Second, "one push", func(ps []apptest.Push) bool { return len(ps) == 1 })
		p := app.Received()[0]
		want := map[string]string{
			"Content-Type": "application/json", "X-Event-Id": a.Body["id"].(string), "X-Event-Type": "review.requested",
			"X-Tenant-Id": "acme", "X-Correlation-Id": "corr-1", "X-Delivery-Attempt": "1", "Traceparent": tp,
			"X-Hyvve-Token": "app-secret",
		}
		for k, w := range want {
			if got := p.Header.Get(k); got != w {
				t.Errorf("header %s: got %q, want %q", k, got, w)
			}
		}
		if p.Header.Get("X-Replay") != "" {
			t.Errorf("X-Replay set on a live event")
		}
		if p.Path != "/events/approval" {
			t.Errorf("path: got %q, want /events/approval", p.Path)
		}
		wantBody := `"correlationId":"corr-1","tenantId":"acme","userId":"system","version":"1.0","data":{"k":"v"}}`
		if got := string(p.Body); !strings.HasSuffix(got, wantBody) {
			t.Errorf("body: got %s, want it to end with %s", got, wantBody)
		}
		// Acked after the 2xx: nothing pending for the group.
		waitCaughtUp(t, sub, "hyvve-platform", 3*time.Second)
		if strings.Contains(sub.Logs(), "app-secret") {
			t.Errorf("the app token appears in the logs")
		}
	})
}

func TestDelivery_fans_out_to_every_group_exactly_once(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		billing := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		audit := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "review.**", Path: "/e"}))
		startSidecar(t, b, billing, "--group", "billing")
		startSidecar(t, b, audit, "--group", "audit")
		pub := startSidecar(t, b, nil)

		const n = 100
		for i := range n {
			publish(t, pub, eventBody("review.granted", "acme", "data", fmt.Sprintf(`{"i":%d}`, i)))
		}
		publish(t, pub, eventBody("member.joined", "acme")) // only billing wants it
		billing.WaitFor(t, 10*time.Second, "n+1 pushes", func(ps []apptest.Push) bool { return len(ps) >= n+1 })
		audit.WaitFor(t, 10*time.Second, "n pushes", func(ps []apptest.Push) bool { return len(ps) >= n })
		for _, g := range []string{"billing", "audit"} {
			waitCaughtUp(t, pub, g, 5*time.Second)
		}
		time.Sleep(300 * time.Millisecond) // let any duplicate arrive
		for name, app := range map[string]*apptest.App{"billing": billing, "audit": audit} {
			want := n
			if name == "billing" {
				want = n + 1
			}
			got := countIDs(app.Received())
			if len(got) != want || len(app.Received()) != want {
				t.Errorf("%s: got %d pushes of %d events, want %d of %d", name, len(app.Received()), len(got), want, want)
			}
		}
	})
}

func TestDelivery_shares_load_within_a_group_without_duplicates_or_loss(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app1 := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		app2 := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		startSidecar(t, b, app1, "--group", "orders")
		startSidecar(t, b, app2, "--group", "orders")
		pub := startSidecar(t, b, nil)

		const n = 1000
		var published sync.Map
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					a := do(t, pub.Client(), "POST", pub.URL()+"/v1/events",
						eventBody("order.created", []string{"acme", "globex"}[i%2], "data", fmt.Sprintf(`{"i":%d}`, i)), nil)
					if a.Status != 202 {
						t.Errorf("publish %d: got %d %s, want 202", i, a.Status, a.Raw)
						return
					}
					published.Store(a.Body["id"].(string), true)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		all := func() []apptest.Push { return append(app1.Received(), app2.Received()...) }
		eventually(t, 30*time.Second, "1000 deliveries", func() bool { return len(all()) >= n })
		waitCaughtUp(t, pub, "orders", 5*time.Second)
		time.Sleep(300 * time.Millisecond)
		got := countIDs(all())
		for id, c := range got {
			if c != 1 {
				t.Errorf("event %s delivered %d times, want once", id, c)
			}
		}
		missing := 0
		published.Range(func(k, _ any) bool {
			if got[k.(string)] == 0 {
				missing++
			}
			return true
		})
		if missing > 0 || len(got) != n {
			t.Errorf("got %d distinct events delivered, %d missing; want %d, 0 missing", len(got), missing, n)
		}
		if len(app1.Received()) == 0 || len(app2.Received()) == 0 {
			t.Errorf("load not shared: app1 got %d, app2 got %d", len(app1.Received()), len(app2.Received()))
		}
	})
}

func TestDelivery_of_events_published_while_the_subscriber_was_stopped(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		sub := startSidecar(t, b, app, "--group", "late")
		pub := startSidecar(t, b, nil)
		publish(t, pub, eventBody("a.first", "acme"))
		app.WaitFor(t, 5*time.Second, "the first event", func(ps []apptest.Push) bool { return len(ps) == 1 })
		if code := sub.Stop(t); code != 0 {
			t.Fatalf("sidecar exit code after SIGTERM: got %d, want 0", code)
		}

		// Published while no consumer of the group runs, on an existing and on a new tenant.
		publish(t, pub, eventBody("a.while-down", "acme"))
		publish(t, pub, eventBody("a.while-down", "newco"))

		startSidecar(t, b, app, "--group", "late")
		app.WaitFor(t, 5*time.Second, "both events published while stopped", func(ps []apptest.Push) bool { return len(ps) == 3 })
		for _, p := range app.Received()[1:] {
			if p.Header.Get("X-Event-Type") != "a.while-down" {
				t.Errorf("got %s, want a.while-down", p.Header.Get("X-Event-Type"))
			}
		}
	})
}

func TestDelivery_of_a_new_tenants_first_event_within_one_second(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		startSidecar(t, b, app)
		pub := startSidecar(t, b, nil)
		publish(t, pub, eventBody("a.b", "acme")) // the reader is busy with one tenant already
		app.WaitFor(t, 5*time.Second, "the acme event", func(ps []apptest.Push) bool { return len(ps) == 1 })

		for i := range 3 {
			tenant := "fresh" + strconv.Itoa(i)
			start := time.Now()
			publish(t, pub, eventBody("a.b", tenant))
			app.WaitFor(t, 5*time.Second, "the new tenant's event", func(ps []apptest.Push) bool { return len(ps) == 2+i })
			if took := time.Since(start); took > time.Second {
				t.Errorf("tenant %s: first event took %s, want ≤ 1s", tenant, took)
			}
		}
	})
}

func TestDelivery_routes_each_event_to_the_most_specific_subscription(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(
			apptest.Sub{Pattern: "**", Path: "/all"},
			apptest.Sub{Pattern: "review.*", Path: "/approval"},
			apptest.Sub{Pattern: "review.granted", Path: "/granted"},
		))
		startSidecar(t, b, app)
		pub := startSidecar(t, b, nil)
		want := map[string]string{"review.granted": "/granted", "review.rejected": "/approval", "member.joined": "/all", "review.step.done": "/all"}
		for typ := range want {
			publish(t, pub, eventBody(typ, "acme"))
		}
		app.WaitFor(t, 5*time.Second, "4 pushes", func(ps []apptest.Push) bool { return len(ps) == 4 })
		for _, p := range app.Received() {
			typ := p.Header.Get("X-Event-Type")
			if p.Path != want[typ] {
				t.Errorf("%s: delivered to %s, want %s", typ, p.Path, want[typ])
			}
		}
	})
}

func TestDelivery_acks_events_that_match_no_subscription_without_pushing(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "review.*", Path: "/a"}))
		sub := startSidecar(t, b, app)
		pub := startSidecar(t, b, nil)
		publish(t, pub, eventBody("member.joined", "acme"))
		publish(t, pub, eventBody("review.granted", "acme"))
		app.WaitFor(t, 5*time.Second, "the approval", func(ps []apptest.Push) bool { return len(ps) == 1 })
		waitCaughtUp(t, sub, "hyvve-platform", 3*time.Second)
		if got := app.Received()[0].Header.Get("X-Event-Type"); got != "review.granted" {
			t.Errorf("pushed %s, want only review.granted", got)
		}
	})
}

func TestDelivery_waits_for_the_apps_subscriptions_and_loses_nothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "a.*", Path: "/a"}))
		app.SetStarting(true) // GET /hyvve/subscriptions answers 503 for now
		pub := startSidecar(t, b, nil)
		sub := sidecartest.Start(t, sidecartest.Options{NoWait: true, Args: append(b.args(),
			"--tenant", "acme", "--app-url", app.URL())})
		eventually(t, 5*time.Second, "the app to be asked for its subscriptions", func() bool { return app.SubscriptionCalls() > 0 })
		// /readyz names the first thing missing: the broker side (the
		// group exists) comes before the subscriptions. Once only the
		// subscriptions are missing, an event published is the group's.
		eventually(t, 10*time.Second, "/readyz to wait for the subscriptions only", func() bool {
			a := do(t, sub.Client(), "GET", sub.URL()+"/readyz", "", nil)
			return a.Status == 503 && strings.Contains(a.errField("message"), "subscriptions")
		})
		publish(t, pub, eventBody("a.b", "acme"))
		time.Sleep(500 * time.Millisecond)
		if n := len(app.Received()); n != 0 {
			t.Fatalf("got %d pushes before the app declared subscriptions, want 0", n)
		}
		app.SetStarting(false)
		app.WaitFor(t, 5*time.Second, "the event after subscriptions appear", func(ps []apptest.Push) bool { return len(ps) == 1 })
	})
}
