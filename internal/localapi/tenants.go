package localapi

import (
	"context"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/relay"
)

// The --tenants allow-list applies to the whole local API: publishing, and
// the admin API. A request that names a tenant outside the list gets 403
// tenant_not_allowed; listings across tenants (dead letters without a
// tenantId, stats, replay jobs) leave the other tenants out. The stores know
// nothing of the list, so the listings are filtered here, page by page.

// maxFilteredCalls bounds the store calls one filtered listing makes while
// its pages hold no allowed tenant.
const maxFilteredCalls = 4

// defaultReplayListLimit is the stores' number of replay jobs in a listing
// that names no limit.
const defaultReplayListLimit = 20

// tenantAllowed reports whether this sidecar serves tenant t: any tenant
// without --tenants, else only the listed ones ("*" never is).
func (s *Server) tenantAllowed(t string) bool {
	if s.tenants == nil {
		return true
	}
	_, ok := s.tenants[t]
	return ok
}

// tenantNotAllowed is the 403 answer for tenant t.
func tenantNotAllowed(t string) *apiError {
	return &apiError{Status: fasthttp.StatusForbidden, Code: "tenant_not_allowed", Field: "tenantId",
		Message: fmt.Sprintf("tenant %.64q is not in this sidecar's --tenants allow-list", t)}
}

// checkTenant returns the 403 for a tenant outside the allow-list, else nil.
func (s *Server) checkTenant(t string) error {
	if s.tenantAllowed(t) {
		return nil
	}
	if t == relay.AllTenants {
		return &apiError{Status: fasthttp.StatusForbidden, Code: "tenant_not_allowed", Field: "tenantId",
			Message: `this sidecar serves only the tenants of its --tenants allow-list: name one of them instead of "*"`}
	}
	return tenantNotAllowed(t)
}

// listDeadLetters lists dead letters within the allow-list. A query for one
// tenant is checked and passed on; a query across tenants is narrowed to the
// single allowed tenant, or its pages are filtered. A filtered page may hold
// fewer items than the limit, even none while NextCursor is set, as a store
// page already may; pages that filtering empties are skipped, up to
// maxFilteredCalls store calls.
func (s *Server) listDeadLetters(ctx context.Context, q relay.DLQQuery) (relay.DLQPage, error) {
	if s.tenants == nil {
		return s.o.DeadLetters.ListDeadLetters(ctx, q)
	}
	if q.Tenant != "" && q.Tenant != relay.AllTenants {
		if err := s.checkTenant(q.Tenant); err != nil {
			return relay.DLQPage{}, err
		}
		return s.o.DeadLetters.ListDeadLetters(ctx, q)
	}
	if len(s.tenants) == 1 {
		for t := range s.tenants {
			q.Tenant = t
		}
		return s.o.DeadLetters.ListDeadLetters(ctx, q)
	}
	var out relay.DLQPage
	for call := 1; ; call++ {
		page, err := s.o.DeadLetters.ListDeadLetters(ctx, q)
		if err != nil {
			return relay.DLQPage{}, err
		}
		for _, dl := range page.Items {
			if s.tenantAllowed(dl.Tenant) {
				out.Items = append(out.Items, dl)
			}
		}
		out.NextCursor = page.NextCursor
		if len(out.Items) > 0 || page.NextCursor == "" || call == maxFilteredCalls {
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}

// allowedReplays returns the jobs of allowed tenants among the most recent
// ones, at most limit (0 = the stores' default): the store is asked for a
// full listing, which is then filtered.
func (s *Server) allowedReplays(ctx context.Context, limit int) ([]relay.ReplayJob, error) {
	if s.tenants == nil {
		return s.o.Replays.ListReplays(ctx, limit)
	}
	if limit == 0 {
		limit = defaultReplayListLimit
	}
	jobs, err := s.o.Replays.ListReplays(ctx, relay.MaxReplayListLimit)
	if err != nil {
		return nil, err
	}
	out := jobs[:0:0]
	for _, j := range jobs {
		if s.tenantAllowed(j.Tenant) && len(out) < limit {
			out = append(out, j)
		}
	}
	return out, nil
}

// allowedStats is the Stats of the local API under an allow-list: each page
// holds only allowed tenants (pages that filtering empties are skipped, up
// to maxFilteredCalls store calls). TenantCount counts the allowed tenants
// the broker knows when the first page walked over all of them; otherwise
// (a later page, or more tenants than a page) it is an upper bound, the
// smaller of the broker's count and the size of the allow-list, since
// counting exactly would take stats of every tenant. The JetStream Groups
// (each group over all tenants) and the cluster-wide published counts name
// no tenant and are passed on as they are.
type allowedStats struct {
	Stats
	allowed func(tenant string) bool
	count   int
}

// BrokerStats returns one filtered page; see allowedStats.
func (a allowedStats) BrokerStats(ctx context.Context, limit int, cursor string) (BrokerStats, error) {
	var out BrokerStats
	fromStart := cursor == ""
	for call := 1; ; call++ {
		page, err := a.Stats.BrokerStats(ctx, limit, cursor)
		if err != nil {
			return BrokerStats{}, err
		}
		if call == 1 {
			out.PublishedPerMinute, out.Groups = page.PublishedPerMinute, page.Groups
		}
		for _, t := range page.Tenants {
			if a.allowed(t.Tenant) {
				out.Tenants = append(out.Tenants, t)
			}
		}
		out.NextCursor = page.NextCursor
		if len(out.Tenants) > 0 || page.NextCursor == "" || call == maxFilteredCalls {
			if fromStart && page.NextCursor == "" {
				out.TenantCount = len(out.Tenants) // every tenant was on the pages walked
			} else {
				out.TenantCount = min(page.TenantCount, a.count)
			}
			return out, nil
		}
		cursor = page.NextCursor
	}
}
