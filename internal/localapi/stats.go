package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/metrics"
)

// Stats is what GET /v1/admin/stats needs from the broker (SPEC §7). Safe
// for concurrent use; a malformed cursor gives an *event.Error naming
// "cursor".
type Stats interface {
	// BrokerStats returns one page of tenants (at most limit, sorted, after
	// cursor) and the cluster-wide published count per minute of the last
	// hour.
	BrokerStats(ctx context.Context, limit int, cursor string) (BrokerStats, error)
}

// BrokerStats is the broker's part of the stats answer.
type BrokerStats struct {
	Tenants     []TenantStats `json:"tenants"`
	TenantCount int           `json:"tenantCount"` // tenants in the registry, all pages
	NextCursor  string        `json:"nextCursor"`  // "" = last page
	// PublishedPerMinute is the last 60 minutes, oldest first; the last one
	// is the current, partial minute.
	PublishedPerMinute []MinuteCount `json:"publishedPerMinute"`
	// Groups is each consumer group over all tenants, for a broker that
	// keeps one consumer per group for every tenant (JetStream): it cannot
	// tell a group's lag and pending per tenant, so TenantStats.Groups is
	// empty there. Omitted on Redis, where every tenant stream has its own
	// groups.
	Groups []GroupStats `json:"groups,omitempty"`
}

// TenantStats is one tenant's stream, dead letters and consumer groups.
type TenantStats struct {
	Tenant       string       `json:"tenantId"`
	StreamLength int64        `json:"streamLength"`
	DLQLength    int64        `json:"dlqLength"`
	Groups       []GroupStats `json:"groups"`
}

// GroupStats is one consumer group on one tenant stream. LagEstimated says
// Redis could not tell the lag (after trimming or deletes) and it was
// counted from LastDeliveredID instead, up to a bound (a lower bound then).
type GroupStats struct {
	Group           string `json:"group"`
	Consumers       int64  `json:"consumers"`
	Pending         int64  `json:"pending"`
	Lag             int64  `json:"lag"`
	LagEstimated    bool   `json:"lagEstimated"`
	LastDeliveredID string `json:"lastDeliveredId"`
}

// MinuteCount is the events published in the minute starting at Minute.
type MinuteCount struct {
	Minute time.Time `json:"minute"`
	Count  int64     `json:"count"`
}

const (
	defaultStatsLimit = 100
	maxStatsLimit     = 1000
)

// statsBody is the JSON of GET /v1/admin/stats.
type statsBody struct {
	GeneratedAt time.Time     `json:"generatedAt"`
	Tenants     []TenantStats `json:"tenants"`
	TenantCount int           `json:"tenantCount"`
	NextCursor  string        `json:"nextCursor"`
	// Groups: see BrokerStats.Groups (JetStream only).
	Groups []GroupStats `json:"groups,omitempty"`
	// DLQTotal and LagTotal sum the page's tenants (and Groups).
	DLQTotal int64        `json:"dlqTotal"`
	LagTotal int64        `json:"lagTotal"`
	Sidecar  sidecarRates `json:"sidecar"`
	Cluster  clusterStats `json:"cluster"`
}

type sidecarRates struct {
	PublishedPerSec float64         `json:"publishedPerSec"`
	DeliveredPerSec float64         `json:"deliveredPerSec"`
	FailedPerSec    float64         `json:"failedPerSec"`
	WindowSeconds   float64         `json:"windowSeconds"`
	PerMinute       []sidecarMinute `json:"perMinute"`
}

type sidecarMinute struct {
	Minute    time.Time `json:"minute"`
	Published int64     `json:"published"`
	Delivered int64     `json:"delivered"`
	Failed    int64     `json:"failed"`
}

type clusterStats struct {
	PublishedPerMinute []MinuteCount `json:"publishedPerMinute"`
}

// statsQuery reads limit and cursor; anything else is refused.
func statsQuery(ctx *fasthttp.RequestCtx) (limit int, cursor string, err error) {
	args := ctx.QueryArgs()
	args.VisitAll(func(k, _ []byte) {
		if err == nil && string(k) != "limit" && string(k) != "cursor" {
			err = &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeUnknownField, Field: string(k),
				Message: fmt.Sprintf("unknown query parameter %.64q; allowed: limit, cursor", k)}
		}
	})
	if err != nil {
		return 0, "", err
	}
	limit = defaultStatsLimit
	if l := args.Peek("limit"); len(l) > 0 {
		n, perr := strconv.Atoi(string(l))
		if perr != nil || n < 1 || n > maxStatsLimit {
			return 0, "", &apiError{Status: fasthttp.StatusBadRequest, Code: event.CodeInvalidField, Field: "limit",
				Message: fmt.Sprintf("limit %.16q must be an integer from 1 to %d", l, maxStatsLimit)}
		}
		limit = n
	}
	return limit, string(args.Peek("cursor")), nil
}

// handleStats serves GET /v1/admin/stats: one page of tenants from the
// broker, with this sidecar's own rates.
func (s *Server) handleStats(ctx *fasthttp.RequestCtx) {
	limit, cursor, err := statsQuery(ctx)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	actx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	bs, err := s.o.Stats.BrokerStats(actx, limit, cursor)
	if err != nil {
		s.adminFail(ctx, err)
		return
	}
	body := statsBody{
		GeneratedAt: time.Now().UTC(),
		Tenants:     bs.Tenants,
		TenantCount: bs.TenantCount,
		NextCursor:  bs.NextCursor,
		Groups:      bs.Groups,
		Sidecar:     rates(s.o.Rates),
		Cluster:     clusterStats{PublishedPerMinute: bs.PublishedPerMinute},
	}
	if body.Tenants == nil {
		body.Tenants = []TenantStats{}
	}
	if body.Cluster.PublishedPerMinute == nil {
		body.Cluster.PublishedPerMinute = []MinuteCount{}
	}
	for i := range body.Tenants {
		t := &body.Tenants[i]
		body.DLQTotal += t.DLQLength
		if t.Groups == nil {
			t.Groups = []GroupStats{}
		}
		for _, g := range t.Groups {
			body.LagTotal += g.Lag
		}
	}
	for _, g := range body.Groups {
		body.LagTotal += g.Lag
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.adminFail(ctx, fmt.Errorf("encode stats: %w", err))
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

// rates converts this sidecar's throughput; nil Rates gives zeros.
func rates(r *metrics.Rates) sidecarRates {
	out := sidecarRates{PerMinute: []sidecarMinute{}}
	if r == nil {
		return out
	}
	snap := r.Snapshot()
	out.PublishedPerSec = snap.PublishedPerSec
	out.DeliveredPerSec = snap.DeliveredPerSec
	out.FailedPerSec = snap.FailedPerSec
	out.WindowSeconds = snap.Window.Seconds()
	for _, m := range snap.Minutes {
		out.PerMinute = append(out.PerMinute, sidecarMinute{Minute: m.Start.UTC(), Published: m.Published,
			Delivered: m.Delivered, Failed: m.Failed})
	}
	return out
}
