package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
)

// Bounds of one Stats call.
const (
	DefaultStatsLimit = 100  // tenants per page when the query names none
	MaxStatsLimit     = 1000 // most tenants per page
	// MaxLagCount is the most entries counted, per group, when Redis cannot
	// tell a group's lag (XINFO GROUPS answers null after trimming or XDEL).
	MaxLagCount = 1000

	// publishedTTL keeps each per-minute counter past the hour it is read for.
	publishedTTL = 2 * time.Hour
	statsMinutes = 60
)

// StatsQuery selects one page of tenants, in sorted order.
type StatsQuery struct {
	Limit  int    // 0 = DefaultStatsLimit
	Cursor string // NextCursor of the previous page; "" = the first page
}

// Stats is the broker side of GET /v1/admin/stats.
type Stats struct {
	Tenants     []TenantStats
	TenantCount int    // tenants in the registry, all pages
	NextCursor  string // "" = last page
	// PublishedPerMinute is the last 60 minutes, oldest first, counted by
	// every sidecar's publish pipeline (cluster-wide); the last is partial.
	PublishedPerMinute []MinuteCount
}

// TenantStats is one tenant's stream, dead letters and consumer groups.
type TenantStats struct {
	Tenant       string
	StreamLength int64 // XLEN of the tenant's stream
	DLQLength    int64 // XLEN of the tenant's dead-letter stream
	Groups       []GroupStats
}

// GroupStats is one consumer group on one tenant stream.
type GroupStats struct {
	Name            string
	Consumers       int64
	Pending         int64 // delivered, not acknowledged
	LastDeliveredID string
	// Lag is the entries not yet delivered to the group. When Redis cannot
	// tell (after trimming or deletes), it is counted from LastDeliveredID
	// and LagEstimated is set; a count that reached MaxLagCount is a lower
	// bound.
	Lag          int64
	LagEstimated bool
}

// MinuteCount is the events published in the minute starting at Start.
type MinuteCount struct {
	Start time.Time
	Count int64
}

// CountPublished adds n to the cluster-wide count of events published in
// now's minute. The publish pipeline calls it once per pipeline with the
// number of events it writes (repeated Idempotency-Keys included), so the
// count costs one INCRBY per round trip, not per event, plus one EXPIRE
// until this process has set the counter's TTL (see counted.done); the
// commands run with the pipeline and their errors are ignored with it.
// The counter keys carry no hash tag: with Redis Cluster the pipeline must
// be a cluster pipeline.
func (s *Store) CountPublished(ctx context.Context, pipe redis.Pipeliner, now time.Time, n int64) counted {
	if n <= 0 {
		return counted{}
	}
	c := counted{minute: now.Unix() / 60, n: n}
	key := s.keys.published(now)
	c.incr = pipe.IncrBy(ctx, key, n)
	if s.ttlMinute.Load() != c.minute {
		c.expire = pipe.Expire(ctx, key, publishedTTL)
	}
	return c
}

// counted is what CountPublished queued.
type counted struct {
	minute, n int64
	incr      *redis.IntCmd
	expire    *redis.BoolCmd // nil when the TTL was known to be set
}

// done records, once the pipeline has run, whether the counter of c's
// minute has its TTL: set by c's EXPIRE, later pipelines of the minute skip
// theirs. A counter that INCRBY created (it answered n) was missing, e.g.
// deleted since: the next pipeline sends EXPIRE again.
func (c counted) done(s *Store) {
	switch {
	case c.incr == nil:
	case c.expire != nil && c.expire.Val():
		s.ttlMinute.Store(c.minute)
	case c.expire == nil && c.incr.Err() == nil && c.incr.Val() == c.n:
		s.ttlMinute.CompareAndSwap(c.minute, 0)
	}
}

// batchEvents is the number of events in a publish batch, for CountPublished.
func batchEvents(batch []*job) int64 {
	var n int64
	for _, j := range batch {
		n += int64(len(j.reqs))
	}
	return n
}

// published is the counter of events published in now's minute.
func (k keys) published(now time.Time) string {
	return k.prefix + ":stats:published:" + strconv.FormatInt(now.Unix()/60, 10)
}

// Stats returns one page of tenants with their stream and dead-letter
// lengths and their groups' lag and pending counts, and the cluster-wide
// published count per minute of the last hour.
//
// Cost is bounded whatever the number of tenants: one SMEMBERS of the
// registry, one pipeline of XLEN, XLEN and XINFO GROUPS for the page's
// tenants (at most MaxStatsLimit), one pipeline of bounded XRANGEs for the
// groups whose lag Redis cannot tell, and one pipeline of 60 GETs. A
// malformed cursor gives an *event.Error naming "cursor". Safe for
// concurrent use.
func (s *Store) Stats(ctx context.Context, q StatsQuery, now time.Time) (Stats, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultStatsLimit
	}
	limit = min(limit, MaxStatsLimit)
	if q.Cursor != "" {
		if err := event.ValidateTenantID(q.Cursor); err != nil {
			return Stats{}, &event.Error{Code: event.CodeInvalidField, Field: "cursor",
				Message: fmt.Sprintf("cursor %.64q is not one this API returned", q.Cursor)}
		}
	}
	members, err := s.rdb.SMembers(ctx, s.keys.tenants()).Result()
	if err != nil {
		return Stats{}, fmt.Errorf("smembers %s: %w", s.keys.tenants(), classify(err))
	}
	// Only a valid tenant id may become part of a key name.
	members = slices.DeleteFunc(members, func(t string) bool { return event.ValidateTenantID(t) != nil })
	slices.Sort(members)
	out := Stats{TenantCount: len(members)}
	start, _ := slices.BinarySearch(members, q.Cursor)
	if q.Cursor != "" && start < len(members) && members[start] == q.Cursor {
		start++ // the cursor is the last tenant of the previous page
	}
	page := members[start:min(start+limit, len(members))]
	if start+limit < len(members) {
		out.NextCursor = page[len(page)-1]
	}

	if out.Tenants, err = s.tenantStats(ctx, page); err != nil {
		return Stats{}, err
	}
	if out.PublishedPerMinute, err = s.publishedPerMinute(ctx, now); err != nil {
		return Stats{}, err
	}
	return out, nil
}

func (s *Store) tenantStats(ctx context.Context, tenants []string) ([]TenantStats, error) {
	out := make([]TenantStats, len(tenants))
	if len(tenants) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(tenants))
	dlqs := make([]*redis.IntCmd, len(tenants))
	groups := make([]*redis.XInfoGroupsCmd, len(tenants))
	for i, t := range tenants {
		lens[i] = pipe.XLen(ctx, s.keys.stream(t))
		dlqs[i] = pipe.XLen(ctx, s.keys.dlq(t))
		groups[i] = pipe.XInfoGroups(ctx, s.keys.stream(t))
	}
	_ = execPipe(ctx, pipe) // per-command errors are read below

	type estimate struct {
		tenant, group int
		cmd           *redis.XMessageSliceCmd
	}
	var est []estimate
	epipe := s.rdb.Pipeline()
	for i, t := range tenants {
		ts := TenantStats{Tenant: t}
		var err error
		if ts.StreamLength, err = lens[i].Result(); err != nil {
			return nil, fmt.Errorf("xlen %s: %w", s.keys.stream(t), classify(err))
		}
		if ts.DLQLength, err = dlqs[i].Result(); err != nil {
			return nil, fmt.Errorf("xlen %s: %w", s.keys.dlq(t), classify(err))
		}
		gs, err := groups[i].Result()
		if err != nil && !isNoSuchKey(err) {
			return nil, fmt.Errorf("xinfo groups %s: %w", s.keys.stream(t), classify(err))
		}
		for _, g := range gs {
			st := GroupStats{Name: g.Name, Consumers: g.Consumers, Pending: g.Pending,
				LastDeliveredID: g.LastDeliveredID, Lag: g.Lag}
			if g.Lag < 0 {
				// Redis answers null when entries after the group's position
				// were deleted or trimmed: count what is left after it, up to
				// MaxLagCount.
				st.Lag, st.LagEstimated = 0, true
				est = append(est, estimate{i, len(ts.Groups),
					epipe.XRangeN(ctx, s.keys.stream(t), "("+g.LastDeliveredID, "+", MaxLagCount)})
			}
			ts.Groups = append(ts.Groups, st)
		}
		out[i] = ts
	}
	if len(est) > 0 {
		_ = execPipe(ctx, epipe)
		for _, e := range est {
			msgs, err := e.cmd.Result()
			if err != nil {
				return nil, fmt.Errorf("xrange %s: %w", s.keys.stream(tenants[e.tenant]), classify(err))
			}
			out[e.tenant].Groups[e.group].Lag = int64(len(msgs))
		}
	}
	return out, nil
}

// isNoSuchKey reports the error XINFO GROUPS gives for a stream that does
// not exist (a tenant whose stream expired or was never created).
func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && rerr.Error() == "ERR no such key"
}

// publishedPerMinute reads the last 60 per-minute counters, oldest first.
func (s *Store) publishedPerMinute(ctx context.Context, now time.Time) ([]MinuteCount, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, statsMinutes)
	first := now.Truncate(time.Minute).Add(-(statsMinutes - 1) * time.Minute)
	for i := range cmds {
		cmds[i] = pipe.Get(ctx, s.keys.published(first.Add(time.Duration(i)*time.Minute)))
	}
	_ = execPipe(ctx, pipe)
	out := make([]MinuteCount, statsMinutes)
	for i, c := range cmds {
		out[i].Start = first.Add(time.Duration(i) * time.Minute)
		n, err := c.Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("get %s: %w", s.keys.published(out[i].Start), classify(err))
		default:
			out[i].Count = n
		}
	}
	return out, nil
}
