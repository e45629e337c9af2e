package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/subscription"
)

// Sentinel errors of the dead-letter queue. Stores wrap them with %w.
var (
	// ErrNotFound means the dead letter (or other named entry) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotRetryable means the dead letter holds no event that can be
	// re-published (it could not be decoded, or names no group).
	ErrNotRetryable = errors.New("dead letter cannot be retried")
)

// DeadLetter is one entry of a tenant's dead-letter stream: the original
// event plus why and where its delivery failed.
type DeadLetter struct {
	Tenant string
	// ID is the dead-letter entry's own stream id.
	ID               string
	Event            *event.Event
	OriginalStreamID string
	Group            string
	Attempts         int
	LastError        string
	FailedAt         time.Time
}

// Bounds of one dead-letter listing, the same on every store.
const (
	DefaultDLQLimit = 50  // items per page when the query names none
	MaxDLQLimit     = 500 // most items per page
)

// DLQQuery selects dead letters. Empty Tenant means every tenant; Type is a
// subscription pattern ("approval.*"); Cursor is the opaque NextCursor of the
// previous page.
type DLQQuery struct {
	Tenant string
	Type   string
	Limit  int
	Cursor string
}

// Normalize checks q and fills its defaults, the same for every store:
// Tenant "*" means every tenant (""), a Limit of 0 or less is
// DefaultDLQLimit and one above MaxDLQLimit is MaxDLQLimit. A malformed
// tenant or type pattern is an *event.Error naming "tenantId" or "type";
// the cursor is the store's to check.
func (q *DLQQuery) Normalize() error {
	if q.Tenant == AllTenants {
		q.Tenant = ""
	}
	if q.Tenant != "" {
		if err := event.ValidateTenantID(q.Tenant); err != nil {
			return err
		}
	}
	if q.Type != "" {
		if err := subscription.ValidatePattern(q.Type); err != nil {
			return &event.Error{Code: event.CodeInvalidField, Field: "type", Message: err.Error()}
		}
	}
	if q.Limit <= 0 {
		q.Limit = DefaultDLQLimit
	}
	q.Limit = min(q.Limit, MaxDLQLimit)
	return nil
}

// DLQPage is one page of dead letters, newest first. NextCursor is empty on
// the last page.
type DLQPage struct {
	Items      []DeadLetter
	NextCursor string
}

// RetryEvent returns the event to re-publish when dl is retried: a copy
// targeted at the group that failed it. A dead letter without a valid event
// of its own tenant, or without a group, cannot be retried for that group
// alone: the error wraps ErrNotRetryable.
func RetryEvent(dl *DeadLetter) (*event.Event, error) {
	var why string
	switch {
	case dl.Event == nil:
		why = "it holds no decodable event"
	case dl.Group == "":
		why = "it names no consumer group"
	case dl.Event.TenantID != dl.Tenant:
		why = fmt.Sprintf("its event belongs to tenant %q", dl.Event.TenantID)
	default:
		if err := dl.Event.Validate(); err != nil {
			why = "its event is invalid: " + err.Error()
		}
	}
	if why != "" {
		return nil, fmt.Errorf("dead letter %s of tenant %s: %s: %w", dl.ID, dl.Tenant, why, ErrNotRetryable)
	}
	ev := *dl.Event
	ev.TargetGroup = dl.Group
	return &ev, nil
}
