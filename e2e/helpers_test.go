// Package e2e holds the black-box tests: they build the real sidecar binary,
// start real redis-servers and fake apps, and drive everything over HTTP the
// way an app would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// answer is a decoded local API response.
type answer struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// errField returns error.<name> of an error body ("" when absent).
func (a answer) errField(name string) string {
	e, _ := a.Body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

func do(t testing.TB, c *http.Client, method, url string, body string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &a.Body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v: %s", method, url, err, raw)
		}
	}
	return a
}

// publish posts one event to a sidecar over TCP and fails the test unless it
// was accepted (202).
func publish(t testing.TB, sc *sidecartest.Sidecar, body string) answer {
	t.Helper()
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", body, nil)
	if a.Status != http.StatusAccepted {
		t.Fatalf("publish %s: got %d %s, want 202", body, a.Status, a.Raw)
	}
	return a
}

// startSidecar starts the real binary against rdb with the given extra flags.
func startSidecar(t testing.TB, rdb *redistest.Server, app *apptest.App, args ...string) *sidecartest.Sidecar {
	t.Helper()
	full := []string{"--redis-url", rdb.URL(), "--tenant", "acme", "--log-level", "debug"}
	if app != nil {
		full = append(full, "--app-url", app.URL())
	}
	return sidecartest.Start(t, sidecartest.Options{Args: append(full, args...)})
}

// ids returns the X-Event-Id of every push.
func ids(ps []apptest.Push) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.EventID
	}
	return out
}

// countIDs counts pushes per event id.
func countIDs(ps []apptest.Push) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		m[p.EventID]++
	}
	return m
}

func xlen(t testing.TB, c *redis.Client, stream string) int64 {
	t.Helper()
	n, err := c.XLen(context.Background(), stream).Result()
	if err != nil {
		t.Fatalf("xlen %s: %v", stream, err)
	}
	return n
}

func eventBody(typ, tenant string, extra ...string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"type":%q`, typ)
	if tenant != "" {
		fmt.Fprintf(&b, `,"tenantId":%q`, tenant)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		fmt.Fprintf(&b, `,%q:%s`, extra[i], extra[i+1])
	}
	b.WriteString("}")
	return b.String()
}

// eventually polls cond every 20 ms until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
