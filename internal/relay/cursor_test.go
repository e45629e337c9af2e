package relay

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/hyvve/sidecar/internal/event"
)

func TestCursor_round_trips_and_refuses_what_it_did_not_make(t *testing.T) {
	a, b, err := DecodeCursor(EncodeCursor("acme", "1700000000000-3"))
	if err != nil || a != "acme" || b != "1700000000000-3" {
		t.Fatalf("round trip: got %q, %q, %v; want acme, 1700000000000-3", a, b, err)
	}
	tests := []struct{ name, cursor, why string }{
		{"too long", strings.Repeat("A", 257), "too long"},
		{"not base64url", "a+b/", "not base64url"},
		{"one part", base64.RawURLEncoding.EncodeToString([]byte("acme")), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeCursor(tt.cursor)
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Field != "cursor" || ee.Code != event.CodeInvalidField || !strings.Contains(ee.Message, "("+tt.why+")") {
				t.Errorf("got %v, want invalid_field cursor saying %q", err, tt.why)
			}
		})
	}
}
