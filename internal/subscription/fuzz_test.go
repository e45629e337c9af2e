package subscription

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// patternRule is ValidatePattern's rule written as a regular expression (plus
// the length limit): 1 to 10 segments, each "*", "**" or [a-z0-9_-]+.
var patternRule = regexp.MustCompile(`^(\*\*|\*|[a-z0-9_-]+)(\.(\*\*|\*|[a-z0-9_-]+)){0,9}$`)

// matchRegexp is a second, independent oracle for Match on a valid pattern:
// the pattern becomes a regular expression over "." + t (t's segments each
// preceded by a dot; the empty type has none), where a literal is `\.lit`,
// "*" one segment `\.[^.]*` and "**" any number of them. Go's regexp is
// linear, so it is cheap however many "**" the pattern has.
func matchRegexp(p, t string) bool {
	var re strings.Builder
	re.WriteString(`^`)
	for seg := range strings.SplitSeq(p, ".") {
		switch seg {
		case "**":
			re.WriteString(`(?:\.[^.]*)*`)
		case "*":
			re.WriteString(`\.[^.]*`)
		default:
			re.WriteString(`\.` + regexp.QuoteMeta(seg))
		}
	}
	re.WriteString(`$`)
	s := ""
	if t != "" {
		s = "." + t
	}
	return regexp.MustCompile(re.String()).MatchString(s)
}

// FuzzValidatePattern checks ValidatePattern against its rule as a regular
// expression (errors wrap ErrInvalidPattern), and that for a pattern that
// validates, Match never panics on any type and agrees with matchRegexp.
func FuzzValidatePattern(f *testing.F) {
	for _, s := range [][2]string{
		{"approval.granted", "approval.granted"}, {"approval.*", "approval.granted.late"}, {"crm.**", "crm"},
		{"**", ""}, {"*", "a.b"}, {"a.**.z", "a.z.z"}, {"my-module.entity_1.v2", "my-module.entity_1.v2"},
		{"a.b.c.d.e.f.g.h.i.j", "a.b.c.d.e.f.g.h.i.j"}, {"a.b.c.d.e.f.g.h.i.j.k", ""}, {"", ""},
		{"Approval.granted", "approval.granted"}, {"approval..granted", "approval..granted"}, {".a", ".a"},
		{"a.", "a."}, {"approval.gr*", "approval.granted"}, {"approval.***", "approval.x"}, {"a b", "a b"},
		{"**.*.**", "a"}, {"a.**.b.**.c", "a.c.b"}, {"a.*", "a."}, {"*.b", ".b"}, {"a.**", "a.\xff.é"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, typ string) {
		err := ValidatePattern(p)
		if want := len(p) <= MaxPatternLen && patternRule.MatchString(p); (err == nil) != want {
			t.Fatalf("ValidatePattern(%q) = %v, want valid %v", p, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("ValidatePattern(%q) = %v, want it to wrap ErrInvalidPattern", p, err)
			}
			return
		}
		if got, want := Match(p, typ), matchRegexp(p, typ); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v (regexp oracle)", p, typ, got, want)
		}
	})
}

// rank is the specificity of a pattern as the Router documents it; lower
// sorts first. Exact patterns (no wildcards) come before all others.
type rank struct{ wild, doubles, singles, negLiterals int }

func rankOf(p string) rank {
	var k rank
	for seg := range strings.SplitSeq(p, ".") {
		switch seg {
		case "**":
			k.doubles++
		case "*":
			k.singles++
		default:
			k.negLiterals--
		}
	}
	if k.doubles+k.singles > 0 {
		k.wild = 1
	}
	return k
}

func (a rank) less(b rank) bool {
	if a.wild != b.wild {
		return a.wild < b.wild
	}
	if a.doubles != b.doubles {
		return a.doubles < b.doubles
	}
	if a.singles != b.singles {
		return a.singles < b.singles
	}
	return a.negLiterals < b.negLiterals
}

// routeReference picks the subscription for t by the Router's documented
// rule, naively: the first declared among the matching patterns of the
// lowest rank. -1 when none matches.
func routeReference(subs []Subscription, t string) int {
	best := -1
	for i, s := range subs {
		if !matchRegexp(s.Pattern, t) {
			continue
		}
		if best < 0 || rankOf(s.Pattern).less(rankOf(subs[best].Pattern)) {
			best = i
		}
	}
	return best
}

// FuzzRouter checks that the Router's choice is the most specific match as
// documented (against routeReference), that it is stable (the same answer
// uncached, cached, and from a second Router over the same list), and that
// declaration order only breaks ties: with the list reversed, the chosen
// pattern is still the same unless another pattern of the same rank also
// matches.
func FuzzRouter(f *testing.F) {
	for _, s := range [][6]string{
		{"**", "approval.**", "approval.*", "approval.granted", "approval.granted", "*.granted"},
		{"approval.*", "approval.**", "**", "*.granted", "approval.rejected", "x"},
		{"crm.*.created", "crm.contact.*", "crm.**.deleted", "*.*.deleted", "crm.contact.created", "**"},
		{"*.b.c", "a.*.c", "a.b", "a.b", "a.b.c", "a.**"},
		{"a.*", "a.*", "**.b", "*.**", "a.b", "**"},
		{"crm.**", "**.created", "a.**.z", "*", "crm", "bad pattern"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, p1, p2, p3, p4, typ, p5 string) {
		var subs []Subscription
		for i, p := range []string{p1, p2, p3, p4, p5} {
			if ValidatePattern(p) == nil {
				subs = append(subs, Subscription{Pattern: p, Path: "/s" + string(rune('0'+i))})
			}
		}
		r, err := NewRouter(subs)
		if err != nil {
			t.Fatalf("NewRouter(%v): %v", subs, err)
		}
		want := routeReference(subs, typ)
		for _, attempt := range []string{"uncached", "cached"} {
			got, ok := r.Route(typ)
			switch {
			case want < 0 && ok:
				t.Fatalf("%s: Route(%q) over %v = %+v, want no match", attempt, typ, subs, got)
			case want >= 0 && (!ok || got != subs[want]):
				t.Fatalf("%s: Route(%q) over %v = %+v, %v; want %+v", attempt, typ, subs, got, ok, subs[want])
			}
		}
		r2, err := NewRouter(subs)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := r2.Route(typ); want >= 0 && (!ok || got != subs[want]) {
			t.Fatalf("a second Router over %v routes %q to %+v, %v; want %+v", subs, typ, got, ok, subs[want])
		}

		reversed := slices.Clone(subs)
		slices.Reverse(reversed)
		rr, err := NewRouter(reversed)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := rr.Route(typ)
		if ok != (want >= 0) {
			t.Fatalf("reversing %v changed whether %q is routed: %v", subs, typ, ok)
		}
		if !ok {
			return
		}
		if rankOf(got.Pattern) != rankOf(subs[want].Pattern) {
			t.Fatalf("reversing %v routes %q to %q, of another rank than %q", subs, typ, got.Pattern, subs[want].Pattern)
		}
		ties := 0
		for _, s := range subs {
			if s.Pattern != subs[want].Pattern && rankOf(s.Pattern) == rankOf(subs[want].Pattern) && matchRegexp(s.Pattern, typ) {
				ties++
			}
		}
		if ties == 0 && got.Pattern != subs[want].Pattern {
			t.Fatalf("reversing %v routes %q to %q, want %q (no other pattern of its rank matches)", subs, typ, got.Pattern, subs[want].Pattern)
		}
	})
}
