package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// consumer is this sidecar's member of its consumer group across every tenant
// stream.
type consumer struct {
	s *Store

	// mu guards the fields below; the discovery loop writes them and Fetch
	// reads them.
	mu sync.Mutex
	// start is the group's registration id ("<ms-1>-<max seq>"), the id every
	// tenant stream's group starts after; empty until registered.
	start string
	// streams are the tenant streams that have the group, in discovery order.
	streams []string
	known   map[string]bool
	// changed is closed and replaced when streams changes, to wake a Fetch
	// that waits for the first stream.
	changed chan struct{}

	// Only Fetch touches the fields below.
	//
	// buf holds entries a multi-stream read returned beyond what Fetch was
	// asked for (XREADGROUP's COUNT is per stream).
	buf []*relay.Message
	// lastScan is when the pending lists were last scanned for retries;
	// cursor is where each stream's next XPENDING page starts. moreDue says
	// the last scan filled the whole request, so more retries may be due:
	// the next calls alternate between a non-blocking read of new entries and
	// another scan, draining a retry backlog (after an app outage) at the
	// app's pace without starving new events.
	lastScan time.Time
	cursor   map[string]string
	moreDue  bool
	readNext bool
}

func newConsumer(s *Store) *consumer {
	return &consumer{s: s, known: map[string]bool{}, changed: make(chan struct{}), cursor: map[string]string{}}
}

// discoveryLoop registers the group, then watches the tenant registry: every
// DiscoveryInterval one SCARD; only when the count moved (or every 30 s, in
// case Redis lost data) one SMEMBERS, and XGROUP CREATE on each new stream at
// the group's registration time. Cost at rest: one O(1) command per interval,
// whatever the number of tenants.
func (c *consumer) discoveryLoop(ctx context.Context) {
	var lastCount int64 = -1
	var lastFull, lastCleanup time.Time
	var failures int
	t := time.NewTicker(c.s.opts.DiscoveryInterval)
	defer t.Stop()
	for {
		err := c.discover(ctx, &lastCount, &lastFull)
		if err != nil && ctx.Err() == nil {
			// Log the first failure and then every 50th, not 5 a second.
			if failures%50 == 0 {
				c.s.log.Warn("tenant discovery failed", "group", c.s.opts.Group, "error", err)
			}
			failures++
		} else if err == nil {
			if failures > 0 {
				c.s.log.Info("tenant discovery recovered", "group", c.s.opts.Group)
			}
			failures = 0
			if time.Since(lastCleanup) >= cleanupInterval(c.s.opts.ConsumerExpiry) {
				lastCleanup = time.Now()
				if err := c.removeDeadConsumers(ctx); err != nil && ctx.Err() == nil {
					c.s.log.Warn("removing dead consumers failed", "group", c.s.opts.Group, "error", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *consumer) discover(ctx context.Context, lastCount *int64, lastFull *time.Time) error {
	rdb := c.s.rdb
	c.mu.Lock()
	start := c.start
	c.mu.Unlock()
	if start == "" {
		var err error
		if start, err = c.register(ctx); err != nil {
			return err
		}
		c.mu.Lock()
		c.start = start
		c.mu.Unlock()
	}
	n, err := rdb.SCard(ctx, c.s.keys.tenants()).Result()
	if err != nil {
		return fmt.Errorf("scard %s: %w", c.s.keys.tenants(), classify(err))
	}
	if n == *lastCount && time.Since(*lastFull) < 30*time.Second {
		return nil
	}
	members, err := rdb.SMembers(ctx, c.s.keys.tenants()).Result()
	if err != nil {
		return fmt.Errorf("smembers %s: %w", c.s.keys.tenants(), classify(err))
	}
	slices.Sort(members)
	var added []string
	for _, tenant := range members {
		// Anyone with write access can SADD to the registry: only a valid
		// tenant id may become part of a key name.
		if event.ValidateTenantID(tenant) != nil {
			continue
		}
		stream := c.s.keys.stream(tenant)
		c.mu.Lock()
		seen := c.known[stream]
		c.mu.Unlock()
		if seen {
			continue
		}
		if err := c.createGroup(ctx, stream, start); err != nil {
			return err
		}
		added = append(added, stream)
	}
	if len(added) > 0 {
		c.mu.Lock()
		for _, st := range added {
			c.known[st] = true
		}
		c.streams = append(slices.Clip(c.streams), added...)
		close(c.changed)
		c.changed = make(chan struct{})
		total := len(c.streams)
		c.mu.Unlock()
		c.s.log.Info("tenant streams added", "group", c.s.opts.Group, "added", len(added), "streams", total)
	}
	*lastCount, *lastFull = n, time.Now()
	return nil
}

// cleanupInterval is how often dead consumers are looked for: a tenth of the
// expiry, at most every 10 minutes.
func cleanupInterval(expiry time.Duration) time.Duration { return min(expiry/10, 10*time.Minute) }

// removeDeadConsumers deletes consumers of the group that have nothing pending
// and have been silent for ConsumerExpiry, on every known stream. A live
// sidecar reads every few hundred milliseconds, so a consumer silent for that
// long belongs to a process that is gone; one with entries pending is kept
// whatever its age, because deleting it would drop its pending entries (the
// reclaim moves them to live consumers first).
func (c *consumer) removeDeadConsumers(ctx context.Context) error {
	c.mu.Lock()
	streams := slices.Clone(c.streams)
	c.mu.Unlock()
	rdb, group := c.s.rdb, c.s.opts.Group
	removed := 0
	for _, st := range streams {
		consumers, err := rdb.XInfoConsumers(ctx, st, group).Result()
		if err != nil {
			if isNoGroup(err) {
				continue
			}
			return fmt.Errorf("xinfo consumers %s: %w", st, classify(err))
		}
		for _, cs := range consumers {
			if cs.Name == c.s.opts.Consumer || cs.Pending != 0 || cs.Idle < c.s.opts.ConsumerExpiry {
				continue
			}
			if err := rdb.XGroupDelConsumer(ctx, st, group, cs.Name).Err(); err != nil {
				return fmt.Errorf("xgroup delconsumer %s %s %s: %w", st, group, cs.Name, classify(err))
			}
			removed++
		}
	}
	if removed > 0 {
		c.s.log.Info("removed dead consumers", "group", group, "removed", removed)
	}
	return nil
}

// register records the group's creation time in the groups hash once (HSETNX
// with Redis server time) and returns the stream id every tenant stream's
// group starts after: the last possible id of the millisecond before it, so an
// entry added in the registration millisecond itself is delivered too.
func (c *consumer) register(ctx context.Context) (string, error) {
	rdb := c.s.rdb
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("time: %w", classify(err))
	}
	key := c.s.keys.groups()
	if _, err := rdb.HSetNX(ctx, key, c.s.opts.Group, now.UnixMilli()).Result(); err != nil {
		return "", fmt.Errorf("hsetnx %s: %w", key, classify(err))
	}
	v, err := rdb.HGet(ctx, key, c.s.opts.Group).Result()
	if err != nil {
		return "", fmt.Errorf("hget %s: %w", key, classify(err))
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return "", fmt.Errorf("%s[%s] = %q is not a time in ms", key, c.s.opts.Group, v)
	}
	c.s.log.Info("consumer group registered", "group", c.s.opts.Group, "since", time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
	return strconv.FormatInt(ms-1, 10) + "-18446744073709551615", nil
}

func (c *consumer) createGroup(ctx context.Context, stream, start string) error {
	err := c.s.rdb.XGroupCreateMkStream(ctx, stream, c.s.opts.Group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("xgroup create %s %s: %w", stream, c.s.opts.Group, classify(err))
	}
	return nil
}

// Fetch implements relay.Subscriber. Every scan interval it first claims
// pending entries that are due for another attempt (see reclaim); otherwise
// one XREADGROUP reads new entries of every tenant stream, blocking up to
// Block (shortened to the scan interval so retries are not delayed). COUNT is per stream, so a read may return more than
// limit across streams: the rest waits in buf (bounded by the number of streams
// times COUNT) and is handed out first by the next calls.
func (s *Store) Fetch(ctx context.Context, limit int) ([]*relay.Message, error) {
	c := s.consumer
	if c == nil {
		return nil, errors.New("redisstore: Fetch on a store without a consumer group")
	}
	if len(c.buf) > 0 {
		n := min(limit, len(c.buf))
		out := slices.Clone(c.buf[:n])
		c.buf = slices.Delete(c.buf, 0, n)
		return out, nil
	}
	c.mu.Lock()
	streams, changed := c.streams, c.changed
	c.mu.Unlock()
	interval := scanInterval(s.opts.Retry.Shortest())
	if len(streams) > 0 && !c.readNext && (c.moreDue || time.Since(c.lastScan) >= interval) {
		c.lastScan = time.Now()
		msgs, err := s.reclaim(ctx, streams, limit)
		c.moreDue = err == nil && len(msgs) == limit
		c.readNext = c.moreDue
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
	}
	c.readNext = false
	block := min(s.opts.Block, interval)
	if c.moreDue {
		block = -1 // no BLOCK: go back to the retry backlog at once
	}
	if len(streams) == 0 {
		t := time.NewTimer(block)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		return nil, nil
	}
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	for range streams {
		args = append(args, ">")
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    s.opts.Group,
		Consumer: s.opts.Consumer,
		Streams:  args,
		Count:    int64(max(1, limit/len(streams))),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if isNoGroup(err) {
			// A stream or its group vanished (deleted, or Redis lost its
			// data): create them again at the registration time.
			c.mu.Lock()
			start := c.start
			c.mu.Unlock()
			for _, st := range streams {
				if cerr := c.createGroup(ctx, st, start); cerr != nil {
					return nil, cerr
				}
			}
			s.log.Warn("consumer group was missing on a stream; recreated", "group", s.opts.Group, "error", err)
			return nil, nil
		}
		return nil, fmt.Errorf("xreadgroup: %w", classify(err))
	}
	var out []*relay.Message
	for _, st := range res {
		tenant := s.keys.tenantOf(st.Stream)
		for _, m := range st.Messages {
			ev, derr := event.FromValues(m.Values)
			out = append(out, &relay.Message{Event: ev, Tenant: tenant, Stream: st.Stream, StreamID: m.ID, Attempt: 1, Err: derr})
		}
	}
	if len(out) > limit {
		c.buf = append(c.buf, out[limit:]...)
		out = out[:limit]
	}
	return out, nil
}

// Ack implements relay.Subscriber: XACK per stream, plus dropping the retry
// state of entries that had failed before, in one pipeline.
func (s *Store) Ack(ctx context.Context, msgs ...*relay.Message) error {
	pipe := s.rdb.Pipeline()
	for _, m := range msgs {
		pipe.XAck(ctx, m.Stream, s.opts.Group, m.StreamID)
		if m.Attempt > 1 {
			pipe.HDel(ctx, s.keys.retry(m.Tenant), s.retryField(m.StreamID))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("xack: %w", classify(err))
	}
	return nil
}
