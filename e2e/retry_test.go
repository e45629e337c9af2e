package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
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
	rdb := redistest.Start(t)
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	var calls atomic.Int32
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})
	sc := startSidecar(t, rdb, app, scaled...)
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
	c := rdb.Client(t)
	eventually(t, 3*time.Second, "the entry acked and its retry state gone", func() bool {
		pe, _ := c.XPending(t.Context(), "hyvve:events:{acme}", "hyvve-platform").Result()
		n, _ := c.HLen(t.Context(), "hyvve:retry:{acme}").Result()
		return pe != nil && pe.Count == 0 && n == 0
	})
	if n, _ := c.XLen(t.Context(), "hyvve:dlq:{acme}").Result(); n != 0 {
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
}

func TestRetry_an_app_always_answering_500_gets_4_attempts_then_one_dead_letter(t *testing.T) {
	rdb := redistest.Start(t)
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		fmt.Fprint(w, "database is down")
	})
	sc := startSidecar(t, rdb, app, scaled...)
	c := rdb.Client(t)
	a := publish(t, sc, eventBody("order.paid", "acme", "data", `{"n":1}`))
	eventually(t, 10*time.Second, "a dead letter", func() bool {
		n, _ := c.XLen(t.Context(), "hyvve:dlq:{acme}").Result()
		return n == 1
	})
	time.Sleep(1500 * time.Millisecond) // nothing more may happen
	if got := strings.Join(attemptsOf(app.Received()), ","); got != "1,2,3,4" {
		t.Errorf("attempts: got %s, want 1,2,3,4", got)
	}
	dl, err := c.XRange(t.Context(), "hyvve:dlq:{acme}", "-", "+").Result()
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters: %v %v, want 1", dl, err)
	}
	orig, _ := c.XRange(t.Context(), "hyvve:events:{acme}", "-", "+").Result()
	v := dl[0].Values
	for k, w := range orig[0].Values { // the original fields, unchanged
		if v[k] != w {
			t.Errorf("dead letter field %s: got %v, want %v", k, v[k], w)
		}
	}
	if v["originalStreamId"] != a.Body["streamId"] || v["group"] != "hyvve-platform" || v["attempts"] != "4" {
		t.Errorf("dead letter: got originalStreamId=%v group=%v attempts=%v", v["originalStreamId"], v["group"], v["attempts"])
	}
	if le, _ := v["lastError"].(string); !strings.Contains(le, "500") || !strings.Contains(le, "database is down") {
		t.Errorf("lastError: got %q, want the status and body", le)
	}
	if fa, _ := v["failedAt"].(string); !strings.HasSuffix(fa, "Z") {
		t.Errorf("failedAt: got %q, want RFC 3339 UTC", fa)
	}
	pe, _ := c.XPending(t.Context(), "hyvve:events:{acme}", "hyvve-platform").Result()
	if pe.Count != 0 {
		t.Errorf("pending after dead-lettering: got %d, want 0", pe.Count)
	}
	if n := xlen(t, c, "hyvve:events:{acme}"); n != 1 {
		t.Errorf("stream length: got %d, want 1 (nothing else changed)", n)
	}
	if n, _ := c.HLen(t.Context(), "hyvve:retry:{acme}").Result(); n != 0 {
		t.Errorf("retry state left behind: %d fields", n)
	}
	if !strings.Contains(sc.Logs(), `"msg":"event dead-lettered"`) {
		t.Errorf("no log line for the dead letter")
	}
}

func TestRetry_an_app_answering_400_dead_letters_after_one_attempt_with_the_reason(t *testing.T) {
	rdb := redistest.Start(t)
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(422)
		fmt.Fprint(w, `{"error":"approvalId unknown"}`)
	})
	sc := startSidecar(t, rdb, app, scaled...)
	c := rdb.Client(t)
	publish(t, sc, eventBody("review.granted", "acme"))
	eventually(t, 5*time.Second, "a dead letter", func() bool {
		n, _ := c.XLen(t.Context(), "hyvve:dlq:{acme}").Result()
		return n == 1
	})
	time.Sleep(time.Second)
	if n := len(app.Received()); n != 1 {
		t.Errorf("pushes: got %d, want 1", n)
	}
	dl, _ := c.XRange(t.Context(), "hyvve:dlq:{acme}", "-", "+").Result()
	le, _ := dl[0].Values["lastError"].(string)
	if !strings.Contains(le, "422") || !strings.Contains(le, "approvalId unknown") || dl[0].Values["attempts"] != "1" {
		t.Errorf("dead letter: lastError=%q attempts=%v, want the status, the body and 1 attempt", le, dl[0].Values["attempts"])
	}
}

func TestRetry_honours_a_longer_Retry_After_on_429(t *testing.T) {
	rdb := redistest.Start(t)
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
	sc := startSidecar(t, rdb, app, scaled...)
	publish(t, sc, eventBody("a.b", "acme"))
	app.WaitFor(t, 10*time.Second, "2 attempts", func(ps []apptest.Push) bool { return len(ps) == 2 })
	ps := app.Received()
	if gap := ps[1].At.Sub(ps[0].At); gap < 800*time.Millisecond {
		t.Errorf("gap after 429 with Retry-After: got %s, want ≥ 800ms (not the 200ms step)", gap)
	}
}

func TestCrash_SIGKILL_with_500_deliveries_in_flight_loses_nothing(t *testing.T) {
	rdb := redistest.Start(t)
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
	sc := startSidecar(t, rdb, app, args...)
	pub := startSidecar(t, rdb, nil)
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

	startSidecar(t, rdb, app, args...)
	c := rdb.Client(t)
	eventually(t, 30*time.Second, "every event delivered and nothing pending", func() bool {
		pe, _ := c.XPending(t.Context(), "hyvve:events:{acme}", "hyvve-platform").Result()
		if pe == nil || pe.Count != 0 {
			return false
		}
		got := map[string]bool{}
		for _, p := range app.Received() {
			if p.Status == 200 {
				got[p.EventID] = true
			}
		}
		return len(got) == n
	})
	got := map[string]bool{}
	for _, p := range app.Received() {
		if p.Status == 200 {
			got[p.EventID] = true
		}
	}
	for id := range published {
		if !got[id] {
			t.Errorf("event %s was never delivered", id)
		}
	}
	if dl, _ := c.XLen(t.Context(), "hyvve:dlq:{acme}").Result(); dl != 0 {
		t.Errorf("dead letters: got %d, want 0 (a crash is one failed attempt, not four)", dl)
	}
}

func TestCrash_Redis_restarted_mid_stream_loses_nothing_accepted(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{AppendOnly: true})
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	sc := startSidecar(t, rdb, app, scaled...)

	var mu sync.Mutex
	accepted := map[string]bool{}
	var unavailable, other atomic.Int32
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
					other.Add(1)
					t.Errorf("publish during the outage: got %d %s, want 202 or 503 broker_unavailable", a.Status, a.Raw)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	rdb.Kill(t)
	time.Sleep(3 * time.Second) // longer than the bounded retry of a publish
	rdb.Restart(t)
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	if unavailable.Load() == 0 {
		t.Errorf("no publish got 503 while Redis was down")
	}
	mu.Lock()
	want := len(accepted)
	mu.Unlock()
	t.Logf("%d publishes accepted, %d refused with 503 during the outage", want, unavailable.Load())
	eventually(t, 30*time.Second, "every accepted event delivered", func() bool {
		got := map[string]bool{}
		for _, p := range app.Received() {
			got[p.EventID] = true
		}
		for id := range accepted {
			if !got[id] {
				return false
			}
		}
		return true
	})
}

func TestRetry_an_app_that_drops_the_connection_gets_the_event_again(t *testing.T) {
	rdb := redistest.Start(t)
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
	sc := startSidecar(t, rdb, app, scaled...)
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
	c := rdb.Client(t)
	eventually(t, 3*time.Second, "the entry acked", func() bool {
		pe, _ := c.XPending(t.Context(), "hyvve:events:{acme}", "hyvve-platform").Result()
		return pe != nil && pe.Count == 0
	})
	if !strings.Contains(sc.Logs(), `"msg":"push failed; will retry"`) {
		t.Errorf("the dropped connection was not logged as a failed push")
	}
}
