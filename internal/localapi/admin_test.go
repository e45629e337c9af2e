package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// fakeDLQ is a DeadLetters that answers what the test set and records the
// calls it got.
type fakeDLQ struct {
	mu    sync.Mutex // guards the fields below
	err   error      // returned by every method when set
	page  relay.DLQPage
	dl    *relay.DeadLetter
	res   relay.PublishResult
	calls []string
	query relay.DLQQuery
}

func (f *fakeDLQ) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeDLQ) ListDeadLetters(_ context.Context, q relay.DLQQuery) (relay.DLQPage, error) {
	err := f.record("list")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.query = q
	return f.page, err
}

func (f *fakeDLQ) GetDeadLetter(_ context.Context, tenant, id string) (*relay.DeadLetter, error) {
	if err := f.record("get " + tenant + " " + id); err != nil {
		return nil, err
	}
	return f.dl, nil
}

func (f *fakeDLQ) RetryDeadLetter(_ context.Context, tenant, id string) (relay.PublishResult, error) {
	return f.res, f.record("retry " + tenant + " " + id)
}

func (f *fakeDLQ) DeleteDeadLetter(_ context.Context, tenant, id string) error {
	return f.record("delete " + tenant + " " + id)
}

func (f *fakeDLQ) lastCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type noPublisher struct{}

func (noPublisher) Publish(_ context.Context, _ []relay.PublishRequest, res []relay.PublishResult) {
	for i := range res {
		res[i] = relay.PublishResult{Err: relay.ErrUnavailable}
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's process-wide date updater, and its worker pool's
		// cleaner, which exits after its next tick.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// testServer is a local API running until the test ends, and a client of it.
type testServer struct {
	url string
	c   *http.Client
}

// startServer runs a local API on a free port until the test ends.
func startServer(t *testing.T, o Options) testServer {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	s, err := New(o, noPublisher{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return testServer{url: "http://" + s.Addr(), c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

// errField returns error.<name> of a SPEC error body.
func (r reply) errField(t *testing.T, name string) string {
	t.Helper()
	var b struct {
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &b); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return b.Error[name]
}

func (ts testServer) call(t *testing.T, method, path, auth string) reply {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := ts.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

const adminAuth = "Bearer admin-secret"

func TestAdmin_needs_the_admin_token(t *testing.T) {
	dlq := &fakeDLQ{page: relay.DLQPage{Items: []relay.DeadLetter{}}}
	srv := startServer(t, Options{AdminToken: "admin-secret", APIToken: "api-secret", DeadLetters: dlq})
	tests := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no header", "GET", "/v1/admin/dlq", "", 401},
		{"wrong token", "GET", "/v1/admin/dlq", "Bearer nope", 401},
		{"token prefix", "GET", "/v1/admin/dlq", "Bearer admin-secre", 401},
		{"token and more", "GET", "/v1/admin/dlq", "Bearer admin-secretX", 401},
		{"not a bearer", "GET", "/v1/admin/dlq", "Basic admin-secret", 401},
		{"the API token", "GET", "/v1/admin/dlq", "Bearer api-secret", 401},
		{"admin token", "GET", "/v1/admin/dlq", adminAuth, 200},
		{"retry without token", "POST", "/v1/admin/dlq/acme/1-0/retry", "", 401},
		{"delete with the API token", "DELETE", "/v1/admin/dlq/acme/1-0", "Bearer api-secret", 401},
		{"unknown admin path without token", "GET", "/v1/admin/nothing", "", 401},
		{"the admin token does not publish", "POST", "/v1/events", adminAuth, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.call(t, tt.method, tt.path, tt.auth)
			if r.status != tt.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want == 401 {
				if code := r.errField(t, "code"); code != "unauthorized" {
					t.Errorf("error code: got %q, want unauthorized", code)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			}
		})
	}
	for _, c := range dlq.lastCalls() {
		if c != "list" {
			t.Errorf("the store got %q from a refused request", c)
		}
	}
}

func TestAdmin_without_an_admin_token_is_closed(t *testing.T) {
	srv := startServer(t, Options{DeadLetters: &fakeDLQ{}})
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if r := srv.call(t, "GET", "/v1/admin/dlq", auth); r.status != 401 {
			t.Errorf("Authorization %q: got %d, want 401", auth, r.status)
		}
	}
}

func TestAdmin_routes(t *testing.T) {
	dlq := &fakeDLQ{dl: &relay.DeadLetter{Tenant: "acme", ID: "1-0"}}
	srv := startServer(t, Options{AdminToken: "admin-secret", DeadLetters: dlq})
	tests := []struct {
		method, path string
		want         int
		wantField    string // error.field, for 4xx
		wantCall     string // what the store got; "" = nothing
	}{
		{"GET", "/v1/admin/dlq", 200, "", "list"},
		{"GET", "/v1/admin/dlq/acme/1764000000000-3", 200, "", "get acme 1764000000000-3"},
		{"DELETE", "/v1/admin/dlq/acme/1-0", 204, "", "delete acme 1-0"},
		{"POST", "/v1/admin/dlq/acme/1-0/retry", 202, "", "retry acme 1-0"},
		{"POST", "/v1/admin/dlq", 405, "", ""},
		{"PUT", "/v1/admin/dlq/acme/1-0", 405, "", ""},
		{"GET", "/v1/admin/dlq/acme/1-0/retry", 405, "", ""},
		{"GET", "/v1/admin/dlq/acme", 404, "", ""},
		{"GET", "/v1/admin/dlq/acme/1-0/other", 404, "", ""},
		{"GET", "/v1/admin/dlq/acme/1-0/retry/x", 404, "", ""},
		{"GET", "/v1/admin/replays", 404, "", ""},
		{"GET", "/v1/admin/stats", 404, "", ""},
		{"GET", "/v1/admin", 404, "", ""},
		{"GET", "/v1/admin/", 404, "", ""},
		{"GET", "/v1/admin/dlq/ac%7Dme/1-0", 400, "tenantId", ""},
		{"GET", "/v1/admin/dlq/acme/1-0x", 400, "entryId", ""},
		{"DELETE", "/v1/admin/dlq/acme/abc", 400, "entryId", ""},
		{"POST", "/v1/admin/dlq/acme/-/retry", 400, "entryId", ""},
		{"GET", "/v1/admin/dlq/acme/1-", 400, "entryId", ""},
		{"GET", "/v1/admin/dlq/acme/42", 200, "", "get acme 42"},
		{"POST", "/v1/admin/dlq/acme/42/retry", 202, "", "retry acme 42"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := len(dlq.lastCalls())
			r := srv.call(t, tt.method, tt.path, adminAuth)
			if r.status != tt.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want >= 400 {
				if f := r.errField(t, "field"); f != tt.wantField {
					t.Errorf("error field: got %q, want %q", f, tt.wantField)
				}
			}
			if tt.want == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			calls := dlq.lastCalls()[before:]
			switch {
			case tt.wantCall == "" && len(calls) != 0:
				t.Errorf("store calls: got %v, want none", calls)
			case tt.wantCall != "" && (len(calls) != 1 || calls[0] != tt.wantCall):
				t.Errorf("store calls: got %v, want [%s]", calls, tt.wantCall)
			}
		})
	}
}

func TestAdmin_DLQ_list_query(t *testing.T) {
	dlq := &fakeDLQ{}
	srv := startServer(t, Options{AdminToken: "admin-secret", DeadLetters: dlq})
	tests := []struct {
		query     string
		want      relay.DLQQuery
		wantField string // 400 naming this field when set
	}{
		{"", relay.DLQQuery{}, ""},
		{"?tenantId=acme&type=approval.*&limit=7&cursor=abc", relay.DLQQuery{Tenant: "acme", Type: "approval.*", Limit: 7, Cursor: "abc"}, ""},
		{"?tenantId=*&limit=500", relay.DLQQuery{Tenant: "*", Limit: 500}, ""},
		{"?tenantId=", relay.DLQQuery{}, ""},
		{"?tenantId=a%7Db", relay.DLQQuery{}, "tenantId"},
		{"?type=Approval", relay.DLQQuery{}, "type"},
		{"?type=a..b", relay.DLQQuery{}, "type"},
		{"?limit=0", relay.DLQQuery{}, "limit"},
		{"?limit=501", relay.DLQQuery{}, "limit"},
		{"?limit=ten", relay.DLQQuery{}, "limit"},
		{"?limit=-1", relay.DLQQuery{}, "limit"},
		{"?tenant=acme", relay.DLQQuery{}, "tenant"},
		{"?tenantId=acme&tenantId=beta", relay.DLQQuery{}, "tenantId"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			before := len(dlq.lastCalls())
			r := srv.call(t, "GET", "/v1/admin/dlq"+tt.query, adminAuth)
			if tt.wantField != "" {
				if r.status != 400 || r.errField(t, "field") != tt.wantField {
					t.Fatalf("got %d %s, want 400 naming %s", r.status, r.body, tt.wantField)
				}
				if n := len(dlq.lastCalls()) - before; n != 0 {
					t.Errorf("the store was called %d times for a bad query", n)
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("got %d %s, want 200", r.status, r.body)
			}
			dlq.mu.Lock()
			got := dlq.query
			dlq.mu.Unlock()
			if got != tt.want {
				t.Errorf("query: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAdmin_DLQ_answers_in_the_documented_shapes(t *testing.T) {
	failedAt := time.Date(2026, 11, 26, 10, 30, 0, 123e6, time.UTC)
	ev := &event.Event{ID: "ev-1", Type: "approval.requested", Source: "crm", Timestamp: "2026-11-26T10:00:00.123Z",
		CorrelationID: "corr-1", TenantID: "acme", UserID: "u-1", Version: "1.0", Data: []byte(`{"k":"v"}`)}
	dl := relay.DeadLetter{Tenant: "acme", ID: "1764000000000-0", Event: ev, OriginalStreamID: "1763999999999-5",
		Group: "billing", Attempts: 4, LastError: "app answered 503: \"busy\"", FailedAt: failedAt}
	undecodable := relay.DeadLetter{Tenant: "acme", ID: "1763000000000-0", Group: "billing", Attempts: 1}
	dlq := &fakeDLQ{
		page: relay.DLQPage{Items: []relay.DeadLetter{dl, undecodable}, NextCursor: "next-page"},
		dl:   &dl,
		res: relay.PublishResult{Stream: "hyvve:events:{acme}", StreamID: "1764000000001-0", EventID: "ev-1",
			CorrelationID: "corr-1"},
	}
	srv := startServer(t, Options{AdminToken: "admin-secret", DeadLetters: dlq})
	wantDL := `{"tenantId":"acme","id":"1764000000000-0","event":{"id":"ev-1","type":"approval.requested","source":"crm",` +
		`"timestamp":"2026-11-26T10:00:00.123Z","correlationId":"corr-1","tenantId":"acme","userId":"u-1","version":"1.0",` +
		`"data":{"k":"v"}},"originalStreamId":"1763999999999-5","group":"billing","attempts":4,` +
		`"lastError":"app answered 503: \"busy\"","failedAt":"2026-11-26T10:30:00.123Z"}`
	wantUndecodable := `{"tenantId":"acme","id":"1763000000000-0","event":null,"originalStreamId":"","group":"billing",` +
		`"attempts":1,"lastError":"","failedAt":null}`
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string
	}{
		{"list", "GET", "/v1/admin/dlq", 200, `{"items":[` + wantDL + "," + wantUndecodable + `],"nextCursor":"next-page"}`},
		{"get", "GET", "/v1/admin/dlq/acme/1764000000000-0", 200, wantDL},
		{"retry", "POST", "/v1/admin/dlq/acme/1764000000000-0/retry", 202,
			`{"id":"ev-1","tenantId":"acme","correlationId":"corr-1","stream":"hyvve:events:{acme}","streamId":"1764000000001-0"}`},
		{"delete", "DELETE", "/v1/admin/dlq/acme/1764000000000-0", 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.call(t, tt.method, tt.path, adminAuth)
			if r.status != tt.wantStatus || r.body != tt.wantBody {
				t.Fatalf("got %d %s\nwant %d %s", r.status, r.body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantBody != "" && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type: got %q, want application/json", r.header.Get("Content-Type"))
			}
			if tt.wantBody != "" && !json.Valid([]byte(r.body)) {
				t.Errorf("body is not valid JSON: %s", r.body)
			}
		})
	}
	t.Run("an empty last page", func(t *testing.T) {
		dlq.mu.Lock()
		dlq.page = relay.DLQPage{Items: []relay.DeadLetter{}}
		dlq.mu.Unlock()
		r := srv.call(t, "GET", "/v1/admin/dlq", adminAuth)
		if want := `{"items":[],"nextCursor":""}`; r.status != 200 || r.body != want {
			t.Errorf("got %d %s, want 200 %s", r.status, r.body, want)
		}
	})
}

func TestAdmin_DLQ_maps_store_errors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"not found", fmt.Errorf("dead letter 1-0: %w", relay.ErrNotFound), 404, "not_found", ""},
		{"not retryable", fmt.Errorf("no event: %w", relay.ErrNotRetryable), 409, "not_retryable", ""},
		{"broker down", fmt.Errorf("xrange: %w", relay.ErrUnavailable), 503, "broker_unavailable", ""},
		{"bad cursor", &event.Error{Code: event.CodeInvalidField, Field: "cursor", Message: "bad cursor"}, 400, "invalid_field", "cursor"},
		{"other", errors.New("redis: WRONGTYPE"), 500, "internal", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, Options{AdminToken: "admin-secret", DeadLetters: &fakeDLQ{err: tt.err}})
			for _, req := range [][2]string{
				{"GET", "/v1/admin/dlq"}, {"GET", "/v1/admin/dlq/acme/1-0"},
				{"POST", "/v1/admin/dlq/acme/1-0/retry"}, {"DELETE", "/v1/admin/dlq/acme/1-0"},
			} {
				r := srv.call(t, req[0], req[1], adminAuth)
				if r.status != tt.wantStatus || r.errField(t, "code") != tt.wantCode || r.errField(t, "field") != tt.wantField {
					t.Errorf("%s %s: got %d %s, want %d %s field %q", req[0], req[1], r.status, r.body, tt.wantStatus, tt.wantCode, tt.wantField)
				}
				if tt.wantStatus == 503 && r.header.Get("Retry-After") != "1" {
					t.Errorf("%s %s: 503 without Retry-After: 1", req[0], req[1])
				}
			}
		})
	}
}
