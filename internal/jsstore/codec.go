package jsstore

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/hyvve/sidecar/internal/event"
)

// quotedHeader lists (comma-separated) the headers of a message whose value
// is stored as a JSON string, because it starts or ends with white space,
// which NATS header parsing trims. Only userId and tracestate may (every
// other attribute is printable ASCII without spaces).
const quotedHeader = "hyvve-quoted"

var emptyData = []byte("{}")

// newMsg is the message that stores ev on subject: one header per event
// attribute (the field names of event.AppendValues, set as written, not
// canonicalised) and the data object as the body. The message shares ev's
// data; neither may be changed afterwards.
func newMsg(subject string, ev *event.Event) *nats.Msg {
	fields := [...]struct{ k, v string }{
		{"id", ev.ID},
		{"type", ev.Type},
		{"source", ev.Source},
		{"timestamp", ev.Timestamp},
		{"correlationId", ev.CorrelationID},
		{"tenantId", ev.TenantID},
		{"userId", ev.UserID},
		{"version", ev.Version},
		{"replay", ""},
		{"replayOf", ev.ReplayOf},
		{"replayId", ev.ReplayID},
		{"targetGroup", ev.TargetGroup},
		{"traceparent", ev.TraceParent},
		{"tracestate", ev.TraceState},
	}
	if ev.Replay {
		fields[8].v = "true"
	}
	// One backing array for every header value: one allocation, not one
	// per header.
	vals := make([]string, len(fields)+1)
	h := make(nats.Header, len(vals))
	var quoted []string
	n := 0
	for i, f := range fields {
		// The nine event attributes are always written (as in a Redis
		// entry); the optional ones only when set.
		if f.v == "" && i > 8-1 {
			continue
		}
		v := f.v
		if v != strings.TrimSpace(v) {
			v = string(event.AppendJSONString(nil, v))
			quoted = append(quoted, f.k)
		}
		vals[n] = v
		h[f.k] = vals[n : n+1 : n+1]
		n++
	}
	if len(quoted) > 0 {
		vals[n] = strings.Join(quoted, ",")
		h[quotedHeader] = vals[n : n+1 : n+1]
	}
	data := ev.Data
	if len(data) == 0 {
		data = emptyData
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}
}

// decodeEvent rebuilds the event stored by newMsg (see event.FromValues for
// what is required). Headers that are not event attributes are ignored.
func decodeEvent(h nats.Header, data []byte) (*event.Event, error) {
	vals := make(map[string]any, len(h)+1)
	for k, v := range h {
		if len(v) > 0 {
			vals[k] = v[0]
		}
	}
	if q := headerValue(h, quotedHeader); q != "" {
		for _, k := range strings.Split(q, ",") {
			s, _ := vals[k].(string)
			var v string
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, &event.Error{Code: event.CodeInvalidField, Field: k,
					Message: fmt.Sprintf("message header %s is listed in %s but is not a JSON string", k, quotedHeader)}
			}
			vals[k] = v
		}
	}
	if len(data) > 0 {
		vals["data"] = data
	}
	return event.FromValues(vals)
}
