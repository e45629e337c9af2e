package subscription

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRouter_routes_to_the_most_specific_subscription(t *testing.T) {
	// Declared least specific first, so declaration order cannot explain
	// the results.
	subs := []Subscription{
		{Pattern: "**", Path: "/all"},
		{Pattern: "approval.**", Path: "/approval-deep"},
		{Pattern: "*.granted", Path: "/any-granted"},
		{Pattern: "approval.*", Path: "/approval-one"},
		{Pattern: "approval.granted", Path: "/granted"},
		{Pattern: "crm.*.created", Path: "/crm-created"},
		{Pattern: "crm.contact.*", Path: "/crm-contact"},
		{Pattern: "crm.**.deleted", Path: "/crm-deleted"},
		{Pattern: "*.*.deleted", Path: "/any-deleted"},
	}
	r, err := NewRouter(subs)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, wantPath string
	}{
		{"approval.granted", "/granted"},         // exact beats everything
		{"approval.rejected", "/approval-one"},   // one "*" beats "**"
		{"approval.step.done", "/approval-deep"}, // only "**" patterns match
		{"approval", "/approval-deep"},           // "**" matches zero segments
		{"user.granted", "/any-granted"},
		{"user.joined", "/all"},
		// both have one "*" and two literals: declaration order decides
		{"crm.contact.created", "/crm-created"},
		{"crm.contact.updated", "/crm-contact"},
		// fewer "**" beats more literals
		{"crm.lead.deleted", "/any-deleted"},
		{"crm.contact.deleted", "/crm-contact"}, // fewer "*" beats a literal last segment
		{"crm.a.b.deleted", "/crm-deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			// twice: the second answer comes from the cache
			for range 2 {
				got, ok := r.Route(tt.typ)
				if !ok || got.Path != tt.wantPath {
					t.Fatalf("Route(%q) = %+v, %v; want path %q", tt.typ, got, ok, tt.wantPath)
				}
			}
		})
	}
}

func TestRouter_breaks_ties_by_declaration_order(t *testing.T) {
	tests := []struct {
		name     string
		subs     []Subscription
		typ      string
		wantPath string
	}{
		{
			name:     "same shape",
			subs:     []Subscription{{Pattern: "*.b.c", Path: "/first"}, {Pattern: "a.*.c", Path: "/second"}},
			typ:      "a.b.c",
			wantPath: "/first",
		},
		{
			name:     "same shape reversed",
			subs:     []Subscription{{Pattern: "a.*.c", Path: "/first"}, {Pattern: "*.b.c", Path: "/second"}},
			typ:      "a.b.c",
			wantPath: "/first",
		},
		{
			name:     "duplicate exact pattern",
			subs:     []Subscription{{Pattern: "a.b", Path: "/first"}, {Pattern: "a.b", Path: "/second"}},
			typ:      "a.b",
			wantPath: "/first",
		},
		{
			name:     "duplicate wildcard pattern",
			subs:     []Subscription{{Pattern: "a.*", Path: "/first"}, {Pattern: "a.*", Path: "/second"}},
			typ:      "a.b",
			wantPath: "/first",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRouter(tt.subs)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := r.Route(tt.typ)
			if !ok || got.Path != tt.wantPath {
				t.Errorf("Route(%q) = %+v, %v; want path %q", tt.typ, got, ok, tt.wantPath)
			}
		})
	}
}

func TestRouter_reports_no_match(t *testing.T) {
	r, err := NewRouter([]Subscription{{Pattern: "approval.*", Path: "/a"}, {Pattern: "crm.contact.created", Path: "/c"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"user.joined", "approval", "approval.granted.late", "crm.contact", "", strings.Repeat("x.", 100) + "x"} {
		for range 2 { // uncached, then cached
			if got, ok := r.Route(typ); ok {
				t.Errorf("Route(%q) = %+v, true; want no match", typ, got)
			}
		}
	}

	empty, err := NewRouter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := empty.Route("approval.granted"); ok {
		t.Errorf("empty router: Route = %+v, true; want no match", got)
	}
	if empty.Len() != 0 {
		t.Errorf("empty router: Len() = %d, want 0", empty.Len())
	}
}

func TestNewRouter_rejects_bad_entries(t *testing.T) {
	tests := []struct {
		name    string
		subs    []Subscription
		wantIs  error
		wantErr string
	}{
		{
			name:    "bad pattern",
			subs:    []Subscription{{Pattern: "a.b", Path: "/ok"}, {Pattern: "Approval.*", Path: "/x"}},
			wantIs:  ErrInvalidPattern,
			wantErr: `subscription 2 (pattern "Approval.*", path "/x"): invalid subscription pattern "Approval.*": segment 1 "Approval" has an upper-case letter`,
		},
		{
			name:    "empty pattern",
			subs:    []Subscription{{Path: "/x"}},
			wantIs:  ErrInvalidPattern,
			wantErr: `subscription 1 (pattern "", path "/x"): invalid subscription pattern "": empty`,
		},
		{
			name:    "path without slash",
			subs:    []Subscription{{Pattern: "a.*", Path: "events"}},
			wantIs:  ErrInvalidPath,
			wantErr: `subscription 1 (pattern "a.*", path "events"): invalid subscription path "events": must start with "/"`,
		},
		{
			name:    "path with query",
			subs:    []Subscription{{Pattern: "a.*", Path: "/events?x=1"}},
			wantIs:  ErrInvalidPath,
			wantErr: `contains '?'`,
		},
		{
			name:    "missing path",
			subs:    []Subscription{{Pattern: "a.*"}},
			wantIs:  ErrInvalidPath,
			wantErr: `subscription 1 (pattern "a.*", path ""): invalid subscription path "": empty`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRouter(tt.subs)
			if err == nil {
				t.Fatalf("got router %v, want an error", r)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("got %v, want it to wrap %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestRouter_Subscriptions_returns_a_copy_in_declaration_order(t *testing.T) {
	subs := []Subscription{{Pattern: "**", Path: "/all"}, {Pattern: "a.b", Path: "/ab"}, {Pattern: "a.*", Path: "/a"}}
	r, err := NewRouter(subs)
	if err != nil {
		t.Fatal(err)
	}
	subs[0].Path = "/changed-by-caller"
	got := r.Subscriptions()
	want := []Subscription{{Pattern: "**", Path: "/all"}, {Pattern: "a.b", Path: "/ab"}, {Pattern: "a.*", Path: "/a"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Subscriptions() = %v, want %v", got, want)
	}
	got[1].Path = "/changed-by-reader"
	if s, _ := r.Route("a.b"); s.Path != "/ab" {
		t.Errorf("after changing the returned slice: Route(a.b).Path = %q, want /ab", s.Path)
	}
	if r.Len() != 3 {
		t.Errorf("Len() = %d, want 3", r.Len())
	}
}

func TestRouter_is_safe_for_concurrent_use(t *testing.T) {
	r, err := NewRouter([]Subscription{{Pattern: "a.*", Path: "/a"}, {Pattern: "**", Path: "/all"}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				// more distinct types than the cache holds, to exercise eviction
				typ := fmt.Sprintf("b.t%d", (g*2000+i)%5000)
				if s, ok := r.Route(typ); !ok || s.Path != "/all" {
					t.Errorf("Route(%q) = %+v, %v; want /all", typ, s, ok)
					return
				}
				if s, ok := r.Route("a.x"); !ok || s.Path != "/a" {
					t.Errorf("Route(a.x) = %+v, %v; want /a", s, ok)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRouter_Route_does_not_allocate_for_a_cached_type(t *testing.T) {
	r, err := NewRouter(benchSubscriptions(1000))
	if err != nil {
		t.Fatal(err)
	}
	typ := "module999.entity.action"
	if _, ok := r.Route(typ); !ok {
		t.Fatalf("Route(%q) found nothing", typ)
	}
	if allocs := testing.AllocsPerRun(100, func() { r.Route(typ) }); allocs != 0 {
		t.Errorf("got %v allocations per Route, want 0", allocs)
	}
}

// benchSubscriptions returns n subscriptions of mixed shapes; the type
// "module{n-1}.entity.action" is matched by the last, least specific
// one only after every other pattern was tried.
func benchSubscriptions(n int) []Subscription {
	subs := make([]Subscription, 0, n)
	for i := range n - 1 {
		var p string
		switch i % 3 {
		case 0:
			p = fmt.Sprintf("module%d.entity.action", i)
		case 1:
			p = fmt.Sprintf("module%d.*", i)
		default:
			p = fmt.Sprintf("module%d.**", i)
		}
		subs = append(subs, Subscription{Pattern: p, Path: fmt.Sprintf("/events/%d", i)})
	}
	return append(subs, Subscription{Pattern: "**", Path: "/all"})
}

func BenchmarkRoute(b *testing.B) {
	r, err := NewRouter(benchSubscriptions(1000))
	if err != nil {
		b.Fatal(err)
	}
	const typ = "module999.entity.action"
	b.Run("cached", func(b *testing.B) {
		r.Route(typ)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := r.Route(typ); !ok {
				b.Fatal("no route")
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		// the cost of a cache miss: every pattern tried, then cached
		b.ReportAllocs()
		for b.Loop() {
			r.cache.Purge()
			if _, ok := r.Route(typ); !ok {
				b.Fatal("no route")
			}
		}
	})
}
