// Package relay owns what happens between a broker and the app, whatever the
// broker is: the Store interface a broker implements, and the Dispatcher that
// reads events the app subscribed to, routes each to one subscription, pushes
// it to the app with bounded concurrency and acknowledges it only after the app
// answered 2xx.
//
// relay never imports a broker client or the local API; brokers (Redis
// Streams, embedded JetStream) implement the interfaces declared here.
package relay

import (
	"context"
	"errors"
	"time"

	"github.com/hyvve/sidecar/internal/event"
)

// Sentinel errors of the relay layer. Stores wrap them with %w.
var (
	// ErrUnavailable means the broker could not be reached within the bounded
	// retry; the caller may try again later. Nothing is known to be written.
	ErrUnavailable = errors.New("broker unavailable")
)

// PublishRequest is one event to append to its tenant's stream.
type PublishRequest struct {
	Event *event.Event
	// IdempotencyKey, when set, makes the publish happen at most once per key
	// and tenant within the store's idempotency window (24 h).
	IdempotencyKey string
}

// PublishResult is what the broker answered for one PublishRequest.
type PublishResult struct {
	Stream   string // the stream (key) written
	StreamID string // the broker's id of the entry
	// EventID and CorrelationID are those of the stored event: for a
	// duplicate, the first publish's.
	EventID       string
	CorrelationID string
	Duplicate     bool  // the idempotency key was seen: nothing new was written
	Err           error // nil, or wraps ErrUnavailable or another broker error
}

// Publisher appends events to their tenants' streams.
type Publisher interface {
	// Publish writes every request and fills res[i] for reqs[i]; len(res)
	// must equal len(reqs). It blocks until the broker answered or ctx ends.
	// Safe for concurrent use.
	Publish(ctx context.Context, reqs []PublishRequest, res []PublishResult)
	// Ping reports whether the broker answers.
	Ping(ctx context.Context) error
}

// Message is one entry read for this sidecar's consumer group.
type Message struct {
	Event    *event.Event
	Tenant   string
	Stream   string
	StreamID string
	// Attempt is the 1-based delivery attempt of this entry to the group.
	Attempt int
	// LastError is why the previous attempt failed, when the broker knows.
	LastError string
	// Err is set when the entry could not be decoded into an event; Event is
	// nil then and the entry is dead-lettered, never pushed.
	Err error
	// Ref is the store's own handle of the entry (a JetStream message, whose
	// reply subject acknowledges it); relay passes it back untouched.
	Ref any
}

// Subscriber reads the entries of all tenant streams for one consumer group.
type Subscriber interface {
	// Fetch returns up to max messages for this consumer. It blocks for a
	// short while (well under a second) when none are ready and may return
	// none. Safe for use by one goroutine at a time.
	Fetch(ctx context.Context, max int) ([]*Message, error)
	// Ack acknowledges messages as done for the group. Safe for concurrent use.
	Ack(ctx context.Context, msgs ...*Message) error
}

// Failures records failed deliveries in the broker, so the retry schedule
// survives a restart and is shared by every consumer of the group. Safe for
// concurrent use.
type Failures interface {
	// Retry records a failed attempt: the entry stays pending and becomes due
	// again (for any consumer of the group) no sooner than notBefore.
	Retry(ctx context.Context, m *Message, notBefore time.Time, lastError string) error
	// DeadLetter moves the entry to its tenant's dead letters and acknowledges
	// it in one atomic step. It reports false when the entry was no longer
	// pending for the group (another consumer finished it first).
	DeadLetter(ctx context.Context, m *Message, attempts int, lastError string) (bool, error)
}

// Inbox is everything the Dispatcher needs from a broker.
type Inbox interface {
	Subscriber
	Failures
}
