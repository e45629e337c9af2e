package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// seedDeadLetter writes a dead letter of group the way the sidecar does (the
// event's stream fields, then originalStreamId, group, attempts, lastError,
// failedAt), registers the tenant, and returns the dead letter's id.
func seedDeadLetter(t testing.TB, c *redis.Client, tenant, eventID, typ, group string) string {
	t.Helper()
	ctx := context.Background()
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:dlq:{" + tenant + "}", Values: []any{
		"id", eventID, "type", typ, "source", "crm", "timestamp", "2026-11-26T10:00:00.123Z",
		"correlationId", "corr-" + eventID, "tenantId", tenant, "userId", "u-42", "version", "1.0",
		"data", `{"eventId":"` + eventID + `"}`,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"originalStreamId", "1764000000000-0", "group", group, "attempts", "4",
		"lastError", "app answered 503", "failedAt", "2026-11-26T10:30:00.000Z",
	}}).Result()
	if err != nil {
		t.Fatalf("seed dead letter: %v", err)
	}
	if err := c.SAdd(ctx, "hyvve:tenants", tenant).Err(); err != nil {
		t.Fatalf("register tenant: %v", err)
	}
	return id
}

// itemEvents returns "<tenantId>/<event id>" of every item of a dead-letter
// list answer: what a user recognises, whatever the store's entry ids.
func itemEvents(t testing.TB, a answer) []string {
	t.Helper()
	items, ok := a.Body["items"].([]any)
	if !ok {
		t.Fatalf("list answer has no items array: %s", a.Raw)
	}
	out := make([]string, len(items))
	for i, it := range items {
		m := it.(map[string]any)
		ev, _ := m["event"].(map[string]any)
		out[i] = fmt.Sprintf("%v/%v", m["tenantId"], ev["id"])
	}
	return out
}

// absentEntryIDs are well-formed dead-letter ids that no test writes.
var absentEntryIDs = map[string]string{"redis": "1-0", "jetstream": "999999"}

// rejectingApp answers 422 "order 42 does not exist" to every push while
// reject is true (then 200): each event it rejects becomes a dead letter at once.
func rejectingApp(t testing.TB, reject *atomic.Bool) *apptest.App {
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if reject.Load() {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, "order 42 does not exist")
		}
	})
	return app
}

// The admin API's authentication does not involve the store: one store is
// enough.
func TestAdmin_API_needs_the_admin_token_not_the_API_token(t *testing.T) {
	rb := startRedis(t)
	sc := startSidecar(t, rb, nil, "--admin-token", adminToken, "--api-token", "api-5d1e-secret")
	endpoints := []struct{ method, path string }{
		{"GET", "/v1/admin/dlq"},
		{"GET", "/v1/admin/dlq/acme/1-0"},
		{"POST", "/v1/admin/dlq/acme/1-0/retry"},
		{"DELETE", "/v1/admin/dlq/acme/1-0"},
		{"GET", "/v1/admin/nothing"},
	}
	for _, e := range endpoints {
		for _, token := range []string{"", "wrong", "api-5d1e-secret", adminToken + "x"} {
			t.Run(fmt.Sprintf("%s %s with %q", e.method, e.path, token), func(t *testing.T) {
				a := admin(t, sc, e.method, e.path, token)
				if a.Status != 401 || a.errField("code") != "unauthorized" {
					t.Errorf("got %d %s, want 401 unauthorized", a.Status, a.Raw)
				}
			})
		}
		t.Run(e.method+" "+e.path+" with the admin token", func(t *testing.T) {
			a := admin(t, sc, e.method, e.path, adminToken)
			if a.Status == 401 {
				t.Errorf("got 401 %s, want the admin token accepted", a.Raw)
			}
		})
	}
	if a := admin(t, sc, "GET", "/v1/admin/dlq", adminToken); a.Status != 200 {
		t.Errorf("list with the admin token: got %d %s, want 200", a.Status, a.Raw)
	}
	if a := admin(t, sc, "GET", "/v1/admin/dlq/acme/1-0", adminToken); a.Status != 404 || a.errField("code") != "not_found" {
		t.Errorf("absent dead letter: got %d %s, want 404 not_found", a.Status, a.Raw)
	}
	// The admin token is not an API token.
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("a.b", "acme"), map[string]string{"Authorization": "Bearer " + adminToken})
	if a.Status != 401 {
		t.Errorf("publish with the admin token: got %d, want 401", a.Status)
	}
	if strings.Contains(sc.Logs(), adminToken) {
		t.Errorf("the admin token appears in the logs")
	}

	t.Run("from HYVVE_ADMIN_TOKEN", func(t *testing.T) {
		env := sidecartest.Start(t, sidecartest.Options{
			Args: append(rb.args(), "--tenant", "acme"),
			Env:  []string{"HYVVE_ADMIN_TOKEN=env-0b2a-secret"},
		})
		if a := admin(t, env, "GET", "/v1/admin/dlq", "env-0b2a-secret"); a.Status != 200 {
			t.Errorf("with the env token: got %d %s, want 200", a.Status, a.Raw)
		}
		if a := admin(t, env, "GET", "/v1/admin/dlq", adminToken); a.Status != 401 {
			t.Errorf("with another token: got %d, want 401", a.Status)
		}
		if logs := env.Logs(); strings.Contains(logs, "env-0b2a-secret") || strings.Contains(logs, "/admin/?token=") {
			t.Errorf("a configured admin token is logged:\n%s", logs)
		}
	})
}

// Without --admin-token the sidecar makes one; the store plays no part, so
// one store is enough.
func TestAdmin_generated_token_is_logged_once_with_the_dashboard_URL_and_works(t *testing.T) {
	rb := startRedis(t)
	start := func() *sidecartest.Sidecar {
		return sidecartest.Start(t, sidecartest.Options{Args: append(rb.args(), "--tenant", "acme")})
	}
	sc := start()
	m := regexp.MustCompile(`"dashboard_url":"([^"]*/admin/\?token=([^"]*))"`).FindAllStringSubmatch(sc.Logs(), -1)
	if len(m) != 1 {
		t.Fatalf("dashboard URL lines: got %d, want 1; logs:\n%s", len(m), sc.Logs())
	}
	dashURL, token := m[0][1], m[0][2]
	if want := sc.URL() + "/admin/?token=" + token; dashURL != want {
		t.Errorf("dashboard URL: got %s, want %s", dashURL, want)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(token) {
		t.Errorf("token %q: want 32 random bytes in base64url (43 characters)", token)
	}
	if a := admin(t, sc, "GET", "/v1/admin/dlq", token); a.Status != 200 {
		t.Errorf("list with the generated token: got %d %s, want 200", a.Status, a.Raw)
	}
	if a := admin(t, sc, "GET", "/v1/admin/dlq", ""); a.Status != 401 {
		t.Errorf("list without a token: got %d, want 401", a.Status)
	}
	if n := strings.Count(sc.Logs(), token); n != 1 {
		t.Errorf("the token appears %d times in the logs, want once", n)
	}
	// Every start has its own token.
	other := start()
	if strings.Contains(other.Logs(), token) {
		t.Errorf("a second sidecar logged the first one's token")
	}
	if a := admin(t, other, "GET", "/v1/admin/dlq", token); a.Status != 401 {
		t.Errorf("the first sidecar's token on the second: got %d, want 401", a.Status)
	}
}

func TestAdmin_DLQ_lists_filters_pages_gets_and_deletes(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		var reject atomic.Bool
		reject.Store(true)
		app := rejectingApp(t, &reject)
		sc := startSidecar(t, b, app, "--group", "billing")

		// One event at a time, each dead-lettered before the next, so the
		// order is known. beta's come first: then "newest first" over all
		// tenants is the same whether a store lists by tenant or by time.
		published := map[string]answer{} // event id → publish answer
		deadLetter := func(tenant, typ, id string) string {
			a := publish(t, sc, eventBody(typ, tenant, "id", `"`+id+`"`, "data", `{"eventId":"`+id+`"}`))
			published[id] = a
			want := int64(len(published))
			eventually(t, 5*time.Second, "dead letter of "+id, func() bool { return allStats(t, sc).DLQTotal == want })
			return tenant + "/" + id
		}
		var acme, acmeApproval, beta []string // newest first
		for i := range 2 {
			beta = append([]string{deadLetter("beta", "crm.deal.won", fmt.Sprintf("ev-beta-%d", i))}, beta...)
		}
		for i := range 5 {
			typ := "review.requested"
			if i%2 == 1 {
				typ = "member.joined"
			}
			id := deadLetter("acme", typ, fmt.Sprintf("ev-acme-%d", i))
			acme = append([]string{id}, acme...)
			if typ == "review.requested" {
				acmeApproval = append([]string{id}, acmeApproval...)
			}
		}

		list := func(t *testing.T, query string) answer {
			t.Helper()
			a := admin(t, sc, "GET", "/v1/admin/dlq"+query, adminToken)
			if a.Status != 200 {
				t.Fatalf("GET /v1/admin/dlq%s: got %d %s, want 200", query, a.Status, a.Raw)
			}
			return a
		}
		for _, tt := range []struct {
			query string
			want  []string
		}{
			{"?tenantId=acme", acme},
			{"?tenantId=acme&type=review.*", acmeApproval},
			{"", slices.Concat(acme, beta)},
			{"?tenantId=*", slices.Concat(acme, beta)},
			{"?type=crm.**", beta},
			{"?tenantId=beta&type=review.*", []string{}},
			{"?tenantId=nobody", []string{}},
		} {
			t.Run("list "+tt.query, func(t *testing.T) {
				a := list(t, tt.query)
				if got := itemEvents(t, a); !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
				if a.Body["nextCursor"] != "" {
					t.Errorf("nextCursor: got %v, want empty on the only page", a.Body["nextCursor"])
				}
			})
		}

		t.Run("pages with the cursor", func(t *testing.T) {
			for _, tenant := range []string{"acme", ""} {
				want := acme
				base := "?tenantId=acme&limit=2"
				if tenant == "" {
					want, base = slices.Concat(acme, beta), "?limit=2"
				}
				var got []string
				var sizes []int
				query := base
				for page := 0; ; page++ {
					if page > 10 {
						t.Fatalf("more than 10 pages")
					}
					a := list(t, query)
					evs := itemEvents(t, a)
					got = append(got, evs...)
					sizes = append(sizes, len(evs))
					next, _ := a.Body["nextCursor"].(string)
					if next == "" {
						break
					}
					query = base + "&cursor=" + url.QueryEscape(next)
				}
				// A page may hold fewer than limit items (never more) while a
				// cursor follows: a store bounds the work of one call.
				if !slices.Equal(got, want) || slices.Max(sizes) > 2 {
					t.Errorf("%s: got %v in pages of %v, want %v in pages of at most 2", base, got, sizes, want)
				}
			}
		})

		// The dead letters' own ids, from the list.
		dlID := map[string]string{} // event id → dead-letter id
		for _, it := range deadLetters(t, sc, "") {
			dlID[str(it["event"].(map[string]any), "id")] = str(it, "id")
		}

		t.Run("get one", func(t *testing.T) {
			pub := published["ev-acme-4"]
			a := admin(t, sc, "GET", "/v1/admin/dlq/acme/"+dlID["ev-acme-4"], adminToken)
			if a.Status != 200 {
				t.Fatalf("got %d %s, want 200", a.Status, a.Raw)
			}
			ev, _ := a.Body["event"].(map[string]any)
			data, _ := ev["data"].(map[string]any)
			got := fmt.Sprint(a.Body["tenantId"], " ", a.Body["id"], " ", ev["id"], " ", ev["type"], " ", ev["correlationId"], " ",
				data["eventId"], " ", a.Body["originalStreamId"], " ", a.Body["group"], " ", a.Body["attempts"], " ", a.Body["lastError"])
			want := fmt.Sprint("acme ", dlID["ev-acme-4"], " ev-acme-4 review.requested ", pub.Body["correlationId"], " ev-acme-4 ",
				pub.Body["streamId"], " billing 1 ")
			if !strings.HasPrefix(got, want) || !strings.Contains(got, "422") || !strings.Contains(got, "order 42 does not exist") {
				t.Errorf("got %s\nwant %s<lastError with 422 and the app's answer>", got, want)
			}
			if fa, err := time.Parse(time.RFC3339, str(a.Body, "failedAt")); err != nil || time.Since(fa) > time.Minute {
				t.Errorf("failedAt: got %v (%v), want a recent RFC 3339 time", a.Body["failedAt"], err)
			}
		})

		t.Run("delete one", func(t *testing.T) {
			id := dlID["ev-acme-3"]
			if a := admin(t, sc, "DELETE", "/v1/admin/dlq/acme/"+id, adminToken); a.Status != 204 || a.Raw != "" {
				t.Fatalf("delete: got %d %q, want 204 and no body", a.Status, a.Raw)
			}
			if a := admin(t, sc, "GET", "/v1/admin/dlq/acme/"+id, adminToken); a.Status != 404 || a.errField("code") != "not_found" {
				t.Errorf("get after delete: got %d %s, want 404 not_found", a.Status, a.Raw)
			}
			if a := admin(t, sc, "DELETE", "/v1/admin/dlq/acme/"+id, adminToken); a.Status != 404 {
				t.Errorf("second delete: got %d %s, want 404", a.Status, a.Raw)
			}
			want := slices.Delete(slices.Clone(acme), 1, 2)
			if got := itemEvents(t, list(t, "?tenantId=acme")); !slices.Equal(got, want) {
				t.Errorf("list after delete: got %v, want %v", got, want)
			}
			if n := dlqLength(t, sc, "acme"); n != 4 {
				t.Errorf("acme's DLQ length after delete: got %d, want 4", n)
			}
			// Another tenant's id is not found under this tenant.
			if a := admin(t, sc, "GET", "/v1/admin/dlq/acme/"+dlID["ev-beta-0"], adminToken); a.Status != 404 {
				t.Errorf("beta's dead letter under acme: got %d %s, want 404", a.Status, a.Raw)
			}
		})

		absent := absentEntryIDs[b.name()]
		for _, p := range []string{"GET /v1/admin/dlq/acme/" + absent, "DELETE /v1/admin/dlq/acme/" + absent, "POST /v1/admin/dlq/acme/" + absent + "/retry"} {
			method, path, _ := strings.Cut(p, " ")
			if a := admin(t, sc, method, path, adminToken); a.Status != 404 || a.errField("code") != "not_found" {
				t.Errorf("%s of an absent dead letter: got %d %s, want 404 not_found", method, a.Status, a.Raw)
			}
		}
		for _, tt := range []struct{ path, field string }{
			{"/v1/admin/dlq?limit=0", "limit"},
			{"/v1/admin/dlq?limit=501", "limit"},
			{"/v1/admin/dlq?type=Approval.*", "type"},
			{"/v1/admin/dlq?cursor=not-a-cursor", "cursor"},
			{"/v1/admin/dlq?tenantId=a%7Db", "tenantId"},
			{"/v1/admin/dlq?tenant=acme", "tenant"},
			{"/v1/admin/dlq/acme/latest", "entryId"},
		} {
			t.Run("bad request "+tt.path, func(t *testing.T) {
				a := admin(t, sc, "GET", tt.path, adminToken)
				if a.Status != 400 || a.errField("field") != tt.field {
					t.Errorf("got %d %s, want 400 naming %s", a.Status, a.Raw, tt.field)
				}
			})
		}
		if a := admin(t, sc, "GET", "/v1/admin/dlq/acme", adminToken); a.Status != 404 {
			t.Errorf("unknown admin path: got %d, want 404", a.Status)
		}
	})
}

func TestAdmin_DLQ_retry_delivers_to_the_failed_group_only(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		var reject atomic.Bool
		reject.Store(true)
		billing := rejectingApp(t, &reject)
		audit := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		bsc := startSidecar(t, b, billing, "--group", "billing")
		asc := startSidecar(t, b, audit, "--group", "audit")
		tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		orig := do(t, bsc.Client(), "POST", bsc.URL()+"/v1/events",
			eventBody("review.requested", "acme", "id", `"ev-retry-1"`, "data", `{"eventId":"ev-retry-1"}`),
			map[string]string{"X-Correlation-Id": "corr-ev-retry-1", "traceparent": tp})
		if orig.Status != 202 {
			t.Fatalf("publish: got %d %s", orig.Status, orig.Raw)
		}
		eventually(t, 5*time.Second, "billing's dead letter", func() bool { return dlqLength(t, bsc, "acme") == 1 })
		audit.WaitFor(t, 5*time.Second, "audit's live push", func(ps []apptest.Push) bool { return len(answered(ps)) == 1 })
		id := str(deadLetters(t, bsc, "?tenantId=acme")[0], "id")
		reject.Store(false)

		a := admin(t, asc, "POST", "/v1/admin/dlq/acme/"+id+"/retry", adminToken) // any sidecar can retry
		if a.Status != 202 {
			t.Fatalf("retry: got %d %s, want 202", a.Status, a.Raw)
		}
		streamID, _ := a.Body["streamId"].(string)
		if a.Body["id"] != "ev-retry-1" || a.Body["tenantId"] != "acme" || a.Body["correlationId"] != "corr-ev-retry-1" ||
			a.Body["stream"] != b.stream("acme") || streamID == "" || streamID == orig.Body["streamId"] {
			t.Errorf("retry answer: got %s, want a new entry of ev-retry-1 in %s", a.Raw, b.stream("acme"))
		}
		billing.WaitFor(t, 5*time.Second, "the retried event", func(ps []apptest.Push) bool { return len(ps) == 2 && !ps[1].Pending })
		p := billing.Received()[1]
		if p.EventID != "ev-retry-1" || p.Status != 200 || p.Header.Get("X-Correlation-Id") != "corr-ev-retry-1" ||
			!strings.Contains(string(p.Body), `"data":{"eventId":"ev-retry-1"}`) || p.Header.Get("Traceparent") != tp {
			t.Errorf("billing got event %s (answered %d), correlation %s, traceparent %s, body %s; want the original event",
				p.EventID, p.Status, p.Header.Get("X-Correlation-Id"), p.Header.Get("Traceparent"), p.Body)
		}
		waitCaughtUp(t, asc, "audit", 5*time.Second)
		waitCaughtUp(t, asc, "billing", 5*time.Second)
		if got := audit.Received(); len(got) != 1 {
			t.Errorf("audit got %d pushes, want its one live push, not the retry:\n%s", len(got), apptest.Summary(got))
		}
		if n := dlqLength(t, bsc, "acme"); n != 0 {
			t.Errorf("DLQ length after the retry: got %d, want 0", n)
		}
		if a := admin(t, bsc, "GET", "/v1/admin/dlq/acme/"+id, adminToken); a.Status != 404 {
			t.Errorf("get after retry: got %d, want 404", a.Status)
		}
		if a := admin(t, bsc, "POST", "/v1/admin/dlq/acme/"+id+"/retry", adminToken); a.Status != 404 {
			t.Errorf("second retry: got %d, want 404", a.Status)
		}
		// The audit sidecar still reads acme's events: a new one reaches it.
		ev := publish(t, bsc, eventBody("review.granted", "acme"))
		audit.WaitFor(t, 5*time.Second, "a live event", func(ps []apptest.Push) bool { return len(ps) == 2 })
		if got := audit.Received()[1].EventID; got != ev.Body["id"] {
			t.Errorf("audit got %s, want the live event %v", got, ev.Body["id"])
		}
	})
}

func TestAdmin_DLQ_concurrent_retries_of_one_entry_deliver_it_once(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		var reject atomic.Bool
		reject.Store(true)
		billing := rejectingApp(t, &reject)
		sc := startSidecar(t, b, billing, "--group", "billing")
		publish(t, sc, eventBody("review.requested", "acme", "id", `"ev-retry-2"`))
		eventually(t, 5*time.Second, "the dead letter", func() bool { return dlqLength(t, sc, "acme") == 1 })
		id := str(deadLetters(t, sc, "?tenantId=acme")[0], "id")
		reject.Store(false)

		const n = 10
		statuses := make([]int, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", sc.URL()+"/v1/admin/dlq/acme/"+id+"/retry", nil)
				req.Header.Set("Authorization", "Bearer "+adminToken)
				<-start
				resp, err := sc.Client().Do(req)
				if err != nil {
					errs[i] = err
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		count := map[int]int{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("retry %d: %v", i, errs[i])
			}
			count[statuses[i]]++
		}
		if count[202] != 1 || count[404] != n-1 {
			t.Errorf("statuses: got %v, want one 202 and %d 404", count, n-1)
		}
		billing.WaitFor(t, 5*time.Second, "the retried event", func(ps []apptest.Push) bool { return len(ps) >= 2 })
		waitCaughtUp(t, sc, "billing", 5*time.Second)
		time.Sleep(300 * time.Millisecond) // let any duplicate arrive
		if n := streamLength(t, sc, "acme"); n != 2 {
			t.Errorf("acme's stream length: got %d, want 2 (the event and its one retry)", n)
		}
		if got := countIDs(billing.Received()); len(got) != 1 || got["ev-retry-2"] != 2 {
			t.Errorf("pushes per event: got %v, want ev-retry-2 twice (rejected, then retried once)", got)
		}
		if n := dlqLength(t, sc, "acme"); n != 0 {
			t.Errorf("DLQ length: got %d, want 0", n)
		}
	})
}

// A dead letter written by another writer in the documented Redis layout
// (SPEC §4) is listed, read and retried like one the sidecar wrote.
func TestRedis_DLQ_reads_dead_letters_in_the_documented_layout(t *testing.T) {
	rb := startRedis(t)
	billing := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	sc := startSidecar(t, rb, billing, "--group", "billing")
	id := seedDeadLetter(t, rb.client(t), "acme", "ev-seeded", "review.requested", "billing")
	a := admin(t, sc, "GET", "/v1/admin/dlq/acme/"+id, adminToken)
	ev, _ := a.Body["event"].(map[string]any)
	data, _ := ev["data"].(map[string]any)
	got := fmt.Sprint(a.Status, " ", a.Body["tenantId"], " ", a.Body["id"], " ", ev["id"], " ", ev["type"], " ", ev["correlationId"], " ",
		data["eventId"], " ", a.Body["originalStreamId"], " ", a.Body["group"], " ", a.Body["attempts"], " ",
		a.Body["lastError"], " ", a.Body["failedAt"])
	want := "200 acme " + id + " ev-seeded review.requested corr-ev-seeded ev-seeded 1764000000000-0 billing 4 " +
		"app answered 503 2026-11-26T10:30:00.000Z"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if r := admin(t, sc, "POST", "/v1/admin/dlq/acme/"+id+"/retry", adminToken); r.Status != 202 {
		t.Fatalf("retry: got %d %s, want 202", r.Status, r.Raw)
	}
	billing.WaitFor(t, 5*time.Second, "the retried event", func(ps []apptest.Push) bool { return len(ps) == 1 })
	if p := billing.Received()[0]; p.EventID != "ev-seeded" || p.Header.Get("Traceparent") != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("pushed %s with traceparent %q, want ev-seeded with the seeded traceparent", p.EventID, p.Header.Get("Traceparent"))
	}
	if n := xlen(t, rb.client(t), "hyvve:dlq:{acme}"); n != 0 {
		t.Errorf("XLEN hyvve:dlq:{acme} after the retry: got %d, want 0", n)
	}
}

func TestAdmin_DLQ_retry_of_a_dead_letter_the_sidecar_wrote(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		var reject atomic.Bool
		reject.Store(true)
		app := rejectingApp(t, &reject)
		sc := startSidecar(t, b, app, "--group", "billing")
		pub := publish(t, sc, eventBody("review.granted", "acme", "data", `{"approvalId":"a-1"}`))
		eventually(t, 5*time.Second, "a dead letter", func() bool { return dlqLength(t, sc, "acme") == 1 })

		a := admin(t, sc, "GET", "/v1/admin/dlq?tenantId=acme", adminToken)
		items, _ := a.Body["items"].([]any)
		if a.Status != 200 || len(items) != 1 {
			t.Fatalf("list: got %d %s, want one dead letter", a.Status, a.Raw)
		}
		dl := items[0].(map[string]any)
		ev, _ := dl["event"].(map[string]any)
		lastError, _ := dl["lastError"].(string)
		if ev["id"] != pub.Body["id"] || dl["group"] != "billing" || dl["originalStreamId"] != pub.Body["streamId"] ||
			!strings.Contains(lastError, "422") {
			t.Errorf("dead letter: got %s, want event %v of group billing from %v, failed with 422", a.Raw, pub.Body["id"], pub.Body["streamId"])
		}

		reject.Store(false)
		if r := admin(t, sc, "POST", fmt.Sprintf("/v1/admin/dlq/acme/%v/retry", dl["id"]), adminToken); r.Status != 202 {
			t.Fatalf("retry: got %d %s, want 202", r.Status, r.Raw)
		}
		app.WaitFor(t, 5*time.Second, "the retried push answered 200", func(ps []apptest.Push) bool {
			return len(ps) == 2 && ps[1].Status == 200
		})
		if got := ids(app.Received()); got[0] != pub.Body["id"] || got[1] != pub.Body["id"] {
			t.Errorf("pushed event ids: got %v, want %v twice", got, pub.Body["id"])
		}
		eventually(t, 3*time.Second, "the DLQ to be empty", func() bool { return dlqLength(t, sc, "acme") == 0 })
	})
}

func xlen(t testing.TB, c *redis.Client, stream string) int64 {
	t.Helper()
	n, err := c.XLen(context.Background(), stream).Result()
	if err != nil {
		t.Fatalf("xlen %s: %v", stream, err)
	}
	return n
}
