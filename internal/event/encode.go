package event

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// AppendJSON appends the event as one JSON object, the body pushed to apps,
// with the fields in this fixed order: id, type, source, timestamp,
// correlationId, tenantId, userId, version, data (raw bytes as stored; {} when
// empty), then only when set: replay (true), replayOf, replayId, targetGroup.
// The trace context is not part of the JSON (it travels in headers).
//
// Strings are escaped like encoding/json does (without HTML escaping);
// invalid UTF-8 becomes U+FFFD. Data is not re-validated: events from Decode
// and FromValues always hold a JSON object.
func (e *Event) AppendJSON(dst []byte) []byte {
	// Room for keys, quotes and the common case of strings without escapes.
	n := 160 + len(e.ID) + len(e.Type) + len(e.Source) + len(e.Timestamp) + len(e.CorrelationID) +
		len(e.TenantID) + len(e.UserID) + len(e.Version) + len(e.Data) + len(e.ReplayOf) +
		len(e.ReplayID) + len(e.TargetGroup)
	dst = slices.Grow(dst, n)
	dst = append(dst, `{"id":`...)
	dst = AppendJSONString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, e.Type)
	dst = append(dst, `,"source":`...)
	dst = AppendJSONString(dst, e.Source)
	dst = append(dst, `,"timestamp":`...)
	dst = AppendJSONString(dst, e.Timestamp)
	dst = append(dst, `,"correlationId":`...)
	dst = AppendJSONString(dst, e.CorrelationID)
	dst = append(dst, `,"tenantId":`...)
	dst = AppendJSONString(dst, e.TenantID)
	dst = append(dst, `,"userId":`...)
	dst = AppendJSONString(dst, e.UserID)
	dst = append(dst, `,"version":`...)
	dst = AppendJSONString(dst, e.Version)
	dst = append(dst, `,"data":`...)
	if len(e.Data) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, e.Data...)
	}
	if e.Replay {
		dst = append(dst, `,"replay":true`...)
	}
	if e.ReplayOf != "" {
		dst = append(dst, `,"replayOf":`...)
		dst = AppendJSONString(dst, e.ReplayOf)
	}
	if e.ReplayID != "" {
		dst = append(dst, `,"replayId":`...)
		dst = AppendJSONString(dst, e.ReplayID)
	}
	if e.TargetGroup != "" {
		dst = append(dst, `,"targetGroup":`...)
		dst = AppendJSONString(dst, e.TargetGroup)
	}
	return append(dst, '}')
}

// AppendJSONString appends s as a JSON string, escaped as encoding/json does
// (except <, > and &); invalid UTF-8 becomes U+FFFD. It does not allocate
// beyond growing dst.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, needing no escapes
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript source; escaped as encoding/json does.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendValues appends the Redis stream entry field/value pairs of the event,
// for XADD … Values: the nine event fields always (data as a JSON string, {}
// when empty), then "replay" "true", "replayOf", "replayId", "targetGroup",
// "traceparent" and "tracestate" only when set. Field names are the JSON
// names, so other languages can read the stream without the sidecar.
func (e *Event) AppendValues(dst []any) []any {
	data := "{}"
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	dst = append(dst,
		"id", e.ID,
		"type", e.Type,
		"source", e.Source,
		"timestamp", e.Timestamp,
		"correlationId", e.CorrelationID,
		"tenantId", e.TenantID,
		"userId", e.UserID,
		"version", e.Version,
		"data", data)
	if e.Replay {
		dst = append(dst, "replay", "true")
	}
	for _, kv := range [...]struct{ k, v string }{
		{"replayOf", e.ReplayOf},
		{"replayId", e.ReplayID},
		{"targetGroup", e.TargetGroup},
		{"traceparent", e.TraceParent},
		{"tracestate", e.TraceState},
	} {
		if kv.v != "" {
			dst = append(dst, kv.k, kv.v)
		}
	}
	return dst
}

// FromValues rebuilds an event from a stream entry's values as go-redis
// returns them (string values; []byte is accepted too). id, type and tenantId
// are required (missing_field); data, when present, must be a JSON object
// (invalid_field) and is {} when missing; replay is true only for "true".
// Unknown fields are ignored, since other writers may add fields. The error
// is always an *Error; FromValues does not apply the rules of Validate.
func FromValues(m map[string]any) (*Event, error) {
	e := &Event{}
	for _, f := range [...]struct {
		name     string
		dst      *string
		required bool
	}{
		{"id", &e.ID, true},
		{"type", &e.Type, true},
		{"source", &e.Source, false},
		{"timestamp", &e.Timestamp, false},
		{"correlationId", &e.CorrelationID, false},
		{"tenantId", &e.TenantID, true},
		{"userId", &e.UserID, false},
		{"version", &e.Version, false},
		{"replayOf", &e.ReplayOf, false},
		{"replayId", &e.ReplayID, false},
		{"targetGroup", &e.TargetGroup, false},
		{"traceparent", &e.TraceParent, false},
		{"tracestate", &e.TraceState, false},
	} {
		v, err := entryString(m, f.name)
		if err != nil {
			return nil, err
		}
		if v == "" && f.required {
			return nil, &Error{Code: CodeMissingField, Field: f.name, Message: "stream entry has no " + f.name}
		}
		*f.dst = v
	}
	replay, err := entryString(m, "replay")
	if err != nil {
		return nil, err
	}
	switch replay {
	case "", "false":
	case "true":
		e.Replay = true
	default:
		return nil, &Error{Code: CodeInvalidField, Field: "replay",
			Message: fmt.Sprintf("stream entry field replay is %s, want \"true\" or \"false\"", quote(replay))}
	}
	data, err := entryString(m, "data")
	if err != nil {
		return nil, err
	}
	if data == "" {
		data = "{}"
	}
	e.Data = []byte(data)
	if err := checkDataObject(e.Data); err != nil {
		return nil, err
	}
	return e, nil
}

// entryString returns the string value of stream entry field k, "" when absent.
func entryString(m map[string]any, k string) (string, error) {
	switch v := m[k].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	default:
		return "", &Error{Code: CodeInvalidField, Field: k,
			Message: fmt.Sprintf("stream entry field %s is a %T, want a string", k, v)}
	}
}
