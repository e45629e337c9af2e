package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// Retention scaled down for tests: the config requires a retention longer
// than the whole retry schedule and an app timeout below its first step.
var shortRetention = []string{"--retention", "2s", "--dlq-retention", "2s",
	"--retry-schedule", "100ms,200ms,400ms", "--app-timeout", "50ms"}

// publishBatch publishes n events of type typ for acme through the batch
// endpoint, 100 at a time.
func publishBatch(t *testing.T, url string, c *http.Client, typ string, n int) {
	t.Helper()
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
		if a := do(t, c, "POST", url+"/v1/events/batch", b.String(), nil); a.Status != 202 || strings.Contains(a.Raw, `"error"`) {
			t.Fatalf("batch publish: got %d %.300s", a.Status, a.Raw)
		}
	}
}

func TestRetention_trims_the_stream_to_the_retention_on_the_next_publish(t *testing.T) {
	rdb := redistest.Start(t)
	c := rdb.Client(t)
	sc := startSidecar(t, rdb, nil, shortRetention...)
	publishBatch(t, sc.URL(), sc.Client(), "order.paid", 300)
	if n := xlen(t, c, "hyvve:events:{acme}"); n != 300 {
		t.Fatalf("XLEN after 300 publishes: got %d, want 300 (nothing is older than the retention yet)", n)
	}
	time.Sleep(2500 * time.Millisecond) // every entry is now older than --retention
	last := publish(t, sc, eventBody("order.paid", "acme")).Body["streamId"]

	n := xlen(t, c, "hyvve:events:{acme}")
	t.Logf("XLEN after the wait and one more publish: %d", n)
	if n >= 150 {
		t.Errorf("XLEN: got %d, want < 150: XADD … MINID ~ must trim entries older than --retention", n)
	}
	// Trimming is approximate in one direction only: never a newer entry.
	newest, err := c.XRevRangeN(t.Context(), "hyvve:events:{acme}", "+", "-", 1).Result()
	if err != nil || len(newest) != 1 || newest[0].ID != last {
		t.Errorf("newest entry: got %v (%v), want the last publish %v", newest, err, last)
	}
}

func TestRetention_trims_the_dead_letters_to_the_dlq_retention(t *testing.T) {
	rdb := redistest.Start(t)
	c := rdb.Client(t)
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest) // rejected: dead-lettered at once
	})
	sc := startSidecar(t, rdb, app, append([]string{"--group", "billing"}, shortRetention...)...)
	publishBatch(t, sc.URL(), sc.Client(), "order.paid", 300)
	eventually(t, 10*time.Second, "300 dead letters", func() bool { return xlen(t, c, "hyvve:dlq:{acme}") == 300 })

	time.Sleep(2500 * time.Millisecond) // every dead letter is now older than --dlq-retention
	publish(t, sc, eventBody("order.paid", "acme"))
	var n int64
	eventually(t, 5*time.Second, "the next dead letter to trim the DLQ", func() bool {
		n = xlen(t, c, "hyvve:dlq:{acme}")
		return n < 150
	})
	t.Logf("DLQ length after the wait and one more dead letter: %d", n)
	newest, err := c.XRevRangeN(t.Context(), "hyvve:dlq:{acme}", "+", "-", 1).Result()
	if err != nil || len(newest) != 1 || newest[0].Values["lastError"] == nil {
		t.Fatalf("newest dead letter: got %v (%v), want the last one", newest, err)
	}
	if age := time.Since(time.UnixMilli(streamMs(t, newest[0].ID))); age > 2*time.Second {
		t.Errorf("newest dead letter is %v old, want the one just written", age)
	}
}
