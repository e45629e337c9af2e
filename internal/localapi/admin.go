package localapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/subscription"
)

// DeadLetters is what the admin API needs from the broker to manage dead
// letters (SPEC §7). Every method is safe for concurrent use. Malformed
// arguments give an *event.Error naming the field; a missing entry wraps
// relay.ErrNotFound.
type DeadLetters interface {
	// ListDeadLetters returns one page, newest first; see relay.DLQQuery.
	ListDeadLetters(ctx context.Context, q relay.DLQQuery) (relay.DLQPage, error)
	GetDeadLetter(ctx context.Context, tenant, id string) (*relay.DeadLetter, error)
	// RetryDeadLetter re-publishes the event for the failed group only and
	// removes the dead letter, atomically; it returns the new entry.
	RetryDeadLetter(ctx context.Context, tenant, id string) (relay.PublishResult, error)
	DeleteDeadLetter(ctx context.Context, tenant, id string) error
}

const (
	adminPrefix  = "/v1/admin/"
	adminTimeout = 10 * time.Second
)

// handleAdmin serves /v1/admin/…: the admin token first, then the route. New
// admin areas are one more case of the switch.
func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx) {
	if !s.adminAuthorized(ctx) {
		return
	}
	rest := strings.TrimPrefix(string(ctx.Path()), adminPrefix)
	area, rest, _ := strings.Cut(rest, "/")
	switch {
	case area == "dlq" && s.o.DeadLetters != nil:
		s.handleDLQ(ctx, rest)
	case area == "replays" && s.o.Replays != nil:
		s.handleReplays(ctx, rest)
	case area == "stats" && rest == "" && s.o.Stats != nil:
		if s.allow(ctx, "GET") {
			s.handleStats(ctx)
		}
	default:
		s.adminNotFound(ctx)
	}
}

// adminAuthorized checks "Authorization: Bearer <admin token>" in constant
// time. Without an admin token every admin request is refused: the admin API
// is never open.
func (s *Server) adminAuthorized(ctx *fasthttp.RequestCtx) bool {
	h := ctx.Request.Header.Peek("Authorization")
	const p = "Bearer "
	if s.o.AdminToken != "" && len(h) > len(p) && string(h[:len(p)]) == p &&
		subtle.ConstantTimeCompare(h[len(p):], []byte(s.o.AdminToken)) == 1 {
		return true
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="hyvve-sidecar admin"`)
	writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "Authorization",
		"missing or wrong admin token: send Authorization: Bearer <--admin-token>")
	return false
}

func (s *Server) adminNotFound(ctx *fasthttp.RequestCtx) {
	writeError(ctx, fasthttp.StatusNotFound, "not_found", "", fmt.Sprintf("no such endpoint: %s %s", ctx.Method(), ctx.Path()))
}

// handleDLQ routes the dead-letter endpoints; rest is the path after
// /v1/admin/dlq/:
//
//	""                      GET    list
//	<tenant>/<id>           GET    one dead letter; DELETE removes it
//	<tenant>/<id>/retry     POST   re-publish for the failed group
func (s *Server) handleDLQ(ctx *fasthttp.RequestCtx, rest string) {
	parts := strings.Split(rest, "/")
	switch {
	case rest == "":
		if s.allow(ctx, "GET") {
			s.handleDLQList(ctx)
		}
	case len(parts) == 2:
		switch string(ctx.Method()) {
		case "GET", "HEAD":
			s.handleDLQGet(ctx, parts[0], parts[1])
		case "DELETE":
			s.handleDLQDelete(ctx, parts[0], parts[1])
		default:
			ctx.Response.Header.Set("Allow", "GET, DELETE")
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "",
				fmt.Sprintf("%s needs GET or DELETE, got %s", ctx.Path(), ctx.Method()))
		}
	case len(parts) == 3 && parts[2] == "retry":
		if s.allow(ctx, "POST") {
			s.handleDLQRetry(ctx, parts[0], parts[1])
		}
	default:
		s.adminNotFound(ctx)
	}
}

// dlqQuery reads and validates the list query; unknown or repeated
// parameters are refused, so a typo is an error, not a different listing.
func dlqQuery(ctx *fasthttp.RequestCtx) (relay.DLQQuery, error) {
	args := ctx.QueryArgs()
	var bad error
	args.VisitAll(func(k, _ []byte) {
		if bad != nil {
			return
		}
		name := string(k)
		switch {
		case name != "tenantId" && name != "type" && name != "limit" && name != "cursor":
			bad = &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeUnknownField, Field: name,
				Message: fmt.Sprintf("unknown query parameter %.64q; allowed: tenantId, type, limit, cursor", name)}
		case len(args.PeekMulti(name)) > 1:
			bad = &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: name,
				Message: fmt.Sprintf("query parameter %s appears more than once", name)}
		}
	})
	if bad != nil {
		return relay.DLQQuery{}, bad
	}
	q := relay.DLQQuery{
		Tenant: string(args.Peek("tenantId")),
		Type:   string(args.Peek("type")),
		Cursor: string(args.Peek("cursor")),
	}
	if q.Tenant != "" && q.Tenant != "*" {
		if err := event.ValidateTenantID(q.Tenant); err != nil {
			return q, err
		}
	}
	if q.Type != "" {
		if err := subscription.ValidatePattern(q.Type); err != nil {
			return q, &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: "type", Message: err.Error()}
		}
	}
	if l := args.Peek("limit"); len(l) > 0 {
		n, err := strconv.Atoi(string(l))
		if err != nil || n < 1 || n > relay.MaxDLQLimit {
			return q, &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: "limit",
				Message: fmt.Sprintf("limit %.16q must be an integer from 1 to %d", l, relay.MaxDLQLimit)}
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) handleDLQList(ctx *fasthttp.RequestCtx) {
	q, err := dlqQuery(ctx)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	page, err := s.listDeadLetters(actx, q)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	b := append(make([]byte, 0, 512*len(page.Items)+64), `{"items":[`...)
	for i := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendDeadLetter(b, &page.Items[i])
	}
	b = append(b, `],"nextCursor":`...)
	b = event.AppendJSONString(b, page.NextCursor)
	b = append(b, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// entryRef validates the <tenantId>/<entryId> of a dead-letter path; a
// tenant outside the allow-list is 403.
func (s *Server) entryRef(tenant, id string) error {
	if err := event.ValidateTenantID(tenant); err != nil {
		return err
	}
	if err := s.checkTenant(tenant); err != nil {
		return err
	}
	// A Redis stream id (ms-seq) or a JetStream stream sequence; the store
	// checks the form it uses.
	ms, seq, dash := strings.Cut(id, "-")
	if !isDigits(ms) || dash && !isDigits(seq) || len(id) > 41 {
		return &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: "entryId",
			Message: fmt.Sprintf("entry id %.64q is not a dead letter's id such as 1764000000000-0 (Redis) or 42 (JetStream)", id)}
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (s *Server) handleDLQGet(ctx *fasthttp.RequestCtx, tenant, id string) {
	if err := s.entryRef(tenant, id); err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	dl, err := s.o.DeadLetters.GetDeadLetter(actx, tenant, id)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(appendDeadLetter(nil, dl))
}

func (s *Server) handleDLQRetry(ctx *fasthttp.RequestCtx, tenant, id string) {
	if err := s.entryRef(tenant, id); err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	res, err := s.o.DeadLetters.RetryDeadLetter(actx, tenant, id)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	s.log.Info("dead letter retried", "tenant", tenant, "dead_letter_id", id, "event_id", res.EventID,
		"stream_id", res.StreamID)
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendResult(nil, &res, tenant))
}

func (s *Server) handleDLQDelete(ctx *fasthttp.RequestCtx, tenant, id string) {
	if err := s.entryRef(tenant, id); err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := s.o.DeadLetters.DeleteDeadLetter(actx, tenant, id); err != nil {
		s.adminFail(ctx, err)
		return
	}
	s.log.Info("dead letter deleted", "tenant", tenant, "dead_letter_id", id)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// adminError maps the admin API's own errors and falls back to errorFor for
// the rest (validation, broker unavailable).
func adminError(err error) *apiError {
	switch {
	case errors.Is(err, relay.ErrNotFound):
		return &apiError{Status: fasthttp.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, relay.ErrNotRetryable):
		return &apiError{Status: fasthttp.StatusConflict, Code: "not_retryable", Message: err.Error()}
	case errors.Is(err, relay.ErrTooManyReplays):
		return &apiError{Status: fasthttp.StatusTooManyRequests, Code: "too_many_replays", Message: err.Error()}
	}
	return errorFor(err)
}

// adminFail answers an admin request that failed; broker and internal
// failures are logged.
func (s *Server) adminFail(ctx *fasthttp.RequestCtx, err error) {
	e := adminError(err)
	if e.Status >= 500 {
		if e.Status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.Set("Retry-After", "1")
		}
		s.log.Warn("admin request failed", "method", string(ctx.Method()), "path", string(ctx.Path()), "error", err)
	}
	writeError(ctx, e.Status, e.Code, e.Field, e.Message)
}

// appendDeadLetter writes {"tenantId","id","event","originalStreamId","group",
// "attempts","lastError","failedAt"}; event is null for an entry whose event
// could not be decoded, failedAt null when unknown.
func appendDeadLetter(b []byte, dl *relay.DeadLetter) []byte {
	b = append(b, `{"tenantId":`...)
	b = event.AppendJSONString(b, dl.Tenant)
	b = append(b, `,"id":`...)
	b = event.AppendJSONString(b, dl.ID)
	b = append(b, `,"event":`...)
	if dl.Event != nil {
		b = dl.Event.AppendJSON(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"originalStreamId":`...)
	b = event.AppendJSONString(b, dl.OriginalStreamID)
	b = append(b, `,"group":`...)
	b = event.AppendJSONString(b, dl.Group)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(dl.Attempts), 10)
	b = append(b, `,"lastError":`...)
	b = event.AppendJSONString(b, dl.LastError)
	b = append(b, `,"failedAt":`...)
	if dl.FailedAt.IsZero() {
		b = append(b, "null"...)
	} else {
		b = event.AppendJSONString(b, dl.FailedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	}
	return append(b, '}')
}
