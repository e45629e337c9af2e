package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// fakeReplays is a Replays that answers what the test set and records the
// calls it got.
type fakeReplays struct {
	mu    sync.Mutex // guards the fields below
	err   error      // returned by every method when set
	job   relay.ReplayJob
	jobs  []relay.ReplayJob
	reqs  []relay.ReplayRequest
	calls []string
}

func (f *fakeReplays) StartReplay(_ context.Context, req relay.ReplayRequest) (relay.ReplayJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start")
	f.reqs = append(f.reqs, req)
	return f.job, f.err
}

func (f *fakeReplays) GetReplay(_ context.Context, id string) (relay.ReplayJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "get "+id)
	return f.job, f.err
}

func (f *fakeReplays) ListReplays(_ context.Context, limit int) ([]relay.ReplayJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("list %d", limit))
	return f.jobs, f.err
}

func (f *fakeReplays) lastCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// send makes a request with a body and Content-Type (none when empty).
func (ts testServer) send(t *testing.T, method, path, contentType, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", adminAuth)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ts.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

var testJob = relay.ReplayJob{
	ID: "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d", Status: relay.ReplayDone, Tenant: "acme",
	From:        time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
	To:          time.Date(2026, 11, 26, 10, 30, 0, 5e6, time.UTC),
	RequestedTo: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC),
	Types:       []string{"approval.*", "user.**"}, Group: "billing",
	Scanned: 1000, Matched: 10, Republished: 10,
	StartedAt:  time.Date(2026, 11, 26, 10, 30, 0, 5e6, time.UTC),
	UpdatedAt:  time.Date(2026, 11, 26, 10, 30, 1, 0, time.UTC),
	FinishedAt: time.Date(2026, 11, 26, 10, 30, 1, 250e6, time.UTC),
	Owner:      "pod-7-1a2b3c4d",
}

const testJobJSON = `{"id":"0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d","status":"done","tenantId":"acme",` +
	`"from":"2026-11-26T10:00:00.000Z","to":"2026-11-26T10:30:00.005Z","requestedTo":"2026-11-26T11:00:00.000Z",` +
	`"types":["approval.*","user.**"],"group":"billing","scanned":1000,"matched":10,"republished":10,` +
	`"startedAt":"2026-11-26T10:30:00.005Z","updatedAt":"2026-11-26T10:30:01.000Z","finishedAt":"2026-11-26T10:30:01.250Z",` +
	`"error":"","owner":"pod-7-1a2b3c4d"}`

func TestAdmin_replay_start_decodes_the_request_and_answers_202_with_the_job(t *testing.T) {
	rp := &fakeReplays{job: testJob}
	srv := startServer(t, Options{AdminToken: "admin-secret", Replays: rp})
	r := srv.send(t, "POST", "/v1/admin/replays", "application/json; charset=utf-8",
		`{"tenantId":"acme","from":"2026-11-26T10:00:00Z","to":"2026-11-26T12:00:00.5+01:00","types":["approval.*"],"group":"billing"}`)
	if r.status != 202 || r.body != testJobJSON {
		t.Fatalf("got %d %s\nwant 202 %s", r.status, r.body, testJobJSON)
	}
	if loc := r.header.Get("Location"); loc != "/v1/admin/replays/"+testJob.ID {
		t.Errorf("Location: got %q, want /v1/admin/replays/%s", loc, testJob.ID)
	}
	if !json.Valid([]byte(r.body)) {
		t.Errorf("body is not valid JSON")
	}
	rp.mu.Lock()
	got := rp.reqs[0]
	rp.mu.Unlock()
	want := relay.ReplayRequest{Tenant: "acme", From: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
		To: time.Date(2026, 11, 26, 11, 0, 0, 5e8, time.UTC), Types: []string{"approval.*"}, Group: "billing"}
	if got.Tenant != want.Tenant || !got.From.Equal(want.From) || !got.To.Equal(want.To) || got.Group != want.Group ||
		strings.Join(got.Types, ",") != "approval.*" {
		t.Errorf("request: got %+v, want %+v", got, want)
	}
}

func TestAdmin_replay_start_rejects_bad_bodies_naming_the_field(t *testing.T) {
	rp := &fakeReplays{job: testJob}
	srv := startServer(t, Options{AdminToken: "admin-secret", Replays: rp})
	const ok = `"tenantId":"acme","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"`
	tests := []struct {
		name, contentType, body string
		status                  int
		code, field             string
	}{
		{"no content type", "", `{` + ok + `}`, 415, "unsupported_media_type", "Content-Type"},
		{"form", "application/x-www-form-urlencoded", `{` + ok + `}`, 415, "unsupported_media_type", "Content-Type"},
		{"not JSON", "application/json", `{"tenantId":`, 400, "invalid_json", ""},
		{"an array", "application/json", `[]`, 400, "invalid_json", ""},
		{"two objects", "application/json", `{` + ok + `} {}`, 400, "invalid_json", ""},
		{"unknown field", "application/json", `{` + ok + `,"tenant":"acme"}`, 400, "unknown_field", "tenant"},
		{"types not an array", "application/json", `{` + ok + `,"types":"approval.*"}`, 400, "invalid_field", "types"},
		{"a type not a string", "application/json", `{` + ok + `,"types":[1]}`, 400, "invalid_field", "types"},
		{"from a number", "application/json", `{"tenantId":"acme","from":5,"to":"2026-11-26T11:00:00Z"}`, 400, "invalid_field", "from"},
		{"unparsable from", "application/json", `{"tenantId":"acme","from":"yesterday","to":"2026-11-26T11:00:00Z"}`, 400, "invalid_field", "from"},
		{"to without a zone", "application/json", `{"tenantId":"acme","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00"}`, 400, "invalid_field", "to"},
		{"too large", "application/json", `{` + ok + `,"group":"` + strings.Repeat("g", 70<<10) + `"}`, 413, "too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.send(t, "POST", "/v1/admin/replays", tt.contentType, tt.body)
			if r.status != tt.status || r.errField(t, "code") != tt.code || r.errField(t, "field") != tt.field {
				t.Fatalf("got %d %s, want %d %s naming %q", r.status, r.body, tt.status, tt.code, tt.field)
			}
		})
	}
	if calls := rp.lastCalls(); len(calls) != 0 {
		t.Errorf("the replayer got %v from refused requests, want nothing", calls)
	}
	// Validation the replayer does is passed on with its field.
	rp.mu.Lock()
	rp.err = &event.Error{Code: event.CodeInvalidField, Field: "group", Message: "no such group"}
	rp.mu.Unlock()
	r := srv.send(t, "POST", "/v1/admin/replays", "application/json", `{`+ok+`,"group":"nope"}`)
	if r.status != 400 || r.errField(t, "field") != "group" {
		t.Errorf("replayer's validation error: got %d %s, want 400 naming group", r.status, r.body)
	}
}

func TestAdmin_replay_routes_and_errors(t *testing.T) {
	tests := []struct {
		name, method, path string
		err                error
		status             int
		code, field        string
		call               string // what the replayer got; "" = nothing
	}{
		{"list", "GET", "/v1/admin/replays", nil, 200, "", "", "list 0"},
		{"list with a limit", "GET", "/v1/admin/replays?limit=100", nil, 200, "", "", "list 100"},
		{"limit 0", "GET", "/v1/admin/replays?limit=0", nil, 400, "invalid_field", "limit", ""},
		{"limit too high", "GET", "/v1/admin/replays?limit=101", nil, 400, "invalid_field", "limit", ""},
		{"limit twice", "GET", "/v1/admin/replays?limit=1&limit=2", nil, 400, "invalid_field", "limit", ""},
		{"unknown parameter", "GET", "/v1/admin/replays?status=running", nil, 400, "unknown_field", "status", ""},
		{"get", "GET", "/v1/admin/replays/" + testJob.ID, nil, 200, "", "", "get " + testJob.ID},
		{"unknown job", "GET", "/v1/admin/replays/" + testJob.ID, fmt.Errorf("replay: %w", relay.ErrNotFound), 404, "not_found", "", "get " + testJob.ID},
		{"malformed id", "GET", "/v1/admin/replays/x", &event.Error{Code: event.CodeInvalidField, Field: "id", Message: "bad"}, 400, "invalid_field", "id", "get x"},
		{"too many", "POST", "/v1/admin/replays", fmt.Errorf("busy: %w", relay.ErrTooManyReplays), 429, "too_many_replays", "", "start"},
		{"broker down", "POST", "/v1/admin/replays", fmt.Errorf("time: %w", relay.ErrUnavailable), 503, "broker_unavailable", "", "start"},
		{"delete a job", "DELETE", "/v1/admin/replays/" + testJob.ID, nil, 405, "method_not_allowed", "", ""},
		{"put the list", "PUT", "/v1/admin/replays", nil, 405, "method_not_allowed", "", ""},
		{"below a job", "GET", "/v1/admin/replays/" + testJob.ID + "/x", nil, 404, "not_found", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := &fakeReplays{job: testJob, jobs: []relay.ReplayJob{testJob, testJob}, err: tt.err}
			srv := startServer(t, Options{AdminToken: "admin-secret", Replays: rp})
			body := ""
			if tt.method == "POST" {
				body = `{"tenantId":"acme","from":"2026-11-26T10:00:00Z","to":"2026-11-26T11:00:00Z"}`
			}
			r := srv.send(t, tt.method, tt.path, "application/json", body)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status >= 400 && (r.errField(t, "code") != tt.code || r.errField(t, "field") != tt.field) {
				t.Errorf("got %s, want code %s naming %q", r.body, tt.code, tt.field)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			if tt.status == 503 && r.header.Get("Retry-After") != "1" {
				t.Errorf("503 without Retry-After: 1")
			}
			calls := rp.lastCalls()
			if tt.call == "" && len(calls) != 0 || tt.call != "" && (len(calls) != 1 || calls[0] != tt.call) {
				t.Errorf("replayer calls: got %v, want [%s]", calls, tt.call)
			}
		})
	}
	t.Run("list body", func(t *testing.T) {
		srv := startServer(t, Options{AdminToken: "admin-secret", Replays: &fakeReplays{jobs: []relay.ReplayJob{testJob}}})
		if r := srv.call(t, "GET", "/v1/admin/replays", adminAuth); r.status != 200 || r.body != `{"items":[`+testJobJSON+`]}` {
			t.Errorf("got %d %s, want 200 with the one job", r.status, r.body)
		}
		srv = startServer(t, Options{AdminToken: "admin-secret", Replays: &fakeReplays{}})
		if r := srv.call(t, "GET", "/v1/admin/replays", adminAuth); r.status != 200 || r.body != `{"items":[]}` {
			t.Errorf("no jobs: got %d %s, want 200 {\"items\":[]}", r.status, r.body)
		}
	})
	t.Run("a running job has finishedAt null", func(t *testing.T) {
		j := testJob
		j.Status, j.FinishedAt, j.Types, j.Group, j.Tenant = relay.ReplayRunning, time.Time{}, nil, "", "*"
		srv := startServer(t, Options{AdminToken: "admin-secret", Replays: &fakeReplays{job: j}})
		r := srv.call(t, "GET", "/v1/admin/replays/"+j.ID, adminAuth)
		for _, want := range []string{`"status":"running"`, `"finishedAt":null`, `"types":[]`, `"group":""`, `"tenantId":"*"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("got %s, want it to hold %s", r.body, want)
			}
		}
	})
	t.Run("needs the admin token", func(t *testing.T) {
		rp := &fakeReplays{job: testJob}
		srv := startServer(t, Options{AdminToken: "admin-secret", APIToken: "api-secret", Replays: rp})
		for _, auth := range []string{"", "Bearer api-secret"} {
			for _, m := range []string{"GET", "POST"} {
				if r := srv.call(t, m, "/v1/admin/replays", auth); r.status != 401 {
					t.Errorf("%s with %q: got %d, want 401", m, auth, r.status)
				}
			}
		}
		if calls := rp.lastCalls(); len(calls) != 0 {
			t.Errorf("the replayer got %v from unauthorized requests", calls)
		}
	})
}
