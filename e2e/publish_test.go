package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

func TestPublish_rejects_bad_events_and_leaves_the_stream_untouched(t *testing.T) {
	rdb := redistest.Start(t)
	sc := startSidecar(t, rdb, nil, "--tenants", "acme,globex", "--max-event-bytes", "2KiB")
	c := rdb.Client(t)
	stream := "hyvve:events:{acme}"
	publish(t, sc, eventBody("review.requested", "acme")) // the stream exists
	before := xlen(t, c, stream)

	big := `"` + strings.Repeat("x", 3000) + `"`
	cases := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
		code    string
		field   string
	}{
		{"not json", `{"type":`, nil, 400, "invalid_json", "type"},
		{"array", `[]`, nil, 400, "invalid_json", ""},
		{"no type", `{"tenantId":"acme"}`, nil, 400, "missing_field", "type"},
		{"one segment type", eventBody("approval", "acme"), nil, 400, "invalid_field", "type"},
		{"six segment type", eventBody("a.b.c.d.e.f", "acme"), nil, 400, "invalid_field", "type"},
		{"upper-case type", eventBody("Approval.Requested", "acme"), nil, 400, "invalid_field", "type"},
		{"type too long", eventBody("a."+strings.Repeat("b", 130), "acme"), nil, 400, "invalid_field", "type"},
		{"tenant with a brace", eventBody("a.b", "ac}me"), nil, 400, "invalid_field", "tenantId"},
		{"tenant with a colon", eventBody("a.b", "acme:x"), nil, 400, "invalid_field", "tenantId"},
		{"tenant too long", eventBody("a.b", strings.Repeat("t", 65)), nil, 400, "invalid_field", "tenantId"},
		{"tenant starting with dash", eventBody("a.b", "-acme"), nil, 400, "invalid_field", "tenantId"},
		{"tenant header bad", eventBody("a.b", ""), map[string]string{"X-Tenant-Id": "a b"}, 400, "invalid_field", "tenantId"},
		{"id too long", eventBody("a.b", "acme", "id", `"`+strings.Repeat("i", 129)+`"`), nil, 400, "invalid_field", "id"},
		{"id with newline", eventBody("a.b", "acme", "id", `"a\nb"`), nil, 400, "invalid_field", "id"},
		{"bad timestamp", eventBody("a.b", "acme", "timestamp", `"yesterday"`), nil, 400, "invalid_field", "timestamp"},
		{"data is an array", eventBody("a.b", "acme", "data", `[1]`), nil, 400, "invalid_field", "data"},
		{"data is a string", eventBody("a.b", "acme", "data", `"x"`), nil, 400, "invalid_field", "data"},
		{"type is a number", `{"type":5,"tenantId":"acme"}`, nil, 400, "invalid_field", "type"},
		{"unknown field", eventBody("a.b", "acme", "tenantID", `"acme"`), nil, 400, "unknown_field", "tenantID"},
		{"reserved field", eventBody("a.b", "acme", "replay", `true`), nil, 400, "reserved_field", "replay"},
		{"correlation id with newline", eventBody("a.b", "acme"), map[string]string{"X-Correlation-Id": "a\tb"}, 400, "invalid_field", "correlationId"},
		{"tenant not allowed", eventBody("a.b", "initech"), nil, 403, "tenant_not_allowed", "tenantId"},
		{"too large", eventBody("a.b", "acme", "data", `{"x":`+big+`}`), nil, 413, "event_too_large", ""},
		{"not json content type", eventBody("a.b", "acme"), map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type", "Content-Type"},
		{"bad idempotency key", eventBody("a.b", "acme"), map[string]string{"Idempotency-Key": "has space"}, 400, "invalid_field", "Idempotency-Key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", tc.body, tc.headers)
			if a.Status != tc.status || a.errField("code") != tc.code || a.errField("field") != tc.field {
				t.Errorf("got %d code=%q field=%q (%s), want %d code=%q field=%q",
					a.Status, a.errField("code"), a.errField("field"), a.Raw, tc.status, tc.code, tc.field)
			}
			if a.errField("message") == "" {
				t.Errorf("error has no message: %s", a.Raw)
			}
		})
	}
	if got := xlen(t, c, stream); got != before {
		t.Errorf("XLEN %s after rejected events: got %d, want %d", stream, got, before)
	}
	keys, _ := c.Keys(context.Background(), "hyvve:events:*").Result()
	if len(keys) != 1 {
		t.Errorf("stream keys after rejected events: got %v, want only %s", keys, stream)
	}
}

func TestPublish_over_TCP_and_Unix_socket_stores_one_field_per_attribute(t *testing.T) {
	rdb := redistest.Start(t)
	sc := sidecartest.Start(t, sidecartest.Options{Socket: true, Args: []string{
		"--redis-url", rdb.URL(), "--source", "billing"}})
	c := rdb.Client(t)

	for _, tr := range []struct {
		name   string
		client *http.Client
	}{{"tcp", sc.Client()}, {"unix", sc.UnixClient()}} {
		t.Run(tr.name, func(t *testing.T) {
			body := `{"type":"review.requested","data":{"approvalId":"a-1","n":1.5}}`
			tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			a := do(t, tr.client, "POST", sc.URL()+"/v1/events", body, map[string]string{
				"X-Tenant-Id": "acme", "X-Correlation-Id": "corr-" + tr.name, "X-User-Id": "u-42", "traceparent": tp})
			if a.Status != 202 {
				t.Fatalf("got %d %s, want 202", a.Status, a.Raw)
			}
			for _, k := range []string{"id", "tenantId", "correlationId", "stream", "streamId"} {
				if s, _ := a.Body[k].(string); s == "" {
					t.Errorf("202 body has no %q: %s", k, a.Raw)
				}
			}
			if a.Body["stream"] != "hyvve:events:{acme}" || a.Body["tenantId"] != "acme" || a.Body["correlationId"] != "corr-"+tr.name {
				t.Errorf("202 body: got %s", a.Raw)
			}
			msgs, err := c.XRange(context.Background(), "hyvve:events:{acme}", a.Body["streamId"].(string), a.Body["streamId"].(string)).Result()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("XRANGE of the new entry: %v %v", msgs, err)
			}
			v := msgs[0].Values
			want := map[string]string{
				"id": a.Body["id"].(string), "type": "review.requested", "source": "billing",
				"correlationId": "corr-" + tr.name, "tenantId": "acme", "userId": "u-42", "version": "1.0",
				"data": `{"approvalId":"a-1","n":1.5}`, "traceparent": tp,
			}
			for k, w := range want {
				if v[k] != w {
					t.Errorf("entry field %s: got %q, want %q", k, v[k], w)
				}
			}
			if ts, _ := v["timestamp"].(string); len(ts) != len("2026-11-26T10:00:00.123Z") || !strings.HasSuffix(ts, "Z") {
				t.Errorf("timestamp: got %q, want RFC 3339 UTC with milliseconds", ts)
			}
			if len(v) != len(want)+1 {
				t.Errorf("entry has %d fields, want %d: %v", len(v), len(want)+1, v)
			}
		})
	}
	if n, _ := c.SIsMember(context.Background(), "hyvve:tenants", "acme").Result(); !n {
		t.Errorf("tenant acme is not registered in hyvve:tenants")
	}
}

func TestPublish_idempotency_key_returns_the_first_result_and_writes_once(t *testing.T) {
	rdb := redistest.Start(t)
	sc := startSidecar(t, rdb, nil)
	c := rdb.Client(t)
	h := map[string]string{"Idempotency-Key": "order-42-approved"}
	first := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("review.granted", "acme"), h)
	second := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("review.granted", "acme"), h)
	if first.Status != 202 || second.Status != 202 {
		t.Fatalf("got %d and %d, want 202 twice: %s / %s", first.Status, second.Status, first.Raw, second.Raw)
	}
	if first.Raw != second.Raw {
		t.Errorf("second answer differs from the first:\n got %s\nwant %s", second.Raw, first.Raw)
	}
	if second.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("second answer lacks Idempotent-Replayed: true")
	}
	if n := xlen(t, c, "hyvve:events:{acme}"); n != 1 {
		t.Errorf("XLEN: got %d, want 1", n)
	}
	// The same key for another tenant is another publish.
	other := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("review.granted", "globex"), h)
	if other.Status != 202 || other.Body["id"] == first.Body["id"] {
		t.Errorf("same key, other tenant: got %d %s, want a new event", other.Status, other.Raw)
	}
}

func TestPublish_batch_answers_one_result_per_event_in_order(t *testing.T) {
	rdb := redistest.Start(t)
	sc := startSidecar(t, rdb, nil)
	c := rdb.Client(t)
	body := `{"events":[{"type":"a.b"},{"type":"BAD"},{"type":"a.c","tenantId":"globex"}]}`
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events/batch", body, nil)
	if a.Status != 202 {
		t.Fatalf("got %d %s, want 202", a.Status, a.Raw)
	}
	res, _ := a.Body["results"].([]any)
	if len(res) != 3 {
		t.Fatalf("results: got %d, want 3: %s", len(res), a.Raw)
	}
	r0, r1, r2 := res[0].(map[string]any), res[1].(map[string]any), res[2].(map[string]any)
	if r0["tenantId"] != "acme" || r0["streamId"] == nil {
		t.Errorf("result 0: got %v, want a publish to acme", r0)
	}
	if e, _ := r1["error"].(map[string]any); e == nil || e["field"] != "type" {
		t.Errorf("result 1: got %v, want an error naming type", r1)
	}
	if r2["tenantId"] != "globex" || r2["stream"] != "hyvve:events:{globex}" {
		t.Errorf("result 2: got %v, want a publish to globex", r2)
	}
	if n := xlen(t, c, "hyvve:events:{acme}") + xlen(t, c, "hyvve:events:{globex}"); n != 2 {
		t.Errorf("entries written: got %d, want 2", n)
	}
	for _, bad := range []string{`{"events":[]}`, `{"evnts":[]}`, `[]`} {
		if a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events/batch", bad, nil); a.Status != 400 {
			t.Errorf("batch %s: got %d, want 400", bad, a.Status)
		}
	}
}

func TestPublish_needs_the_api_token_when_one_is_set(t *testing.T) {
	rdb := redistest.Start(t)
	sc := startSidecar(t, rdb, nil, "--api-token", "s3cret")
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}} {
		if a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("a.b", "acme"), h); a.Status != 401 || a.errField("code") != "unauthorized" {
			t.Errorf("headers %v: got %d %s, want 401 unauthorized", h, a.Status, a.Raw)
		}
	}
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("a.b", "acme"), map[string]string{"Authorization": "Bearer s3cret"})
	if a.Status != 202 {
		t.Errorf("with the token: got %d %s, want 202", a.Status, a.Raw)
	}
	if strings.Contains(sc.Logs(), "s3cret") {
		t.Errorf("the API token appears in the logs")
	}
	// Health stays open for probes.
	if a := do(t, sc.Client(), "GET", sc.URL()+"/healthz", "", nil); a.Status != 200 {
		t.Errorf("/healthz: got %d, want 200", a.Status)
	}
}
