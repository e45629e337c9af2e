package subscription

import (
	"fmt"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
)

const (
	// routeCacheSize bounds the per-type cache of Route results. A platform
	// has far fewer event types than this, so a warm router answers from
	// the cache alone.
	routeCacheSize = 4096
	// maxCachedTypeLen keeps types longer than any valid one (SPEC §1) out
	// of the cache, so junk cannot fill it with large keys.
	maxCachedTypeLen = 128
)

// Router picks the one subscription that receives an event of a given type:
// the most specific matching pattern. Specificity, from most to least:
//
//  1. an exact pattern (no wildcards);
//  2. fewer "**" segments;
//  3. fewer "*" segments;
//  4. more literal segments;
//  5. earlier declaration.
//
// So for "approval.granted" the order is approval.granted > approval.* >
// approval.** > **. A Router is immutable after NewRouter and safe for
// concurrent use.
type Router struct {
	subs  []Subscription // declaration order
	exact map[string]int // wildcard-free pattern → index of its first declaration
	wild  []int          // indexes of wildcard patterns, most specific first
	// cache maps an event type to the index of its subscription, -1 for
	// none. The lru.Cache does its own locking.
	cache *lru.Cache[string, int]
}

// NewRouter validates subs (patterns with ValidatePattern, paths with
// ValidatePath) and returns a Router over a copy of them. The error names
// the first bad entry by its 1-based position. An empty list is valid: such
// a Router routes nothing. Two subscriptions with the same pattern are
// allowed; the first one declared receives the events.
func NewRouter(subs []Subscription) (*Router, error) {
	r := &Router{
		subs:  slices.Clone(subs),
		exact: make(map[string]int),
	}
	type rank struct{ doubles, singles, literals int }
	ranks := make([]rank, len(r.subs))
	for i, s := range r.subs {
		err := ValidatePattern(s.Pattern)
		if err == nil {
			err = ValidatePath(s.Path)
		}
		if err != nil {
			return nil, fmt.Errorf("subscription %d (pattern %q, path %q): %w", i+1, s.Pattern, s.Path, err)
		}
		var k rank
		for seg := range strings.SplitSeq(s.Pattern, ".") {
			switch seg {
			case "**":
				k.doubles++
			case "*":
				k.singles++
			default:
				k.literals++
			}
		}
		if k.doubles == 0 && k.singles == 0 {
			if _, dup := r.exact[s.Pattern]; !dup {
				r.exact[s.Pattern] = i
			}
			continue
		}
		ranks[i] = k
		r.wild = append(r.wild, i)
	}
	// Stable, so equal ranks keep declaration order.
	slices.SortStableFunc(r.wild, func(a, b int) int {
		ka, kb := ranks[a], ranks[b]
		if ka.doubles != kb.doubles {
			return ka.doubles - kb.doubles
		}
		if ka.singles != kb.singles {
			return ka.singles - kb.singles
		}
		return kb.literals - ka.literals
	})
	cache, err := lru.New[string, int](routeCacheSize)
	if err != nil {
		return nil, fmt.Errorf("route cache: %w", err)
	}
	r.cache = cache
	return r, nil
}

// Route returns the subscription that receives events of type eventType,
// and false when no pattern matches. It does not block beyond a short
// internal lock; a type seen before costs one cache lookup and does not
// allocate. eventType is kept as a cache key, so it must be an ordinary
// (immutable) Go string.
func (r *Router) Route(eventType string) (Subscription, bool) {
	if len(r.subs) == 0 {
		return Subscription{}, false
	}
	var i int
	if len(eventType) > maxCachedTypeLen {
		i = r.lookup(eventType)
	} else if cached, ok := r.cache.Get(eventType); ok {
		i = cached
	} else {
		i = r.lookup(eventType)
		r.cache.Add(eventType, i)
	}
	if i < 0 {
		return Subscription{}, false
	}
	return r.subs[i], true
}

// lookup finds the index of the subscription for t without the cache, or -1.
func (r *Router) lookup(t string) int {
	if i, ok := r.exact[t]; ok {
		return i
	}
	for _, i := range r.wild {
		if Match(r.subs[i].Pattern, t) {
			return i
		}
	}
	return -1
}

// Subscriptions returns a copy of the subscriptions in declaration order.
func (r *Router) Subscriptions() []Subscription {
	return slices.Clone(r.subs)
}

// Len returns the number of subscriptions.
func (r *Router) Len() int {
	return len(r.subs)
}
