package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
)

// Scaled retry schedule for tests: 1 try + 3 retries.
var scaled = []string{"--retry-schedule", "200ms,400ms,800ms", "--app-timeout", "150ms"}

var steps = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}

func attemptsOf(ps []apptest.Push) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Header.Get("X-Delivery-Attempt")
	}
	return out
}

func TestRetry_an_app_failing_twice_then_answering_200_gets_attempts_1_2_3_on_schedule(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		var calls atomic.Int32
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				w.WriteHeader(503)
				return
			}
			w.WriteHeader(200)
		})
		sc := startSidecar(t, b, app, scaled...)
		publish(t, sc, eventBody("order.paid", "acme"))
		app.WaitFor(t, 10*time.Second, "3 attempts", func(ps []apptest.Push) bool { return len(ps) == 3 && !ps[2].Pending })
		ps := app.Received()
		if got := strings.Join(attemptsOf(ps), ","); got != "1,2,3" {
			t.Errorf("X-Delivery-Attempt: got %s, want 1,2,3", got)
		}
		for i := 1; i < len(ps); i++ {
			if gap := ps[i].At.Sub(ps[i-1].At); gap < steps[i-1] {
				t.Errorf("gap before attempt %d: got %s, want ≥ %s", i+1, gap, steps[i-1])
			}
			if ps[i].EventID != ps[0].EventID {
				t.Errorf("attempt %d carries event %s, want %s", i+1, ps[i].EventID, ps[0].EventID)
			}
		}
		waitCaughtUp(t, sc, "hyvve-platform", 3*time.Second)
		if rb, ok := b.(*redisBroker); ok {
			eventually(t, 3*time.Second, "the retry state to be gone", func() bool {
				n, err := rb.client(t).HLen(t.Context(), "hyvve:retry:{acme}").Result()
				return err == nil && n == 0
			})
		}
		if n := dlqLength(t, sc, "acme"); n != 0 {
			t.Errorf("dead letters: got %d, want 0", n)
		}
		time.Sleep(time.Second)
		if n := len(app.Received()); n != 3 {
			t.Errorf("pushes after the 200: got %d, want 3", n)
		}
		logs := sc.Logs()
		for _, k := range []string{`"msg":"push failed; will retry"`, `"next_attempt_at"`, `"event_id"`, `"attempt":2`, `"status":503`} {
			if !strings.Contains(logs, k) {
				t.Errorf("failure logs lack %s", k)
			}
		}
	})
}

func TestRetry_an_app_always_answering_500_gets_4_attempts_then_one_dead_letter(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			fmt.Fprint(w, "database is down\r\nretry later")
		})
		sc := startSidecar(t, b, app, scaled...)
		tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("order.paid", "acme", "data", `{"n":1}`),
			map[string]string{"X-Correlation-Id": "corr-dl", "X-User-Id": "u-9", "traceparent": tp})
		if a.Status != 202 {
			t.Fatalf("publish: got %d %s", a.Status, a.Raw)
		}
		eventually(t, 10*time.Second, "a dead letter", func() bool { return dlqLength(t, sc, "acme") == 1 })
		time.Sleep(1500 * time.Millisecond) // nothing more may happen
		if got := strings.Join(attemptsOf(app.Received()), ","); got != "1,2,3,4" {
			t.Errorf("attempts: got %s, want 1,2,3,4", got)
		}
		dls := deadLetters(t, sc, "?tenantId=acme")
		if len(dls) != 1 {
			t.Fatalf("dead letters: got %d, want 1", len(dls))
		}
		dl := dls[0]
		pushed := app.Received()[0]
		ev, _ := dl["event"].(map[string]any)
		var orig map[string]any
		if err := json.Unmarshal(pushed.Body, &orig); err != nil {
			t.Fatal(err)
		}
		for k, w := range orig { // the event as it was published, unchanged
			if fmt.Sprint(ev[k]) != fmt.Sprint(w) {
				t.Errorf("dead letter's event %s: got %v, want %v", k, ev[k], w)
			}
		}
		if len(ev) != len(orig) {
			t.Errorf("dead letter's event: got %v, want %v", ev, orig)
		}
		if dl["tenantId"] != "acme" || dl["originalStreamId"] != a.Body["streamId"] || dl["group"] != "hyvve-platform" || dl["attempts"] != 4.0 {
			t.Errorf("dead letter: got tenant=%v originalStreamId=%v group=%v attempts=%v, want acme %v hyvve-platform 4",
				dl["tenantId"], dl["originalStreamId"], dl["group"], dl["attempts"], a.Body["streamId"])
		}
		if le, _ := dl["lastError"].(string); !strings.Contains(le, "500") || !strings.Contains(le, "database is down") {
			t.Errorf("lastError: got %q, want the status and body", le)
		}
		if fa, err := time.Parse(time.RFC3339, str(dl, "failedAt")); err != nil || !strings.HasSuffix(str(dl, "failedAt"), "Z") ||
			time.Since(fa) > 10*time.Second || time.Since(fa) < 0 {
			t.Errorf("failedAt: got %q (%v), want RFC 3339 UTC of the last attempt", dl["failedAt"], err)
		}
		// The dead letter can be read by its id.
		got := admin(t, sc, "GET", fmt.Sprintf("/v1/admin/dlq/acme/%v", dl["id"]), adminToken)
		if got.Status != 200 || got.Body["originalStreamId"] != a.Body["streamId"] {
			t.Errorf("GET the dead letter: got %d %s, want it", got.Status, got.Raw)
		}
		waitCaughtUp(t, sc, "hyvve-platform", 3*time.Second)
		if n := streamLength(t, sc, "acme"); n != 1 {
			t.Errorf("stream length: got %d, want 1 (nothing else changed)", n)
		}
		if rb, ok := b.(*redisBroker); ok {
			if n, _ := rb.client(t).HLen(t.Context(), "hyvve:retry:{acme}").Result(); n != 0 {
				t.Errorf("retry state left behind: %d fields", n)
			}
		}
		if !strings.Contains(sc.Logs(), `"msg":"event dead-lettered"`) {
			t.Errorf("no log line for the dead letter")
		}
	})
}

func TestRetry_an_app_answering_400_dead_letters_after_one_attempt_with_the_reason(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(422)
			fmt.Fprint(w, `{"error":"approvalId unknown"}`)
		})
		sc := startSidecar(t, b, app, scaled...)
		publish(t, sc, eventBody("review.granted", "acme"))
		eventually(t, 5*time.Second, "a dead letter", func() bool { return dlqLength(t, sc, "acme") == 1 })
		time.Sleep(time.Second)
		if ps := app.Received(); len(ps) != 1 {
			t.Errorf("pushes: got %d, want 1:\n%s", len(ps), apptest.Summary(ps))
		}
		dl := deadLetters(t, sc, "?tenantId=acme")[0]
		le, _ := dl["lastError"].(string)
		if !strings.Contains(le, "422") || !strings.Contains(le, "approvalId unknown") || dl["attempts"] != 1.0 {
			t.Errorf("dead letter: lastError=%q attempts=%v, want the status, the body and 1 attempt", le, dl["attempts"])
		}
	})
}

func TestRetry_honours_a_longer_Retry_After_on_429(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		var calls atomic.Int32
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				w.Header().Set("Retry-After", "1") // 1 s, capped by the sidecar at the longest step (800 ms)
				w.WriteHeader(429)
				return
			}
			w.WriteHeader(200)
		})
		sc := startSidecar(t, b, app, scaled...)
		publish(t, sc, eventBody("a.b", "acme"))
		app.WaitFor(t, 10*time.Second, "2 attempts", func(ps []apptest.Push) bool { return len(ps) == 2 })
		ps := app.Received()
		if gap := ps[1].At.Sub(ps[0].At); gap < 800*time.Millisecond {
			t.Errorf("gap after 429 with Retry-After: got %s, want ≥ 800ms (not the 200ms step)", gap)
		}
	})
}

func TestCrash_SIGKILL_with_500_deliveries_in_flight_loses_nothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		var slow atomic.Bool
		slow.Store(true)
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() {
				select { // slower than the push timeout: every push in flight when the sidecar dies
				case <-r.Context().Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
			w.WriteHeader(200)
		})
		args := []string{"--retry-schedule", "1s,1s,1s", "--app-timeout", "900ms", "--app-concurrency", "500"}
		sc := startSidecar(t, b, app, args...)
		pub := startSidecar(t, b, nil)
		const n = 500
		published := map[string]bool{}
		var body strings.Builder
		for batch := 0; batch < n/250; batch++ {
			body.Reset()
			body.WriteString(`{"events":[`)
			for i := range 250 {
				if i > 0 {
					body.WriteByte(',')
				}
				body.WriteString(eventBody("order.created", "acme", "data", `{"i":`+strconv.Itoa(batch*250+i)+`}`))
			}
			body.WriteString("]}")
			a := do(t, pub.Client(), "POST", pub.URL()+"/v1/events/batch", body.String(), nil)
			if a.Status != 202 {
				t.Fatalf("batch: got %d %.300s", a.Status, a.Raw)
			}
			for _, r := range a.Body["results"].([]any) {
				published[r.(map[string]any)["id"].(string)] = true
			}
		}
		app.WaitFor(t, 10*time.Second, "500 pushes in flight", func(ps []apptest.Push) bool { return len(ps) >= n })
		sc.Kill(t) // SIGKILL mid-delivery
		slow.Store(false)

		startSidecar(t, b, app, args...)
		eventually(t, 30*time.Second, "every event delivered and nothing pending", func() bool {
			return len(answered(app.Received())) == n && caughtUp(t, pub, "hyvve-platform")
		})
		got := answered(app.Received())
		for id := range published {
			if !got[id] {
				t.Errorf("event %s was never delivered", id)
			}
		}
		if dl := dlqLength(t, pub, "acme"); dl != 0 {
			t.Errorf("dead letters: got %d, want 0 (a crash is one failed attempt, not four)", dl)
		}
	})
}

func TestCrash_broker_restarted_mid_stream_loses_nothing_accepted(t *testing.T) {
	forEachDurableStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		sc := startSidecar(t, b, app, scaled...)

		var mu sync.Mutex
		accepted := map[string]bool{}
		var unavailable atomic.Int32
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("order.created", "acme", "data", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)), nil)
					switch {
					case a.Status == 202:
						mu.Lock()
						accepted[a.Body["id"].(string)] = true
						mu.Unlock()
					case a.Status == 503 && a.errField("code") == "broker_unavailable":
						unavailable.Add(1)
						time.Sleep(50 * time.Millisecond)
					default:
						t.Errorf("publish during the outage: got %d %s, want 202 or 503 broker_unavailable", a.Status, a.Raw)
						time.Sleep(50 * time.Millisecond)
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		b.kill(t)
		time.Sleep(3 * time.Second) // longer than the bounded retry of a publish
		b.restart(t)
		time.Sleep(time.Second)
		stop()
		wg.Wait()
		if unavailable.Load() == 0 {
			t.Errorf("no publish got 503 while the broker was down")
		}
		mu.Lock()
		want := len(accepted)
		mu.Unlock()
		t.Logf("%d publishes accepted, %d refused with 503 during the outage", want, unavailable.Load())
		eventually(t, 30*time.Second, "every accepted event delivered", func() bool {
			got := countIDs(app.Received())
			for id := range accepted {
				if got[id] == 0 {
					return false
				}
			}
			return true
		})
	})
}

func TestRetry_an_app_that_drops_the_connection_gets_the_event_again(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		var calls atomic.Int32
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			// The app crashes mid-request twice: no HTTP answer at all. (The push
			// client resends once at once when a reused keep-alive connection
			// drops, so two drops make sure one attempt fails.)
			if calls.Add(1) <= 2 {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				conn.Close()
				return
			}
			w.WriteHeader(200)
		})
		sc := startSidecar(t, b, app, scaled...)
		a := publish(t, sc, eventBody("order.paid", "acme"))
		app.WaitFor(t, 10*time.Second, "a push answered 200", func(ps []apptest.Push) bool {
			return len(ps) == 3 && ps[2].Status == 200
		})
		ps := app.Received()
		for _, p := range ps {
			if p.EventID != a.Body["id"] {
				t.Errorf("push carries %s, want %s", p.EventID, a.Body["id"])
			}
		}
		if last, _ := strconv.Atoi(ps[2].Header.Get("X-Delivery-Attempt")); last < 2 {
			t.Errorf("attempts: got %v, want the answered push to be a retry (attempt ≥ 2)", attemptsOf(ps))
		}
		waitCaughtUp(t, sc, "hyvve-platform", 3*time.Second)
		if !strings.Contains(sc.Logs(), `"msg":"push failed; will retry"`) {
			t.Errorf("the dropped connection was not logged as a failed push")
		}
	})
}
