package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// Replays is what the admin API needs to run replay jobs (SPEC §5, §7).
// Every method is safe for concurrent use. A bad request gives an
// *event.Error naming the field; an unknown job wraps relay.ErrNotFound.
type Replays interface {
	// StartReplay records a new running job and starts it without waiting;
	// relay.ErrTooManyReplays when this sidecar runs as many as it may.
	StartReplay(ctx context.Context, req relay.ReplayRequest) (relay.ReplayJob, error)
	// GetReplay returns one job, whichever sidecar runs it.
	GetReplay(ctx context.Context, id string) (relay.ReplayJob, error)
	// ListReplays returns the most recent jobs, newest first.
	ListReplays(ctx context.Context, limit int) ([]relay.ReplayJob, error)
}

const (
	maxReplayBody = 64 << 10 // bytes of a POST /v1/admin/replays body
)

// handleReplays routes the replay endpoints; rest is the path after
// /v1/admin/replays/:
//
//	""     POST start a job; GET list the recent ones
//	<id>   GET  one job
func (s *Server) handleReplays(ctx *fasthttp.RequestCtx, rest string) {
	switch {
	case rest == "":
		switch string(ctx.Method()) {
		case "POST":
			s.handleReplayStart(ctx)
		case "GET", "HEAD":
			s.handleReplayList(ctx)
		default:
			ctx.Response.Header.Set("Allow", "GET, POST")
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "",
				fmt.Sprintf("%s needs GET or POST, got %s", ctx.Path(), ctx.Method()))
		}
	case !strings.Contains(rest, "/"):
		if s.allow(ctx, "GET") {
			s.handleReplayGet(ctx, rest)
		}
	default:
		s.adminNotFound(ctx)
	}
}

// replayBody is the body of POST /v1/admin/replays. Pointers tell an absent
// field from an empty one.
type replayBody struct {
	TenantID *string  `json:"tenantId"`
	From     *string  `json:"from"`
	To       *string  `json:"to"`
	Types    []string `json:"types"`
	Group    *string  `json:"group"`
}

// replayRequest decodes and checks the body: exactly one JSON object with
// only the known fields, from and to as RFC 3339 times. The rest is checked
// by relay.ReplayRequest.Validate and by the store.
func (s *Server) replayRequest(ctx *fasthttp.RequestCtx) (relay.ReplayRequest, error) {
	var req relay.ReplayRequest
	if mt, _, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType())); err != nil || mt != "application/json" {
		return req, &apiError{Status: fasthttp.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "Content-Type",
			Message: fmt.Sprintf("Content-Type must be application/json, got %.64q (with curl, add -H 'Content-Type: application/json')",
				ctx.Request.Header.ContentType())}
	}
	body, err := s.requestBody(ctx, maxReplayBody)
	if err != nil {
		var big *bodyTooLarge
		if errors.As(err, &big) {
			return req, &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "too_large",
				Message: big.describe("replay request")}
		}
		return req, err
	}
	var b replayBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return req, replayJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidJSON,
			Message: "the body must be one JSON object, with nothing after it"}
	}
	if b.TenantID != nil {
		req.Tenant = *b.TenantID
	}
	if b.Group != nil {
		req.Group = *b.Group
	}
	req.Types = b.Types
	if req.From, err = replayTime("from", b.From); err != nil {
		return req, err
	}
	if req.To, err = replayTime("to", b.To); err != nil {
		return req, err
	}
	return req, nil
}

// replayJSONError maps a decoding error to the SPEC error body, naming the
// field when there is one.
func replayJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		field, _, _ := strings.Cut(typeErr.Field, ".")
		want := map[string]string{"types": "an array of strings (type patterns)"}[field]
		if want == "" {
			want = "a string"
		}
		return &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: field,
			Message: fmt.Sprintf("%s must be %s, not a JSON %s", field, want, typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeUnknownField, Field: name,
			Message: fmt.Sprintf("unknown field %.64q; the fields of a replay are tenantId, from, to, types and group", name)}
	}
	return &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidJSON,
		Message: `the body must be {"tenantId":…,"from":…,"to":…,"types":[…],"group":…}: ` + err.Error()}
}

// replayTime parses from or to; absent or "" gives the zero time, which
// Validate reports as missing.
func replayTime(field string, v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: field,
			Message: fmt.Sprintf("%s %.64q must be an RFC 3339 time such as 2026-11-26T10:00:00Z", field, *v)}
	}
	return t, nil
}

func (s *Server) handleReplayStart(ctx *fasthttp.RequestCtx) {
	req, err := s.replayRequest(ctx)
	if err == nil && s.tenants != nil {
		// A malformed request is 400 before its tenant can be 403.
		if err = req.Validate(); err == nil {
			err = s.checkTenant(req.Tenant)
		}
	}
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	job, err := s.o.Replays.StartReplay(actx, req)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", adminPrefix+"replays/"+job.ID)
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendReplayJob(nil, &job))
}

func (s *Server) handleReplayList(ctx *fasthttp.RequestCtx) {
	limit, err := replayListLimit(ctx)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	jobs, err := s.allowedReplays(actx, limit)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	b := append(make([]byte, 0, 512*len(jobs)+16), `{"items":[`...)
	for i := range jobs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendReplayJob(b, &jobs[i])
	}
	b = append(b, "]}"...)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// replayListLimit reads the one query parameter of the listing, limit
// (1–100; 0 = the store's default); anything else is refused.
func replayListLimit(ctx *fasthttp.RequestCtx) (int, error) {
	args := ctx.QueryArgs()
	var bad error
	args.VisitAll(func(k, _ []byte) {
		if bad == nil && string(k) != "limit" {
			bad = &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeUnknownField, Field: string(k),
				Message: fmt.Sprintf("unknown query parameter %.64q; allowed: limit", k)}
		}
	})
	if bad != nil {
		return 0, bad
	}
	l := args.PeekMulti("limit")
	if len(l) == 0 {
		return 0, nil
	}
	n, err := strconv.Atoi(string(l[0]))
	if len(l) > 1 || err != nil || n < 1 || n > relay.MaxReplayListLimit {
		return 0, &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: "limit",
			Message: fmt.Sprintf("limit must be one integer from 1 to %d", relay.MaxReplayListLimit)}
	}
	return n, nil
}

func (s *Server) handleReplayGet(ctx *fasthttp.RequestCtx, id string) {
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	job, err := s.o.Replays.GetReplay(actx, id)
	if err == nil {
		err = s.checkTenant(job.Tenant)
	}
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(appendReplayJob(nil, &job))
}

// appendReplayJob writes {"id","status","tenantId","from","to","requestedTo",
// "types","group","scanned","matched","republished","startedAt","updatedAt",
// "finishedAt","error","owner"}; times are RFC 3339 UTC with milliseconds,
// finishedAt null while running.
func appendReplayJob(b []byte, j *relay.ReplayJob) []byte {
	str := func(k, v string) {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = event.AppendJSONString(b, v)
	}
	at := func(k string, t time.Time) {
		if t.IsZero() {
			b = append(b, ',', '"')
			b = append(b, k...)
			b = append(b, `":null`...)
			return
		}
		str(k, t.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	}
	num := func(k string, n int64) {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, n, 10)
	}
	b = append(b, `{"id":`...)
	b = event.AppendJSONString(b, j.ID)
	str("status", j.Status)
	str("tenantId", j.Tenant)
	at("from", j.From)
	at("to", j.To)
	at("requestedTo", j.RequestedTo)
	b = append(b, `,"types":[`...)
	for i, t := range j.Types {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendJSONString(b, t)
	}
	b = append(b, ']')
	str("group", j.Group)
	num("scanned", j.Scanned)
	num("matched", j.Matched)
	num("republished", j.Republished)
	at("startedAt", j.StartedAt)
	at("updatedAt", j.UpdatedAt)
	at("finishedAt", j.FinishedAt)
	str("error", j.Error)
	str("owner", j.Owner)
	return append(b, '}')
}
