package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// streamIDs are the stream ids of each store: "<ms>-<seq>" on Redis, the
// stream sequence in decimal on JetStream.
var streamIDs = map[string]*regexp.Regexp{
	"redis":     regexp.MustCompile(`^[0-9]{13}-[0-9]+$`),
	"jetstream": regexp.MustCompile(`^[1-9][0-9]*$`),
}

func TestPublish_rejects_bad_events_and_leaves_the_stream_untouched(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		sc := startSidecar(t, b, nil, "--tenants", "acme,globex", "--max-event-bytes", "2KiB")
		publish(t, sc, eventBody("review.requested", "acme")) // the stream exists
		before := allStats(t, sc)

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
			{"tenant with a dot", eventBody("a.b", "acme.x"), nil, 400, "invalid_field", "tenantId"},
			{"tenant with a star", eventBody("a.b", "acme*"), nil, 400, "invalid_field", "tenantId"},
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
		after := allStats(t, sc)
		acme, _ := after.tenant("acme")
		want, _ := before.tenant("acme")
		if acme.StreamLength != want.StreamLength || acme.StreamLength != 1 {
			t.Errorf("acme's stream length after rejected events: got %d, want %d (the one accepted event)", acme.StreamLength, want.StreamLength)
		}
		if after.TenantCount != 1 || len(after.Tenants) != 1 {
			t.Errorf("tenants after rejected events: got %d %+v, want only acme", after.TenantCount, after.Tenants)
		}
	})
}

// Both listeners publish the same way; every attribute the app set arrives
// unchanged in the push.
func TestPublish_over_TCP_and_Unix_socket_keeps_every_attribute(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		sc := sidecartest.Start(t, sidecartest.Options{Socket: true, Args: append(b.args(),
			"--source", "billing", "--app-url", app.URL(), "--admin-token", adminToken)})

		for _, tr := range []struct {
			name   string
			client *http.Client
		}{{"tcp", sc.Client()}, {"unix", sc.UnixClient()}} {
			t.Run(tr.name, func(t *testing.T) {
				body := `{"type":"review.requested","data":{"approvalId":"a-1","n":1.5}}`
				tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
				a := do(t, tr.client, "POST", sc.URL()+"/v1/events", body, map[string]string{
					"X-Tenant-Id": "acme", "X-Correlation-Id": "corr-" + tr.name, "X-User-Id": "u-42", "traceparent": tp,
					"tracestate": "vendor=x"})
				if a.Status != 202 {
					t.Fatalf("got %d %s, want 202", a.Status, a.Raw)
				}
				for _, k := range []string{"id", "tenantId", "correlationId", "stream", "streamId"} {
					if s, _ := a.Body[k].(string); s == "" {
						t.Errorf("202 body has no %q: %s", k, a.Raw)
					}
				}
				if a.Body["stream"] != b.stream("acme") || a.Body["tenantId"] != "acme" || a.Body["correlationId"] != "corr-"+tr.name {
					t.Errorf("202 body: got %s, want stream %s, tenant acme, correlation corr-%s", a.Raw, b.stream("acme"), tr.name)
				}
				if id, _ := a.Body["streamId"].(string); !streamIDs[b.name()].MatchString(id) {
					t.Errorf("streamId: got %q, want one like %s", id, streamIDs[b.name()])
				}
				id := a.Body["id"].(string)
				var p apptest.Push
				app.WaitFor(t, 5*time.Second, "the push", func(ps []apptest.Push) bool {
					for _, x := range ps {
						if x.EventID == id {
							p = x
							return true
						}
					}
					return false
				})
				var ev map[string]any
				if err := json.Unmarshal(p.Body, &ev); err != nil {
					t.Fatalf("push body %s: %v", p.Body, err)
				}
				want := map[string]any{
					"id": id, "type": "review.requested", "source": "billing", "correlationId": "corr-" + tr.name,
					"tenantId": "acme", "userId": "u-42", "version": "1.0",
				}
				for k, w := range want {
					if ev[k] != w {
						t.Errorf("pushed event %s: got %v, want %v", k, ev[k], w)
					}
				}
				if d, _ := ev["data"].(map[string]any); d["approvalId"] != "a-1" || d["n"] != 1.5 || len(d) != 2 {
					t.Errorf("pushed data: got %v, want {approvalId: a-1, n: 1.5}", ev["data"])
				}
				if ts, _ := ev["timestamp"].(string); len(ts) != len("2026-11-26T10:00:00.123Z") || !strings.HasSuffix(ts, "Z") {
					t.Errorf("timestamp: got %q, want RFC 3339 UTC with milliseconds", ts)
				}
				if len(ev) != len(want)+2 {
					t.Errorf("pushed event has %d attributes, want %d: %v", len(ev), len(want)+2, ev)
				}
				if got := p.Header.Get("Traceparent"); got != tp {
					t.Errorf("pushed traceparent: got %q, want %q", got, tp)
				}
				if got := p.Header.Get("Tracestate"); got != "vendor=x" {
					t.Errorf("pushed tracestate: got %q, want vendor=x", got)
				}
			})
		}
		if n := streamLength(t, sc, "acme"); n != 2 {
			t.Errorf("acme's stream length: got %d, want 2", n)
		}
	})
}

// The Redis layout is a contract of its own (SPEC §4): another language reads
// the stream with one field per event attribute.
func TestRedis_publish_stores_one_field_per_attribute(t *testing.T) {
	rb := startRedis(t)
	sc := startSidecar(t, rb, nil, "--source", "billing")
	c := rb.client(t)
	body := `{"type":"review.requested","data":{"approvalId":"a-1","n":1.5}}`
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", body, map[string]string{
		"X-Correlation-Id": "corr-1", "X-User-Id": "u-42", "traceparent": tp})
	if a.Status != 202 {
		t.Fatalf("got %d %s, want 202", a.Status, a.Raw)
	}
	msgs, err := c.XRange(context.Background(), "hyvve:events:{acme}", a.Body["streamId"].(string), a.Body["streamId"].(string)).Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("XRANGE of the new entry: %v %v", msgs, err)
	}
	v := msgs[0].Values
	want := map[string]string{
		"id": a.Body["id"].(string), "type": "review.requested", "source": "billing",
		"correlationId": "corr-1", "tenantId": "acme", "userId": "u-42", "version": "1.0",
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
	if n, _ := c.SIsMember(context.Background(), "hyvve:tenants", "acme").Result(); !n {
		t.Errorf("tenant acme is not registered in hyvve:tenants")
	}
	keys, _ := c.Keys(context.Background(), "hyvve:events:*").Result()
	if len(keys) != 1 || keys[0] != "hyvve:events:{acme}" {
		t.Errorf("stream keys: got %v, want only hyvve:events:{acme} (the tenant in a hash tag)", keys)
	}
}

func TestPublish_idempotency_key_returns_the_first_result_and_writes_once(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		sc := startSidecar(t, b, nil)
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
		if n := streamLength(t, sc, "acme"); n != 1 {
			t.Errorf("acme's stream length: got %d, want 1", n)
		}
		// The same key for another tenant is another publish.
		other := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", eventBody("review.granted", "globex"), h)
		if other.Status != 202 || other.Body["id"] == first.Body["id"] || other.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("same key, other tenant: got %d %s, want a new event", other.Status, other.Raw)
		}
		if n := streamLength(t, sc, "globex"); n != 1 {
			t.Errorf("globex's stream length: got %d, want 1", n)
		}
	})
}

func TestPublish_batch_answers_one_result_per_event_in_order(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		sc := startSidecar(t, b, nil)
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
		if r0["tenantId"] != "acme" || r0["stream"] != b.stream("acme") || r0["streamId"] == nil {
			t.Errorf("result 0: got %v, want a publish to %s", r0, b.stream("acme"))
		}
		if e, _ := r1["error"].(map[string]any); e == nil || e["field"] != "type" {
			t.Errorf("result 1: got %v, want an error naming type", r1)
		}
		if r2["tenantId"] != "globex" || r2["stream"] != b.stream("globex") {
			t.Errorf("result 2: got %v, want a publish to %s", r2, b.stream("globex"))
		}
		if n := streamLength(t, sc, "acme") + streamLength(t, sc, "globex"); n != 2 {
			t.Errorf("events stored: got %d, want 2", n)
		}
		for _, bad := range []string{`{"events":[]}`, `{"evnts":[]}`, `[]`} {
			if a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events/batch", bad, nil); a.Status != 400 {
				t.Errorf("batch %s: got %d, want 400", bad, a.Status)
			}
		}
	})
}

// The API token is checked by the local API before any store is involved:
// one store is enough.
func TestPublish_needs_the_api_token_when_one_is_set(t *testing.T) {
	sc := startSidecar(t, startRedis(t), nil, "--api-token", "s3cret")
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

// The JetStream layout (internal/jsstore): a message on hyvve.events.<tenant>
// with one header per event attribute and the data object as its body, so
// another NATS client can read the stream without the sidecar.
func TestJetStream_publish_stores_one_header_per_attribute(t *testing.T) {
	jb := startJetStream(t)
	sc := startSidecar(t, jb, nil, "--source", "billing")
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", `{"type":"review.requested","data":{"approvalId":"a-1","n":1.5}}`,
		map[string]string{"X-Correlation-Id": "corr-1", "X-User-Id": "u-42", "traceparent": tp})
	if a.Status != 202 {
		t.Fatalf("got %d %s, want 202", a.Status, a.Raw)
	}
	seq, err := strconv.ParseUint(str(a.Body, "streamId"), 10, 64)
	if err != nil {
		t.Fatalf("streamId %v: %v", a.Body["streamId"], err)
	}
	nc, err := nats.Connect(jb.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), "hyvve_events")
	if err != nil {
		t.Fatalf("stream hyvve_events: %v", err)
	}
	m, err := stream.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatalf("message %d: %v", seq, err)
	}
	if m.Subject != "hyvve.events.acme" || string(m.Data) != `{"approvalId":"a-1","n":1.5}` {
		t.Errorf("message: got subject %s body %s, want hyvve.events.acme and the data object", m.Subject, m.Data)
	}
	want := map[string]string{
		"id": str(a.Body, "id"), "type": "review.requested", "source": "billing", "correlationId": "corr-1",
		"tenantId": "acme", "userId": "u-42", "version": "1.0", "traceparent": tp,
	}
	for k, w := range want {
		if got := m.Header[k]; len(got) != 1 || got[0] != w {
			t.Errorf("header %s: got %q, want %q", k, got, w)
		}
	}
	if ts := m.Header["timestamp"]; len(ts) != 1 || len(ts[0]) != len("2026-11-26T10:00:00.123Z") || !strings.HasSuffix(ts[0], "Z") {
		t.Errorf("timestamp header: got %q, want RFC 3339 UTC with milliseconds", ts)
	}
	var attrs []string
	for k := range m.Header {
		if !strings.HasPrefix(k, "Nats-") {
			attrs = append(attrs, k)
		}
	}
	if len(attrs) != len(want)+1 {
		t.Errorf("message has headers %v, want the %d attributes", attrs, len(want)+1)
	}
}
