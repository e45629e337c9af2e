package relay

import (
	"encoding/base64"
	"strings"

	"github.com/hyvve/sidecar/internal/event"
)

// maxCursorLen bounds the cursor a client sends back.
const maxCursorLen = 256

// EncodeCursor makes a listing's opaque cursor from its two parts (a holds
// no space): base64url("<a> <b>"). Clients pass it back unchanged, so its
// layout may change.
func EncodeCursor(a, b string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(a + " " + b))
}

// DecodeCursor returns the two parts of a cursor EncodeCursor made; what it
// cannot read gives BadCursor's error. The caller checks the parts.
func DecodeCursor(s string) (a, b string, err error) {
	if len(s) > maxCursorLen {
		return "", "", BadCursor("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", "", BadCursor("not base64url")
	}
	a, b, ok := strings.Cut(string(raw), " ")
	if !ok {
		return "", "", BadCursor("malformed")
	}
	return a, b, nil
}

// BadCursor is the *event.Error (field "cursor") for a cursor this API did
// not return; why says what is wrong with it.
func BadCursor(why string) error {
	return &event.Error{Code: event.CodeInvalidField, Field: "cursor",
		Message: "cursor is not one this API returned (" + why + "): pass nextCursor of the previous page unchanged"}
}
