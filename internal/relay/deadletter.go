package relay

import (
	"errors"
	"time"

	"github.com/hyvve/sidecar/internal/event"
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

// DLQQuery selects dead letters. Empty Tenant means every tenant; Type is a
// subscription pattern ("approval.*"); Cursor is the opaque NextCursor of the
// previous page.
type DLQQuery struct {
	Tenant string
	Type   string
	Limit  int
	Cursor string
}

// DLQPage is one page of dead letters, newest first. NextCursor is empty on
// the last page.
type DLQPage struct {
	Items      []DeadLetter
	NextCursor string
}
