package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// startReplay posts a replay request to sc with the admin token.
func startReplay(t testing.TB, sc *sidecartest.Sidecar, body string) answer {
	t.Helper()
	return do(t, sc.Client(), "POST", sc.URL()+"/v1/admin/replays", body, map[string]string{"Authorization": "Bearer " + adminToken})
}

// replayBody is a replay request for tenant over [from, to).
func replayBody(tenant string, from, to time.Time, extra ...string) string {
	b := fmt.Sprintf(`{"tenantId":%q,"from":%q,"to":%q`, tenant, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	for i := 0; i+1 < len(extra); i += 2 {
		b += fmt.Sprintf(`,%q:%s`, extra[i], extra[i+1])
	}
	return b + "}"
}

// replayJob reads a job through sc.
func replayJob(t testing.TB, sc *sidecartest.Sidecar, id string) answer {
	t.Helper()
	a := admin(t, sc, "GET", "/v1/admin/replays/"+id, adminToken)
	if a.Status != 200 {
		t.Fatalf("GET replay %s: got %d %s, want 200", id, a.Status, a.Raw)
	}
	return a
}

// waitReplay polls the job through sc until it is no longer running.
func waitReplay(t testing.TB, sc *sidecartest.Sidecar, id string, timeout time.Duration) answer {
	t.Helper()
	var a answer
	eventually(t, timeout, "replay "+id+" to end", func() bool {
		a = replayJob(t, sc, id)
		return a.Body["status"] != "running"
	})
	return a
}

// counters returns scanned, matched and republished of a job answer.
func counters(a answer) [3]float64 {
	n := func(k string) float64 { v, _ := a.Body[k].(float64); return v }
	return [3]float64{n("scanned"), n("matched"), n("republished")}
}

// replays returns the pushes marked X-Replay: true.
func replays(ps []apptest.Push) []apptest.Push {
	var out []apptest.Push
	for _, p := range ps {
		if p.Header.Get("X-Replay") == "true" {
			out = append(out, p)
		}
	}
	return out
}

func TestReplay_of_a_range_with_a_type_filter_redelivers_exactly_the_matching_events(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		sc := startSidecar(t, b, app, "--group", "billing")
		pub := func(typ string) answer { return publish(t, sc, eventBody(typ, "acme")) }
		// bound is a range bound with no event within 20 ms of it either side,
		// so clock granularity (milliseconds in Redis stream ids) cannot blur it.
		bound := func() time.Time {
			time.Sleep(20 * time.Millisecond)
			at := time.Now()
			time.Sleep(20 * time.Millisecond)
			return at
		}

		// Before, inside and after the range.
		for _, typ := range []string{"review.requested", "member.joined"} {
			pub(typ)
		}
		from := bound()
		inTypes := []string{"review.requested", "member.joined", "review.granted", "review.requested", "crm.deal.won", "review.expired", "member.joined"}
		var inRange []answer
		for _, typ := range inTypes {
			inRange = append(inRange, pub(typ))
		}
		to := bound()
		for _, typ := range []string{"review.requested", "review.granted"} {
			pub(typ)
		}
		app.WaitFor(t, 5*time.Second, "the 11 live events answered", func(ps []apptest.Push) bool {
			return len(ps) == 11 && !ps[10].Pending
		})

		a := startReplay(t, sc, replayBody("acme", from, to, "types", `["review.*"]`))
		if a.Status != 202 || a.Body["status"] != "running" || a.Body["id"] == "" {
			t.Fatalf("start: got %d %s, want 202 with an id and status running", a.Status, a.Raw)
		}
		id := a.Body["id"].(string)
		if loc := a.Header.Get("Location"); loc != "/v1/admin/replays/"+id {
			t.Errorf("Location: got %q, want /v1/admin/replays/%s", loc, id)
		}

		want := map[string]string{} // event id → original stream id
		for i, typ := range inTypes {
			if strings.HasPrefix(typ, "review.") {
				want[inRange[i].Body["id"].(string)] = inRange[i].Body["streamId"].(string)
			}
		}
		done := waitReplay(t, sc, id, 10*time.Second)
		if done.Body["status"] != "done" || counters(done) != [3]float64{7, 4, 4} || done.Body["error"] != "" {
			t.Errorf("job: got %s, want done with scanned 7, matched 4, republished 4", done.Raw)
		}
		if done.Body["finishedAt"] == nil || done.Body["owner"] == "" || done.Body["tenantId"] != "acme" {
			t.Errorf("job: got %s, want finishedAt, owner and tenantId acme", done.Raw)
		}

		app.WaitFor(t, 5*time.Second, "4 replayed pushes answered", func(ps []apptest.Push) bool {
			return len(ps) >= 15 && !ps[len(ps)-1].Pending
		})
		waitCaughtUp(t, sc, "billing", 5*time.Second)
		ps := app.Received()
		if len(ps) != 15 {
			t.Fatalf("pushes: got %d, want 11 live and 4 replayed:\n%s", len(ps), apptest.Summary(ps))
		}
		for _, p := range ps[:11] {
			if p.Header.Get("X-Replay") != "" {
				t.Errorf("live push of %s carries X-Replay %q", p.EventID, p.Header.Get("X-Replay"))
			}
		}
		got := map[string]string{}
		for _, p := range ps[11:] {
			if p.Header.Get("X-Replay") != "true" {
				t.Errorf("replayed push of %s: X-Replay %q, want true", p.EventID, p.Header.Get("X-Replay"))
			}
			var body struct {
				ID, Type, ReplayOf, ReplayID, TargetGroup string
				Replay                                    bool
			}
			if err := json.Unmarshal(p.Body, &body); err != nil {
				t.Fatalf("push body %s: %v", p.Body, err)
			}
			if body.ID != p.EventID || !body.Replay || body.ReplayID != id || body.TargetGroup != "" {
				t.Errorf("replayed body: got %s, want id %s, replay true, replayId %s, no targetGroup", p.Body, p.EventID, id)
			}
			got[body.ID] = body.ReplayOf
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replayed event id → replayOf: got %v, want %v (the review.* events of the range, original ids)", got, want)
		}
		for _, k := range []string{`"msg":"replay started"`, `"msg":"replay finished"`} {
			if !strings.Contains(sc.Logs(), k) || !strings.Contains(sc.Logs(), `"replay_id":"`+id+`"`) {
				t.Errorf("logs lack %s with the job id", k)
			}
		}
	})
}

func TestReplay_to_a_target_group_reaches_only_that_group(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		billing := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		audit := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		bsc := startSidecar(t, b, billing, "--group", "billing")
		asc := startSidecar(t, b, audit, "--group", "audit")
		start := time.Now().Add(-time.Second)
		var published []string
		for _, typ := range []string{"review.requested", "review.granted", "member.joined"} {
			published = append(published, publish(t, bsc, eventBody(typ, "acme")).Body["id"].(string))
		}
		for _, app := range []*apptest.App{billing, audit} {
			app.WaitFor(t, 5*time.Second, "the 3 live events", func(ps []apptest.Push) bool { return len(ps) == 3 })
		}

		// Any sidecar can run it: the audit one replays for billing.
		a := startReplay(t, asc, replayBody("acme", start, time.Now().Add(time.Hour), "group", `"billing"`))
		if a.Status != 202 {
			t.Fatalf("start: got %d %s, want 202", a.Status, a.Raw)
		}
		id := a.Body["id"].(string)
		if done := waitReplay(t, bsc, id, 10*time.Second); done.Body["status"] != "done" || counters(done) != [3]float64{3, 3, 3} ||
			done.Body["group"] != "billing" {
			t.Fatalf("job: got %s, want done for group billing with 3 scanned, matched, republished", done.Raw)
		}
		billing.WaitFor(t, 5*time.Second, "3 replays", func(ps []apptest.Push) bool { return len(replays(ps)) == 3 })
		for _, g := range []string{"billing", "audit"} {
			waitCaughtUp(t, asc, g, 5*time.Second)
		}
		rep := replays(billing.Received())
		// Pushes run concurrently (--app-concurrency): compare as sets.
		if got := ids(rep); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(published))) {
			t.Errorf("billing's replays: got %v, want %v", got, published)
		}
		for _, p := range rep {
			if !strings.Contains(string(p.Body), `"targetGroup":"billing"`) {
				t.Errorf("replayed body %s lacks targetGroup billing", p.Body)
			}
		}
		if got := audit.Received(); len(got) != 3 || len(replays(got)) != 0 {
			t.Errorf("audit got %d pushes (%d replays), want its 3 live events only:\n%s", len(got), len(replays(got)), apptest.Summary(got))
		}
	})
}

// seedEvents publishes n events of acme through sc's batch endpoint, 1,000
// per request on 2 connections, each with a 200-byte pad: through the same
// path as any publish, so that it works on every store.
func seedEvents(t testing.TB, sc *sidecartest.Sidecar, n int) {
	t.Helper()
	const per = 1000
	pad := strings.Repeat("x", 200)
	batches := make(chan int)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			var b strings.Builder
			for first := range batches {
				b.Reset()
				b.WriteString(`{"events":[`)
				for j := first; j < min(first+per, n); j++ {
					if j > first {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"type":"order.paid","tenantId":"acme","id":"ev-%07d","source":"shop","userId":"u-1","data":{"orderId":"o-%d","pad":%q}}`, j, j, pad)
				}
				b.WriteString("]}")
				a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events/batch", b.String(), nil)
				if a.Status != 202 || strings.Contains(a.Raw, `"error"`) {
					t.Errorf("seed batch at %d: got %d %.300s", first, a.Status, a.Raw)
				}
			}
		})
	}
	for first := 0; first < n; first += per {
		batches <- first
	}
	close(batches)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// 100,000 events take about 10 s per store on Redis and 17 s on JetStream
// (seeding through the API included): under the budget, so both run.
func TestReplay_of_100000_events_keeps_the_sidecars_memory_flat_and_finishes(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		const n = 100_000
		seeder := startSidecar(t, b, nil, "--log-level", "info")
		start := time.Now()
		seedEvents(t, seeder, n)
		t.Logf("seeded %d events in %v", n, time.Since(start).Round(time.Millisecond))
		seeder.Stop(t)
		sc := startSidecar(t, b, nil, "--log-level", "info")
		admin(t, sc, "GET", "/v1/admin/replays", adminToken) // warm up the API before measuring
		time.Sleep(200 * time.Millisecond)
		base := sc.RSS(t)

		a := startReplay(t, sc, replayBody("acme", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().Add(time.Hour)))
		if a.Status != 202 {
			t.Fatalf("start: got %d %s, want 202", a.Status, a.Raw)
		}
		id := a.Body["id"].(string)
		peak, polls := base, 0
		var done answer
		start = time.Now()
		eventually(t, 2*time.Minute, "the replay of 100,000 events to end", func() bool {
			polls++
			peak = max(peak, sc.RSS(t))
			done = replayJob(t, sc, id)
			return done.Body["status"] != "running"
		})
		after := sc.RSS(t)
		t.Logf("replay took %v; RSS %d KiB before, peak %d KiB during (%d polls), %d KiB after; job %s",
			time.Since(start).Round(time.Millisecond), base>>10, peak>>10, polls, after>>10, done.Raw)
		if done.Body["status"] != "done" || counters(done) != [3]float64{n, n, n} {
			t.Fatalf("job: got %s, want done with %d scanned, matched and republished", done.Raw, n)
		}
		if got := streamLength(t, sc, "acme"); got != 2*n {
			t.Errorf("stream length: got %d, want %d (each event once more)", got, 2*n)
		}
		if grew := peak - base; grew > 20<<20 {
			t.Errorf("sidecar RSS grew by %d MiB during the replay; want < 20 MiB (it must page, not load the range)", grew>>20)
		}
	})
}

func TestReplay_rejects_bad_requests_naming_the_field(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		// A sidecar of group billing registers the group.
		billing := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		startSidecar(t, b, billing, "--group", "billing")
		sc := startSidecar(t, b, nil)
		publish(t, sc, eventBody("order.paid", "acme")) // registers acme
		from, to := time.Now().Add(-time.Hour), time.Now()
		tests := []struct {
			name, body  string
			code, field string
		}{
			{"from after to", replayBody("acme", to, from), "invalid_field", "from"},
			{"unparsable from", `{"tenantId":"acme","from":"last tuesday","to":"2026-11-26T11:00:00Z"}`, "invalid_field", "from"},
			{"unparsable to", `{"tenantId":"acme","from":"2026-11-26T10:00:00Z","to":"2026-11-26 11:00"}`, "invalid_field", "to"},
			{"missing from", `{"tenantId":"acme","to":"2026-11-26T11:00:00Z"}`, "missing_field", "from"},
			{"missing to", `{"tenantId":"acme","from":"2026-11-26T10:00:00Z"}`, "missing_field", "to"},
			{"missing tenant", `{"from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}`, "missing_field", "tenantId"},
			{"unknown tenant", replayBody("globex", from, to), "invalid_field", "tenantId"},
			{"bad tenant id", replayBody("ac}me", from, to), "invalid_field", "tenantId"},
			{"bad pattern", replayBody("acme", from, to, "types", `["review.*","Approval.Granted"]`), "invalid_field", "types"},
			{"types not a list", replayBody("acme", from, to, "types", `"review.*"`), "invalid_field", "types"},
			{"bad group name", replayBody("acme", from, to, "group", `"bill ing"`), "invalid_field", "group"},
			{"unknown group", replayBody("acme", from, to, "group", `"biling"`), "invalid_field", "group"},
			{"unknown field", replayBody("acme", from, to, "type", `"review.*"`), "unknown_field", "type"},
			{"not JSON", `{"tenantId":"acme",`, "invalid_json", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := startReplay(t, sc, tt.body)
				if a.Status != 400 || a.errField("code") != tt.code || a.errField("field") != tt.field {
					t.Errorf("got %d %s, want 400 %s naming %q", a.Status, a.Raw, tt.code, tt.field)
				}
			})
		}
		if a := admin(t, sc, "GET", "/v1/admin/replays", adminToken); a.Status != 200 || a.Raw != `{"items":[]}` {
			t.Errorf("jobs after refused requests: got %d %s, want none", a.Status, a.Raw)
		}
		if a := admin(t, sc, "GET", "/v1/admin/replays/0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d", adminToken); a.Status != 404 || a.errField("code") != "not_found" {
			t.Errorf("unknown id: got %d %s, want 404 not_found", a.Status, a.Raw)
		}
		if a := admin(t, sc, "GET", "/v1/admin/replays/not-a-job", adminToken); a.Status != 400 || a.errField("field") != "id" {
			t.Errorf("malformed id: got %d %s, want 400 naming id", a.Status, a.Raw)
		}
		if a := admin(t, sc, "GET", "/v1/admin/replays?limit=1000", adminToken); a.Status != 400 || a.errField("field") != "limit" {
			t.Errorf("list limit 1000: got %d %s, want 400 naming limit", a.Status, a.Raw)
		}
		// Two good requests (a sidecar runs at most two jobs at once).
		for _, body := range []string{replayBody("acme", from, to, "group", `"billing"`), replayBody("*", from, to)} {
			if a := startReplay(t, sc, body); a.Status != 202 {
				t.Errorf("a good request %s: got %d %s, want 202", body, a.Status, a.Raw)
			}
		}
		if a := do(t, sc.Client(), "POST", sc.URL()+"/v1/admin/replays", replayBody("acme", from, to), nil); a.Status != 401 {
			t.Errorf("without the admin token: got %d, want 401", a.Status)
		}
	})
}

// A job's end is recorded by the sidecar running it, or, when that sidecar
// was killed, by any reader once the job's heartbeat is 15 s old: that wait
// makes this test ~20 s per store. 50,000 events give each job more than a
// second of work on both stores while keeping the seeding short.
func TestReplay_jobs_of_a_stopped_or_killed_sidecar_end_failed_never_running(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		const n = 50_000
		reader := startSidecar(t, b, nil)
		seedEvents(t, reader, n)
		whole := replayBody("acme", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().Add(time.Hour))

		// At most 2 jobs at once per sidecar; SIGTERM fails the running ones.
		first := startSidecar(t, b, nil)
		var stopped []string
		for i := range 2 {
			a := startReplay(t, first, whole)
			if a.Status != 202 {
				t.Fatalf("job %d: got %d %s, want 202", i+1, a.Status, a.Raw)
			}
			stopped = append(stopped, a.Body["id"].(string))
		}
		if a := startReplay(t, first, whole); a.Status != 429 || a.errField("code") != "too_many_replays" {
			t.Errorf("a third job: got %d %s, want 429 too_many_replays", a.Status, a.Raw)
		}
		if code := first.Stop(t); code != 0 {
			t.Fatalf("exit code after SIGTERM with replays running: got %d, want 0", code)
		}
		for _, id := range stopped {
			a := replayJob(t, reader, id)
			if a.Body["status"] != "failed" || a.Body["error"] != "sidecar shutting down" || a.Body["finishedAt"] == nil {
				t.Errorf("job of the stopped sidecar: got %s, want failed with \"sidecar shutting down\"", a.Raw)
			}
		}

		// SIGKILL: nothing records the end; a reader declares it failed once the
		// heartbeat is 15 s old.
		killed := startSidecar(t, b, nil)
		a := startReplay(t, killed, whole)
		if a.Status != 202 {
			t.Fatalf("job on the sidecar to kill: got %d %s, want 202", a.Status, a.Raw)
		}
		id := a.Body["id"].(string)
		killed.Kill(t)
		killedAt := time.Now()
		if a := replayJob(t, reader, id); a.Body["status"] != "running" {
			t.Fatalf("right after the kill: got %s, want running (its heartbeat is fresh)", a.Raw)
		}
		var end answer
		eventually(t, 25*time.Second, "the killed sidecar's job to show failed", func() bool {
			end = replayJob(t, reader, id)
			return end.Body["status"] != "running"
		})
		if end.Body["status"] != "failed" || end.Body["error"] != "the sidecar running it stopped" {
			t.Errorf("job of the killed sidecar: got %s, want failed with \"the sidecar running it stopped\"", end.Raw)
		}
		if waited := time.Since(killedAt); waited < 12*time.Second {
			t.Errorf("declared failed %v after the kill; want after its heartbeat was 15 s old", waited)
		}
		if c := counters(end); c[0] >= n {
			t.Errorf("the killed job scanned %v entries, want fewer than the %d there are", c[0], n)
		}
		list := admin(t, reader, "GET", "/v1/admin/replays", adminToken)
		var items []string
		for _, it := range list.Body["items"].([]any) {
			m := it.(map[string]any)
			items = append(items, fmt.Sprint(m["id"], " ", m["status"]))
		}
		want := []string{id + " failed", stopped[1] + " failed", stopped[0] + " failed"}
		if !slices.Equal(items, want) {
			t.Errorf("list: got %v, want %v (newest first)", items, want)
		}
	})
}
