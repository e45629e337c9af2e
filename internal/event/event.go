// Package event owns the HYVVE event model: decoding a published event from
// JSON, filling the fields the sidecar supplies, validating every rule of
// SPEC §1, and encoding an event to JSON and to Redis stream entry fields.
//
// Nothing in this package does I/O. All functions are safe for concurrent use;
// an *Event is not, and belongs to one goroutine at a time.
package event

import (
	"time"

	"github.com/google/uuid"
)

// Event is one platform event. String fields hold exactly what was published
// (or filled in by the sidecar); Data holds the raw JSON object as received.
type Event struct {
	ID            string
	Type          string
	Source        string
	Timestamp     string
	CorrelationID string
	TenantID      string
	UserID        string
	Version       string
	Data          []byte // raw JSON object; never nil after Fill

	// Delivery-side fields (SPEC §5), set only by the sidecar on replay.
	Replay      bool
	ReplayOf    string
	ReplayID    string
	TargetGroup string

	// W3C trace context stored with the entry (not part of the JSON body).
	TraceParent string
	TraceState  string
}

// Defaults are the values Fill uses for fields absent from the body.
// Header values are used before the sidecar-wide defaults.
type Defaults struct {
	HeaderTenantID      string           // X-Tenant-Id
	HeaderCorrelationID string           // X-Correlation-Id
	HeaderUserID        string           // X-User-Id
	Tenant              string           // --tenant
	Source              string           // --source
	Now                 func() time.Time // nil means time.Now
}

// Values Fill uses when neither the body nor a header supplies the field.
const (
	DefaultUserID  = "system"
	DefaultVersion = "1.0"
)

// timestampLayout is RFC 3339 in UTC with exactly millisecond precision
// ("2026-11-26T10:00:00.123Z"); the zeros keep trailing zeros.
const timestampLayout = "2006-01-02T15:04:05.000Z"

// Fill sets every absent (empty) field as SPEC §1 prescribes: the body wins
// over a header, a header over the sidecar's defaults. It never overwrites a
// field that is already set, so calling it twice changes nothing. Fill does
// not validate; call Validate afterwards.
func (e *Event) Fill(d Defaults) {
	if e.ID == "" {
		// NewV7 fails only when crypto/rand fails, which since Go 1.24 aborts
		// the process instead of returning an error.
		e.ID = uuid.Must(uuid.NewV7()).String()
	}
	if e.Timestamp == "" {
		now := time.Now
		if d.Now != nil {
			now = d.Now
		}
		var buf [len(timestampLayout)]byte
		e.Timestamp = string(now().UTC().AppendFormat(buf[:0], timestampLayout))
	}
	e.TenantID = first(e.TenantID, d.HeaderTenantID, d.Tenant)
	if e.CorrelationID = first(e.CorrelationID, d.HeaderCorrelationID); e.CorrelationID == "" {
		e.CorrelationID = uuid.NewString()
	}
	e.UserID = first(e.UserID, d.HeaderUserID, DefaultUserID)
	e.Source = first(e.Source, d.Source)
	e.Version = first(e.Version, DefaultVersion)
	if len(e.Data) == 0 {
		e.Data = []byte("{}")
	}
}

// first returns the first non-empty string of vs, or "".
func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
