// Package subscription owns event-type patterns and routing: which of an
// app's subscriptions receives an event of a given type.
//
// A pattern is a dotted list of segments (SPEC §3). A segment is a literal
// ([a-z0-9_-]+), "*" (exactly one segment of the type) or "**" (zero or more
// segments). Each event goes to ONE subscription: the most specific match.
//
// Everything here is safe for concurrent use; nothing does I/O.
package subscription

import (
	"errors"
	"fmt"
	"strings"
)

// Subscription asks for events whose type matches Pattern to be pushed to
// Path on the app.
type Subscription struct {
	Pattern string `json:"pattern" yaml:"pattern"`
	Path    string `json:"path" yaml:"path"`
}

// Limits of a pattern and a push path.
const (
	MaxPatternLen      = 128
	MaxPatternSegments = 10
	MaxPathLen         = 512
)

// Sentinel errors; every validation error wraps one of them.
var (
	ErrInvalidPattern = errors.New("invalid subscription pattern")
	ErrInvalidPath    = errors.New("invalid subscription path")
)

// ValidatePattern reports whether p is a valid pattern: 1 to 10 segments
// separated by ".", each "*", "**" or [a-z0-9_-]+, at most 128 characters
// in all. The error names the pattern and what is wrong with it.
func ValidatePattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w %q: empty", ErrInvalidPattern, p)
	case len(p) > MaxPatternLen:
		return fmt.Errorf("%w %q: %d characters, at most %d allowed", ErrInvalidPattern, p, len(p), MaxPatternLen)
	}
	n := 0
	for rest := p; ; {
		seg, tail, more := strings.Cut(rest, ".")
		n++
		if n > MaxPatternSegments {
			return fmt.Errorf("%w %q: more than %d segments", ErrInvalidPattern, p, MaxPatternSegments)
		}
		if problem := segmentProblem(seg); problem != "" {
			return fmt.Errorf("%w %q: segment %d %q %s", ErrInvalidPattern, p, n, seg, problem)
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// segmentProblem says what is wrong with one pattern segment, or "".
func segmentProblem(seg string) string {
	if seg == "" {
		return "is empty"
	}
	if seg == "*" || seg == "**" {
		return ""
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '*':
			return `mixes "*" with other characters (a wildcard is a whole segment)`
		case c >= 'A' && c <= 'Z':
			return "has an upper-case letter (types are lower case)"
		default:
			return fmt.Sprintf(`has %q: allowed are a-z, 0-9, '_', '-', or a whole segment "*" or "**"`, c)
		}
	}
	return ""
}

// ValidatePath reports whether path is a valid push path: it starts with
// "/", has no spaces, control characters, '?' or '#', and is at most 512
// bytes long.
func ValidatePath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%w %q: empty", ErrInvalidPath, path)
	case path[0] != '/':
		return fmt.Errorf("%w %q: must start with \"/\"", ErrInvalidPath, path)
	case len(path) > MaxPathLen:
		return fmt.Errorf("%w %q: %d bytes, at most %d allowed", ErrInvalidPath, path, len(path), MaxPathLen)
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == ' ':
			return fmt.Errorf("%w %q: contains a space", ErrInvalidPath, path)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w %q: contains control character %q", ErrInvalidPath, path, c)
		case c == '?' || c == '#':
			return fmt.Errorf("%w %q: contains %q (no query or fragment)", ErrInvalidPath, path, c)
		}
	}
	return nil
}

// Match reports whether the event type t matches the pattern p. "*" matches
// exactly one segment and "**" zero or more, so "crm.**" matches "crm" and
// "crm.a.b", and "**" matches every type. The empty type has no segments.
// Wildcards match any segment, an empty one included; a literal never
// matches an empty segment (valid types have none). Match does not
// allocate and works on unvalidated input.
func Match(p, t string) bool {
	// Segment-wise glob matching with backtracking to the last "**" (the
	// classic wildcard algorithm): a "**" first consumes nothing; on a
	// mismatch it takes one more segment of t and matching resumes after
	// it. Only the last "**" needs revisiting, so this is O(len(p)*len(t))
	// in the worst case and linear for the usual single trailing "**".
	//
	// Positions are byte offsets of a segment's start; end(s) = len(s)+1
	// means "no segments left" (so a trailing empty segment still counts).
	pEnd, tEnd := len(p)+1, len(t)+1
	pi, ti := 0, 0
	if p == "" {
		pi = pEnd
	}
	if t == "" {
		ti = tEnd
	}
	starP, starT := -1, 0 // resume points after the last "**"; starP < 0: none seen
	for ti < tEnd {
		if pi < pEnd {
			pseg, pnext := segment(p, pi)
			if pseg == "**" {
				starP, starT = pnext, ti
				pi = pnext
				continue
			}
			tseg, tnext := segment(t, ti)
			if pseg == "*" || (pseg == tseg && pseg != "") {
				pi, ti = pnext, tnext
				continue
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last "**" absorb one more segment of t and retry.
		_, starT = segment(t, starT)
		pi, ti = starP, starT
	}
	// t is exhausted: what remains of p must be "**" only.
	for pi < pEnd {
		pseg, pnext := segment(p, pi)
		if pseg != "**" {
			return false
		}
		pi = pnext
	}
	return true
}

// segment returns the segment of s starting at byte offset i and the offset
// of the next segment (len(s)+1 after the last one).
func segment(s string, i int) (seg string, next int) {
	if j := strings.IndexByte(s[i:], '.'); j >= 0 {
		return s[i : i+j], i + j + 1
	}
	return s[i:], len(s) + 1
}
