package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/subscription"
)

// Sentinel errors of replays. Stores wrap them with %w.
var (
	// ErrTooManyReplays means this sidecar already runs as many replay jobs
	// as it may (MaxRunningReplays); start the job later or on another sidecar.
	ErrTooManyReplays = errors.New("too many replays running")
)

// Statuses of a replay job.
const (
	ReplayRunning = "running"
	ReplayDone    = "done"
	ReplayFailed  = "failed"
)

// Bounds and timings of replay jobs, the same on every store.
const (
	// DefaultMaxRunningReplays is how many jobs one sidecar runs at once.
	DefaultMaxRunningReplays = 2
	// DefaultReplayListLimit and MaxReplayListLimit bound a job listing.
	DefaultReplayListLimit = 20
	MaxReplayListLimit     = 100

	// ReplayStaleAfter is how old a running job's heartbeat may get before a
	// reader declares its sidecar dead and the job failed.
	ReplayStaleAfter = 15 * time.Second
	// StaleReplayError and ShutdownReplayError are the errors recorded for a
	// job whose sidecar died, or stopped while running it.
	StaleReplayError    = "the sidecar running it stopped"
	ShutdownReplayError = "sidecar shutting down"
)

// Limits of a replay request.
const (
	// AllTenants as ReplayRequest.Tenant replays every registered tenant.
	AllTenants = "*"
	// MaxReplayTypes is the most type patterns one request may hold.
	MaxReplayTypes = 32
	// maxGroupLen is the longest consumer group name (as --group).
	maxGroupLen = 64
)

// ReplayRequest asks for the events of a time range to be published again.
type ReplayRequest struct {
	// Tenant is one tenant id, or AllTenants.
	Tenant string
	// From (inclusive) and To (exclusive) bound the range by the time the
	// broker stored each event (its stream id), at millisecond precision.
	From, To time.Time
	// Types are subscription patterns; an event is replayed when its type
	// matches any of them. Empty = every type.
	Types []string
	// Group, when set, limits delivery of the replayed events to that
	// consumer group (targetGroup); empty = every group that subscribes.
	Group string
}

// Validate checks what can be checked without the broker: the tenant id,
// the range, the patterns and the group name. The error is an *event.Error
// naming the request field ("tenantId", "from", "to", "types", "group").
func (r *ReplayRequest) Validate() error {
	if r.Tenant != AllTenants {
		if err := event.ValidateTenantID(r.Tenant); err != nil {
			var ee *event.Error
			if errors.As(err, &ee) && ee.Code == event.CodeMissingField {
				return &event.Error{Code: event.CodeMissingField, Field: "tenantId",
					Message: `tenantId is required: a tenant id, or "*" for every tenant`}
			}
			return err
		}
	}
	switch {
	case r.From.IsZero():
		return &event.Error{Code: event.CodeMissingField, Field: "from", Message: "from is required: an RFC 3339 time such as 2026-11-26T10:00:00Z"}
	case r.To.IsZero():
		return &event.Error{Code: event.CodeMissingField, Field: "to", Message: "to is required: an RFC 3339 time such as 2026-11-26T11:00:00Z"}
	case !r.From.Before(r.To):
		return &event.Error{Code: event.CodeInvalidField, Field: "from", Message: fmt.Sprintf(
			"from (%s) must be before to (%s)", r.From.UTC().Format(time.RFC3339Nano), r.To.UTC().Format(time.RFC3339Nano))}
	}
	if len(r.Types) > MaxReplayTypes {
		return &event.Error{Code: event.CodeInvalidField, Field: "types",
			Message: fmt.Sprintf("types holds %d patterns; at most %d are allowed", len(r.Types), MaxReplayTypes)}
	}
	for i, p := range r.Types {
		if err := subscription.ValidatePattern(p); err != nil {
			return &event.Error{Code: event.CodeInvalidField, Field: "types", Message: fmt.Sprintf("types[%d]: %v", i, err)}
		}
	}
	if r.Group != "" && !validGroup(r.Group) {
		return &event.Error{Code: event.CodeInvalidField, Field: "group", Message: fmt.Sprintf(
			"group %.80q must be 1-%d characters of A-Z a-z 0-9 . _ : - (a consumer group, as --group)", r.Group, maxGroupLen)}
	}
	return nil
}

// validGroup is the rule of --group: ^[A-Za-z0-9._:-]{1,64}$.
func validGroup(g string) bool {
	if g == "" || len(g) > maxGroupLen {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// MatchesAny reports whether the event type matches any of the patterns;
// no patterns match every type.
func MatchesAny(patterns []string, typ string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if subscription.Match(p, typ) {
			return true
		}
	}
	return false
}

// ReplayJob is the state of one replay job as the broker records it; any
// sidecar can read it.
type ReplayJob struct {
	ID     string
	Status string // ReplayRunning, ReplayDone or ReplayFailed
	Tenant string // a tenant id or AllTenants
	From   time.Time
	// To is where the job stops: the requested end clamped to StartedAt, so
	// a replay never reads its own output. RequestedTo is what was asked.
	To          time.Time
	RequestedTo time.Time
	Types       []string
	Group       string

	// Scanned counts the entries read in the range; Matched those that are
	// replayed (type matches, not themselves a replay, decodable);
	// Republished those written again so far.
	Scanned, Matched, Republished int64

	StartedAt  time.Time
	UpdatedAt  time.Time // heartbeat of the sidecar running it
	FinishedAt time.Time // zero while running
	Error      string    // why it failed
	Owner      string    // the sidecar instance running it
}

// ValidReplayID reports whether id has the shape of the job ids the stores
// make (lower-case UUIDs, 8-4-4-4-12 hex digits), so a malformed id is
// answered without asking the store.
func ValidReplayID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
