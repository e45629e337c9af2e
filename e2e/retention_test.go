package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
)

// Retention scaled down for tests: the config requires a retention longer
// than the whole retry schedule and an app timeout below its first step.
var shortRetention = []string{"--retention", "3s", "--dlq-retention", "3s",
	"--retry-schedule", "100ms,200ms,400ms", "--app-timeout", "50ms"}

// pastRetention is a wait after which every event published before it is
// older than the retention of shortRetention.
const pastRetention = 3500 * time.Millisecond

// publishBatch publishes n events of type typ for acme through the batch
// endpoint, 100 at a time, and returns their ids.
func publishBatch(t *testing.T, url string, c *http.Client, typ string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i += 100 {
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for j := i; j < min(i+100, n); j++ {
			if j > i {
				b.WriteByte(',')
			}
			b.WriteString(eventBody(typ, "acme", "data", fmt.Sprintf(`{"n":%d}`, j)))
		}
		b.WriteString("]}")
		a := do(t, c, "POST", url+"/v1/events/batch", b.String(), nil)
		if a.Status != 202 || strings.Contains(a.Raw, `"error"`) {
			t.Fatalf("batch publish: got %d %.300s", a.Status, a.Raw)
		}
		for _, r := range a.Body["results"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
	}
	return out
}

// The promise of --retention on both stores: events older than it are gone,
// later ones stay. How differs: Redis trims with XADD … MINID ~ on the next
// publish, by whole stream nodes (approximate, never a newer entry);
// JetStream expires each message at MaxAge, continuously and exactly.
func TestRetention_drops_events_older_than_the_retention_and_keeps_later_ones(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		sc := startSidecar(t, b, nil, shortRetention...)
		publishBatch(t, sc.URL(), sc.Client(), "order.paid", 300)
		if n := streamLength(t, sc, "acme"); n != 300 {
			t.Fatalf("stream length after 300 publishes: got %d, want 300 (nothing is older than the retention yet)", n)
		}
		time.Sleep(pastRetention) // every event is now older than --retention
		if b.name() == "jetstream" {
			// JetStream needs no publish to expire them.
			eventually(t, 2*time.Second, "JetStream to expire every event", func() bool { return streamLength(t, sc, "acme") == 0 })
		}
		publishBatch(t, sc.URL(), sc.Client(), "order.paid", 5)

		var n int64
		eventually(t, 2*time.Second, "the events older than the retention to go", func() bool {
			n = streamLength(t, sc, "acme")
			return n < 150
		})
		t.Logf("stream length after the wait and 5 more publishes: %d", n)
		if n < 5 {
			t.Errorf("stream length: got %d, want ≥ 5: the events published after the wait must stay", n)
		}
		if b.name() == "jetstream" && n != 5 {
			t.Errorf("stream length on JetStream: got %d, want exactly the 5 later events", n)
		}
		if rb, ok := b.(*redisBroker); ok {
			// Trimming is approximate in one direction only: never a newer entry.
			c := rb.client(t)
			newest, err := c.XRevRangeN(t.Context(), "hyvve:events:{acme}", "+", "-", 5).Result()
			if err != nil || len(newest) != 5 || newest[0].Values["data"] != `{"n":4}` || newest[4].Values["data"] != `{"n":0}` {
				t.Errorf("newest entries: got %v (%v), want the 5 later publishes", newest, err)
			}
		}
	})
}

func TestRetention_drops_dead_letters_older_than_the_dlq_retention(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest) // rejected: dead-lettered at once
		})
		sc := startSidecar(t, b, app, append([]string{"--group", "billing"}, shortRetention...)...)
		publishBatch(t, sc.URL(), sc.Client(), "order.paid", 300)
		eventually(t, 10*time.Second, "300 dead letters", func() bool { return dlqLength(t, sc, "acme") == 300 })

		time.Sleep(pastRetention) // every dead letter is now older than --dlq-retention
		last := publishBatch(t, sc.URL(), sc.Client(), "order.paid", 1)[0]
		var n int64
		eventually(t, 5*time.Second, "the dead letters older than the retention to go", func() bool {
			n = dlqLength(t, sc, "acme")
			dls := deadLetters(t, sc, "?tenantId=acme&limit=1")
			return n < 150 && len(dls) == 1 && str(dls[0]["event"].(map[string]any), "id") == last
		})
		t.Logf("DLQ length after the wait and one more dead letter: %d", n)
		newest := deadLetters(t, sc, "?tenantId=acme&limit=1")[0]
		if fa, err := time.Parse(time.RFC3339, str(newest, "failedAt")); err != nil || time.Since(fa) > 3*time.Second {
			t.Errorf("newest dead letter failed at %v (%v), want the one just written", newest["failedAt"], err)
		}
	})
}
