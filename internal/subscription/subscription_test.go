package subscription

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, typ string
		want         bool
	}{
		// literals
		{"approval.granted", "approval.granted", true},
		{"approval.granted", "approval.rejected", false},
		{"approval.granted", "approval", false},
		{"approval", "approval.granted", false},
		{"approval.granted", "approval.granted.extra", false},
		{"approval.granted", "approval.grante", false},
		{"approval.grante", "approval.granted", false},
		// "*" is exactly one segment
		{"approval.*", "approval.granted", true},
		{"approval.*", "approval", false},
		{"approval.*", "approval.granted.late", false},
		{"*.granted", "approval.granted", true},
		{"*.*", "a.b", true},
		{"*.*", "a.b.c", false},
		{"*", "approval", true},
		{"*", "a.b", false},
		{"crm.*.created", "crm.contact.created", true},
		{"crm.*.created", "crm.created", false},
		// "**" is zero or more segments
		{"**", "approval.granted", true},
		{"**", "a", true},
		{"**", "a.b.c.d.e", true},
		{"crm.**", "crm", true},
		{"crm.**", "crm.contact", true},
		{"crm.**", "crm.contact.created", true},
		{"crm.**", "crmx.contact", false},
		{"crm.**", "billing.crm", false},
		{"**.created", "crm.contact.created", true},
		{"**.created", "created", true},
		{"**.created", "crm.contact.updated", false},
		{"a.**.z", "a.z", true},
		{"a.**.z", "a.b.z", true},
		{"a.**.z", "a.b.c.d.z", true},
		{"a.**.z", "a.z.z", true},
		{"a.**.z", "a.b.c", false},
		{"a.**.z", "z", false},
		{"a.**.z", "a", false},
		{"a.**.b.**.c", "a.x.b.y.c", true},
		{"a.**.b.**.c", "a.b.c", true},
		{"a.**.b.**.c", "a.c.b", false},
		{"a.**.*", "a", false},
		{"a.**.*", "a.b", true},
		{"a.**.*", "a.b.c", true},
		{"**.*.**", "a", true},
		{"**.**", "a.b", true},
		// the empty type has no segments
		{"**", "", true},
		{"**.**", "", true},
		{"*", "", false},
		{"a", "", false},
		{"a.**", "", false},
		// malformed types: a literal never matches an empty segment
		{"a.*", "a.", true},
		{"a.b", "a..b", false},
		{"a.**", "a..", true},
		{"*.b", ".b", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"|"+tt.typ, func(t *testing.T) {
			if got := Match(tt.pattern, tt.typ); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.typ, got, tt.want)
			}
			if got := matchReference(tt.pattern, tt.typ); got != tt.want {
				t.Errorf("matchReference(%q, %q) = %v, want %v (the test oracle is wrong)", tt.pattern, tt.typ, got, tt.want)
			}
		})
	}
}

func TestMatch_does_not_allocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("a.**.b.**.c", "a.x.y.b.z.c")
		Match("crm.*.created", "crm.contact.created")
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per run, want 0", allocs)
	}
}

// matchReference is the obvious recursive definition of Match, the oracle
// for FuzzMatch.
func matchReference(p, t string) bool {
	return matchSegments(splitSegments(p), splitSegments(t))
}

func splitSegments(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

func matchSegments(p, t []string) bool {
	if len(p) == 0 {
		return len(t) == 0
	}
	switch p[0] {
	case "**":
		// zero segments, or one more and stay on "**"
		return matchSegments(p[1:], t) || (len(t) > 0 && matchSegments(p, t[1:]))
	case "*":
		return len(t) > 0 && matchSegments(p[1:], t[1:])
	default:
		return len(t) > 0 && p[0] != "" && p[0] == t[0] && matchSegments(p[1:], t[1:])
	}
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"approval.*", "approval.granted"},
		{"a.**.z", "a.b.c.z"},
		{"**", ""},
		{"crm.**", "crm"},
		{"**.*.**", "a.b"},
		{"a.**.b.**.c", "a.b.b.c.c"},
		{"", ""},
		{"a..b", "a..b"},
		{"*.", "a."},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, typ string) {
		// The reference is exponential in the number of "**"; keep it cheap.
		if strings.Count(p, ".") > 12 || strings.Count(typ, ".") > 12 {
			t.Skip()
		}
		if got, want := Match(p, typ), matchReference(p, typ); got != want {
			t.Errorf("Match(%q, %q) = %v, want %v (reference)", p, typ, got, want)
		}
	})
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		pattern string
		wantErr string // substring of the error; "" means valid
	}{
		{"approval.granted", ""},
		{"approval.*", ""},
		{"crm.**", ""},
		{"**", ""},
		{"*", ""},
		{"a.**.z", ""},
		{"my-module.entity_1.v2", ""},
		{"a.b.c.d.e.f.g.h.i.j", ""},
		{"", "empty"},
		{"a.b.c.d.e.f.g.h.i.j.k", "more than 10 segments"},
		{strings.Repeat("a", 129), "129 characters, at most 128"},
		{"Approval.granted", `segment 1 "Approval" has an upper-case letter`},
		{"approval..granted", `segment 2 "" is empty`},
		{".approval", `segment 1 "" is empty`},
		{"approval.", `segment 2 "" is empty`},
		{"approval.gr*", `segment 2 "gr*" mixes "*"`},
		{"approval.***", `segment 2 "***" mixes "*"`},
		{"approval.granted!", `segment 2 "granted!" has '!'`},
		{"approval granted", `has ' '`},
		{"approval/granted", `has '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			err := ValidatePattern(tt.pattern)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("got %v, want it to wrap ErrInvalidPattern", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, fmt.Sprintf("%q", tt.pattern)) {
				t.Errorf("got error %q, want it to name the pattern and contain %q", msg, tt.wantErr)
			}
		})
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path    string
		wantErr string
	}{
		{"/events/approval", ""},
		{"/", ""},
		{"/a/b-c_d.e~f%20", ""},
		{"/" + strings.Repeat("a", 511), ""},
		{"", "empty"},
		{"events", `must start with "/"`},
		{"/" + strings.Repeat("a", 512), "513 bytes, at most 512"},
		{"/events approval", "contains a space"},
		{"/events?x=1", "contains '?'"},
		{"/events#x", "contains '#'"},
		{"/events\r\nX-Evil: 1", "control character"},
		{"/events\t", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := ValidatePath(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidPath) {
				t.Errorf("got %v, want it to wrap ErrInvalidPath", err)
			}
		})
	}
}
