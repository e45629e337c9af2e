package tracing

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/hyvve/sidecar/internal/event"
)

// Attributes of the sidecar's spans that the semantic conventions do not
// name.
const (
	TenantIDKey         = attribute.Key("hyvve.tenant_id")
	CorrelationIDKey    = attribute.Key("hyvve.correlation_id")
	EventTypeKey        = attribute.Key("hyvve.event_type")
	DuplicateKey        = attribute.Key("hyvve.duplicate")
	AttemptKey          = attribute.Key("hyvve.delivery.attempt")
	OutcomeKey          = attribute.Key("hyvve.delivery.outcome")
	PathKey             = attribute.Key("hyvve.delivery.path")
	NextAttemptAtKey    = attribute.Key("hyvve.delivery.next_attempt_at")
	DeadLetterReasonKey = attribute.Key("hyvve.dead_letter.reason")
	AttemptsKey         = attribute.Key("hyvve.dead_letter.attempts")
	// LinkKey is set on the link from a re-published event's delivery to
	// the original trace: "dead_letter_retry" or "replay".
	LinkKey = attribute.Key("hyvve.link")
)

// Values of hyvve.delivery.outcome on a delivery attempt's span.
const (
	OutcomeAck        = "ack"         // the app answered 2xx; the entry is acknowledged
	OutcomeRetry      = "retry"       // failed; another attempt is scheduled
	OutcomeDeadLetter = "dead_letter" // rejected (4xx) or failed the last attempt
)

// The sidecar's messaging operations (messaging.operation.name); span names
// are "<operation> <stream>".
const (
	OpSend       = "send"        // PRODUCER: an event written to its tenant stream
	OpProcess    = "process"     // CONSUMER: one delivery attempt to the app
	OpDeadLetter = "dead_letter" // CLIENT: the entry moved to the dead letters
)

// SpanName is the span name of op on stream (semantic conventions:
// "{messaging.operation.name} {messaging.destination.name}").
func SpanName(op, stream string) string {
	if stream == "" {
		return op
	}
	return op + " " + stream
}

// Attributes returns the messaging attributes of a span of op about ev on
// stream (stream may be "" when not known yet): messaging.system "redis",
// the operation's name and type (send, process or settle), destination,
// message id and conversation id (the correlation id), plus the
// tenant, correlation id and event type under hyvve.*. ev may be nil (an
// entry that could not be decoded).
func Attributes(op string, ev *event.Event, stream string) []attribute.KeyValue {
	a := make([]attribute.KeyValue, 0, 12) // room for the callers' extras
	a = append(a, semconv.MessagingSystemKey.String("redis"), semconv.MessagingOperationName(op))
	switch op {
	case OpSend:
		a = append(a, semconv.MessagingOperationTypeSend)
	case OpProcess:
		a = append(a, semconv.MessagingOperationTypeProcess)
	case OpDeadLetter:
		a = append(a, semconv.MessagingOperationTypeSettle)
	}
	if stream != "" {
		a = append(a, semconv.MessagingDestinationName(stream))
	}
	if ev == nil {
		return a
	}
	return append(a,
		semconv.MessagingMessageID(ev.ID),
		semconv.MessagingMessageConversationID(ev.CorrelationID),
		TenantIDKey.String(ev.TenantID),
		CorrelationIDKey.String(ev.CorrelationID),
		EventTypeKey.String(ev.Type),
	)
}
