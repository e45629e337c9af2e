package event

import (
	"strconv"
	"unicode/utf8"
)

// Error codes carried by *Error. The local API returns them verbatim in the
// SPEC §2 error body, so they are part of the public contract.
const (
	CodeInvalidJSON   = "invalid_json"   // the body is not one JSON object
	CodeMissingField  = "missing_field"  // a required field is absent after Fill
	CodeInvalidField  = "invalid_field"  // a field has the wrong type or value, or appears twice
	CodeUnknownField  = "unknown_field"  // a key that is not an event field (e.g. a typo)
	CodeReservedField = "reserved_field" // a delivery-side field only the sidecar may set
)

// Error is a decoding or validation failure. Every error returned by this
// package is an *Error; use errors.As to get it.
type Error struct {
	Code    string // one of the Code* constants
	Field   string // JSON name of the field; empty only for invalid_json on the whole body
	Message string // for humans: what is wrong and what is allowed
}

// Error returns the human-readable message.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// maxQuoted is how many characters of user input an error message repeats.
const maxQuoted = 64

// quote returns s as a Go-quoted string, cut to maxQuoted characters so that a
// hostile value cannot blow up error bodies and logs.
func quote(s string) string {
	return strconv.Quote(truncate(s))
}

// truncate cuts s to maxQuoted runes, marking the cut with "…".
func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	n := 0
	for i := range s {
		if n == maxQuoted {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// truncateBytes is truncate for a byte slice that may not be valid UTF-8.
func truncateBytes(b []byte) string {
	if len(b) > 4*maxQuoted {
		b = b[:4*maxQuoted]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	return truncate(string(b))
}
