package jsstore

import (
	"github.com/nats-io/nats.go"

	"github.com/hyvve/sidecar/internal/event"
)

// newMsg is the message that stores ev on subject: one header per event
// attribute (the field names of event.AppendValues, set as written, not
// canonicalised) and the data object as the body.
func newMsg(subject string, ev *event.Event) *nats.Msg {
	var buf [32]any
	vals := ev.AppendValues(buf[:0])
	m := &nats.Msg{Subject: subject, Header: make(nats.Header, len(vals)/2+2)}
	for i := 0; i+1 < len(vals); i += 2 {
		k, v := vals[i].(string), vals[i+1].(string)
		if k == "data" {
			m.Data = []byte(v)
			continue
		}
		m.Header[k] = []string{v}
	}
	return m
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
	if len(data) > 0 {
		vals["data"] = data
	}
	return event.FromValues(vals)
}
