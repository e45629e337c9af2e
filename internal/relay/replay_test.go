package relay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
)

func TestReplayRequest_Validate(t *testing.T) {
	from, to := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	many := make([]string, MaxReplayTypes+1)
	for i := range many {
		many[i] = "a.b"
	}
	tests := []struct {
		name      string
		req       ReplayRequest
		code      string // "" = valid
		field     string
		inMessage string
	}{
		{"one tenant", ReplayRequest{Tenant: "acme", From: from, To: to}, "", "", ""},
		{"every tenant, types and group", ReplayRequest{Tenant: "*", From: from, To: to, Types: []string{"approval.*", "crm.**"}, Group: "billing.v2:eu-1"}, "", "", ""},
		{"no tenant", ReplayRequest{From: from, To: to}, event.CodeMissingField, "tenantId", `"*"`},
		{"tenant with a brace", ReplayRequest{Tenant: "ac}me", From: from, To: to}, event.CodeInvalidField, "tenantId", ""},
		{"no from", ReplayRequest{Tenant: "acme", To: to}, event.CodeMissingField, "from", ""},
		{"no to", ReplayRequest{Tenant: "acme", From: from}, event.CodeMissingField, "to", ""},
		{"from after to", ReplayRequest{Tenant: "acme", From: to, To: from}, event.CodeInvalidField, "from", "must be before"},
		{"empty range", ReplayRequest{Tenant: "acme", From: from, To: from}, event.CodeInvalidField, "from", "must be before"},
		{"bad pattern", ReplayRequest{Tenant: "acme", From: from, To: to, Types: []string{"approval.*", "a..b"}}, event.CodeInvalidField, "types", "types[1]"},
		{"empty pattern", ReplayRequest{Tenant: "acme", From: from, To: to, Types: []string{""}}, event.CodeInvalidField, "types", "types[0]"},
		{"too many patterns", ReplayRequest{Tenant: "acme", From: from, To: to, Types: many}, event.CodeInvalidField, "types", "at most"},
		{"group with a space", ReplayRequest{Tenant: "acme", From: from, To: to, Group: "bill ing"}, event.CodeInvalidField, "group", ""},
		{"group too long", ReplayRequest{Tenant: "acme", From: from, To: to, Group: strings.Repeat("g", 65)}, event.CodeInvalidField, "group", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if tt.code == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Code != tt.code || ee.Field != tt.field || !strings.Contains(ee.Message, tt.inMessage) {
				t.Fatalf("got %#v, want %s naming %s with %q in the message", err, tt.code, tt.field, tt.inMessage)
			}
		})
	}
}

func TestMatchesAny(t *testing.T) {
	tests := []struct {
		patterns []string
		typ      string
		want     bool
	}{
		{nil, "approval.requested", true},
		{[]string{"approval.*"}, "approval.requested", true},
		{[]string{"user.*", "approval.*"}, "approval.granted", true},
		{[]string{"user.*", "approval.*"}, "crm.deal.won", false},
		{[]string{"crm.**"}, "crm.deal.won", true},
		{[]string{"approval.*"}, "", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, ",")+" "+tt.typ, func(t *testing.T) {
			if got := MatchesAny(tt.patterns, tt.typ); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidReplayID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d", true},
		{"0193A6C4-5F1E-7C3A-9B2D-4E8F0A1B2C3D", false}, // the stores make lower case
		{"0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3", false},
		{"0193a6c4x5f1e-7c3a-9b2d-4e8f0a1b2c3d", false},
		{"0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3g", false},
		{"../../../../etc/passwd-0000000000000", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidReplayID(tt.id); got != tt.want {
			t.Errorf("ValidReplayID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
