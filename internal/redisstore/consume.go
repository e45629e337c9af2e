package redisstore

import (
	"cmp"
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
	// reading is the set of streams Fetch reads: the first handled of
	// streams. notifyID is the last change signal handled ("" until the
	// first sweep). dirty lists the streams to read without waiting for a
	// signal, each once (isDirty): named by a signal, new, or that filled
	// their COUNT last time. sweepPos is the next stream of the sweep in
	// progress (-1: none); lastSweep is when the last sweep started.
	reading   map[string]bool
	handled   int
	notifyID  string
	dirty     []string
	isDirty   map[string]bool
	sweepPos  int
	lastSweep time.Time
	// lastScan is when the last scan of the pending lists for retries
	// started; a scan covers readChunk streams per call, scanPos is the
	// next one (0: no scan in progress). cursor is where each stream's next
	// XPENDING page starts. moreDue says the last call filled the whole
	// request, so more retries may be due: the next calls alternate between
	// a non-blocking read of new entries and another scan of the same
	// streams, draining a retry backlog (after an app outage) at the app's
	// pace without starving new events.
	lastScan time.Time
	scanPos  int
	cursor   map[string]string
	moreDue  bool
	readNext bool
}

func newConsumer(s *Store) *consumer {
	return &consumer{s: s, known: map[string]bool{}, changed: make(chan struct{}), cursor: map[string]string{},
		reading: map[string]bool{}, isDirty: map[string]bool{}, sweepPos: -1}
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
	c.mu.Lock()
	for _, tenant := range members {
		// Anyone with write access can SADD to the registry: only a valid
		// tenant id may become part of a key name.
		if event.ValidateTenantID(tenant) != nil {
			continue
		}
		if stream := c.s.keys.stream(tenant); !c.known[stream] {
			added = append(added, stream)
		}
	}
	c.mu.Unlock()
	if err := c.createGroups(ctx, added, start); err != nil {
		return err
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
	streams := c.streams // append-only: never changed in place
	c.mu.Unlock()
	rdb, group := c.s.rdb, c.s.opts.Group
	removed := 0
	for chunk := range slices.Chunk(streams, pipelineChunk) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.XInfoConsumersCmd, len(chunk))
		for i, st := range chunk {
			cmds[i] = pipe.XInfoConsumers(ctx, st, group)
		}
		_ = execPipe(ctx, pipe) // per-command errors are read below
		for i, st := range chunk {
			consumers, err := cmds[i].Result()
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
	if c.s.cluster != nil {
		// The registration time comes from one node's clock; the ids of
		// the streams on other shards from theirs. Starting clockSkew
		// earlier keeps an event appended just after the registration on a
		// shard whose clock is behind from being skipped; the price is that
		// a new group may get the events of its last second before it.
		ms -= clockSkew.Milliseconds()
	}
	return strconv.FormatInt(ms-1, 10) + "-18446744073709551615", nil
}

// clockSkew is how far the clocks of a cluster's nodes may be apart without
// a new group skipping events (see register).
const clockSkew = time.Second

// createGroups creates the group on each stream (and the stream if need be)
// at start, pipelineChunk commands per round trip. A group that exists
// already is left as it is.
func (c *consumer) createGroups(ctx context.Context, streams []string, start string) error {
	for chunk := range slices.Chunk(streams, pipelineChunk) {
		pipe := c.s.rdb.Pipeline()
		cmds := make([]*redis.StatusCmd, len(chunk))
		for i, st := range chunk {
			cmds[i] = pipe.XGroupCreateMkStream(ctx, st, c.s.opts.Group, start)
		}
		_ = execPipe(ctx, pipe) // per-command errors are read below
		for i, cmd := range cmds {
			if err := cmd.Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
				return fmt.Errorf("xgroup create %s %s: %w", chunk[i], c.s.opts.Group, classify(err))
			}
		}
	}
	return nil
}

// Reading new entries of many streams. Blocking in XREADGROUP on every
// tenant stream costs Redis and the sidecar work in proportion to the number
// of streams at every wake (each call names every stream): with 10,000
// streams, 50 events a second kept most of a Redis core busy. Instead:
//
//   - Every publish pipeline ends with a change signal: one entry of the
//     notify stream naming the tenants it appended to (signalAppended).
//   - A Fetch with nothing to read blocks in XREAD on that one stream, from
//     the last signal it handled, and then reads with XREADGROUP only the
//     streams the signals name. A stream whose read filled its COUNT may
//     hold more and is read again at once, as is a newly discovered one.
//   - A sweep reads every stream, without blocking, readChunk streams per
//     XREADGROUP: at the first Fetch, every sweepInterval, and when a read
//     of signals filled its page (this reader fell behind, and signals it
//     has not read may be trimmed). It finds entries no signal named:
//     appended by replays, DLQ retries, an older sidecar or another program,
//     or whose signal was lost. Before it starts, the id of the newest
//     signal is noted and reading signals resumes after it: an entry
//     appended after that point is signalled after it, an earlier one is
//     read by the sweep.
//
// On a Redis Cluster the signals are always used (one blocking read cannot
// span shards), and each read of many streams is one XREADGROUP per hash
// slot, pipelined (readBySlot).
//
// Nothing is ever skipped: XREADGROUP ">" returns every entry not yet
// delivered to the group, whichever read names the stream. A signal only
// decides how soon.
const (
	notifyMaxLen  = 10_000 // signals kept, approximately
	notifyPage    = 1000   // signals read at once
	notifyField   = "tenants"
	readChunk     = 1000 // streams per XREADGROUP, which bounds its arguments
	pipelineChunk = 1000 // commands per pipeline of group creation and cleanup
)

// notify is the stream of change signals: entries whose field "tenants"
// holds the space-separated tenants whose streams got entries.
func (k keys) notify() string { return k.prefix + ":notify" }

// sweepInterval is how often every stream is read whether signalled or not:
// every 250 ms up to 2,500 streams, then 0.1 ms per stream up to 2 s (20,000
// streams), so a sweep costs at most about 10,000 stream reads a second.
func sweepInterval(streams int) time.Duration {
	return min(max(time.Duration(streams)*100*time.Microsecond, 250*time.Millisecond), 2*time.Second)
}

// Fetch implements relay.Subscriber. Every scan interval it first claims
// pending entries that are due for another attempt (see reclaim), readChunk
// streams per call; otherwise it reads new entries as described above
// (change signals and sweeps), waiting up to Block for a signal (shortened
// to the scan interval so retries are not delayed; not at all while a scan
// or a sweep is in progress). COUNT is per stream, so a read may return more
// than limit across streams: the rest waits in buf (bounded by readChunk
// times COUNT) and is handed out first by the next calls. On a cluster, an
// unavailable node makes the client read the slot map again, so the reader
// finds a promoted replica without waiting for the map's age bound.
func (s *Store) Fetch(ctx context.Context, limit int) ([]*relay.Message, error) {
	msgs, err := s.fetch(ctx, limit)
	if errors.Is(err, relay.ErrUnavailable) {
		s.reloadSlots(ctx)
	}
	return msgs, err
}

func (s *Store) fetch(ctx context.Context, limit int) ([]*relay.Message, error) {
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
	if len(streams) > 0 && !c.readNext && (c.moreDue || c.scanPos > 0 || time.Since(c.lastScan) >= interval) {
		if c.scanPos == 0 && !c.moreDue {
			c.lastScan = time.Now()
		}
		msgs, err := s.reclaim(ctx, streams[c.scanPos:min(c.scanPos+readChunk, len(streams))], limit)
		if err != nil && len(msgs) > 0 {
			// Claimed before a later claim failed (a shard down): they are
			// this consumer's now, so they are handed out by the next calls.
			c.buf = append(c.buf, msgs...)
			msgs = nil
		}
		c.moreDue = err == nil && len(msgs) == limit
		if err == nil && !c.moreDue {
			if c.scanPos += readChunk; c.scanPos >= len(streams) {
				c.scanPos = 0
			}
		}
		c.readNext = c.moreDue || c.scanPos > 0
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
	}
	c.readNext = false
	block := min(s.opts.Block, interval)
	if c.moreDue || c.scanPos > 0 {
		block = -1 // no BLOCK: go back to the retry backlog or scan at once
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
	// Streams discovered since the last call are read at once: what they got
	// before this consumer read them may have been signalled already.
	for _, st := range streams[c.handled:] {
		c.reading[st] = true
		c.markDirty(st)
	}
	c.handled = len(streams)
	return s.readNew(ctx, streams, limit, block)
}

// readNew returns new entries for the group: from the next readChunk
// streams of a sweep in progress (or of a new one, when due), else from the
// dirty streams, else, after waiting up to block for a change signal (not
// at all while a sweep is in progress), from the streams it names.
func (s *Store) readNew(ctx context.Context, streams []string, limit int, block time.Duration) ([]*relay.Message, error) {
	c := s.consumer
	if len(streams) <= s.opts.DirectRead {
		// Few streams: block on all of them at once. One round trip per
		// read; signals would add one (XREAD, then XREADGROUP) and, under
		// load, queueing with it.
		c.notifyID = "" // a later switch to signals starts with a sweep
		return s.readStreams(ctx, streams, limit, block)
	}
	if c.sweepPos < 0 && (c.notifyID == "" || time.Since(c.lastSweep) >= sweepInterval(len(streams))) {
		id, err := s.lastSignal(ctx)
		if err != nil {
			return nil, err
		}
		c.notifyID, c.sweepPos, c.lastSweep = id, 0, time.Now()
		// The sweep reads every dirty stream too (and marks again those
		// that fill their COUNT).
		clear(c.isDirty)
		c.dirty = c.dirty[:0]
	}
	if c.sweepPos >= 0 {
		chunk := streams[c.sweepPos:min(c.sweepPos+readChunk, len(streams))]
		msgs, err := s.readStreams(ctx, chunk, limit, -1)
		if err != nil {
			return nil, err
		}
		if c.sweepPos += len(chunk); c.sweepPos >= len(streams) {
			c.sweepPos = -1
		} else {
			block = -1
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
	}
	if msgs, err := s.readDirty(ctx, limit); err != nil || len(msgs) > 0 {
		return msgs, err
	}
	if err := s.awaitSignals(ctx, block); err != nil {
		return nil, err
	}
	return s.readDirty(ctx, limit)
}

func (c *consumer) markDirty(stream string) {
	if !c.isDirty[stream] {
		c.isDirty[stream] = true
		c.dirty = append(c.dirty, stream)
	}
}

// readDirty reads up to readChunk of the dirty streams; those whose read
// filled its COUNT are dirty again, behind the others.
func (s *Store) readDirty(ctx context.Context, limit int) ([]*relay.Message, error) {
	c := s.consumer
	if len(c.dirty) == 0 {
		return nil, nil
	}
	chunk := slices.Clone(c.dirty[:min(readChunk, len(c.dirty))])
	c.dirty = slices.Delete(c.dirty, 0, len(chunk))
	for _, st := range chunk {
		delete(c.isDirty, st)
	}
	msgs, err := s.readStreams(ctx, chunk, limit, -1)
	if err != nil {
		// Read them again next time.
		for _, st := range chunk {
			c.markDirty(st)
		}
		return nil, err
	}
	return msgs, nil
}

// lastSignal returns the id of the newest change signal, "0-0" if there is
// none.
func (s *Store) lastSignal(ctx context.Context) (string, error) {
	last, err := s.rdb.XRevRangeN(ctx, s.keys.notify(), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("xrevrange %s: %w", s.keys.notify(), classify(err))
	}
	if len(last) == 0 {
		return "0-0", nil
	}
	return last[0].ID, nil
}

// awaitSignals reads the change signals after the last one handled, waiting
// up to block (not at all if negative) for one, and marks the streams they
// name dirty. A full page means this reader fell behind far enough that
// signals it has not read may be trimmed: the next read sweeps.
func (s *Store) awaitSignals(ctx context.Context, block time.Duration) error {
	c := s.consumer
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{s.keys.notify(), c.notifyID},
		Count:   notifyPage,
		Block:   block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xread %s: %w", s.keys.notify(), classify(err))
	}
	n := 0
	for _, st := range res {
		for _, m := range st.Messages {
			n++
			c.notifyID = m.ID
			tenants, _ := m.Values[notifyField].(string)
			for t := range strings.FieldsSeq(tenants) {
				// A stream not read yet is read in full once discovered.
				if stream := s.keys.stream(t); c.reading[stream] {
					c.markDirty(stream)
				}
			}
		}
	}
	if n >= notifyPage {
		c.lastSweep = time.Time{}
	}
	return nil
}

// readStreams reads new entries of the given streams for the group (on a
// single Redis blocking up to block, if not negative; on a cluster never),
// and marks dirty the streams whose read filled its COUNT. A stream whose
// group is missing gets it again, at the registration time. When a read
// failed, what the others returned waits in buf for the next calls.
func (s *Store) readStreams(ctx context.Context, streams []string, limit int, block time.Duration) ([]*relay.Message, error) {
	c := s.consumer
	count := max(1, limit/len(streams))
	var (
		res     []redis.XStream
		missing []string // streams whose group is missing
		err     error
	)
	if s.cluster != nil {
		res, missing, err = s.readBySlot(ctx, streams, count)
	} else {
		res, err = s.readGroup(ctx, streams, count, block)
		if isNoGroup(err) {
			missing, err = streams, nil
		} else if err != nil {
			err = fmt.Errorf("xreadgroup: %w", classify(err))
		}
	}
	var out []*relay.Message
	for _, st := range res {
		if len(st.Messages) >= count {
			c.markDirty(st.Stream)
		}
		tenant := s.keys.tenantOf(st.Stream)
		for _, m := range st.Messages {
			ev, derr := event.FromValues(m.Values)
			out = append(out, &relay.Message{Event: ev, Tenant: tenant, Stream: st.Stream, StreamID: m.ID, Attempt: 1, Err: derr})
		}
	}
	if len(missing) > 0 {
		// A stream or its group vanished (deleted, or Redis lost its data):
		// create them again at the registration time, and read these
		// streams again next time.
		c.mu.Lock()
		start := c.start
		c.mu.Unlock()
		if cerr := c.createGroups(ctx, missing, start); cerr != nil {
			err = cmp.Or(err, cerr)
		} else {
			for _, st := range missing {
				c.markDirty(st)
			}
			s.log.Warn("consumer group was missing on a stream; recreated", "group", s.opts.Group, "streams", len(missing))
		}
	}
	if err != nil {
		c.buf = append(c.buf, out...)
		return nil, err
	}
	if len(out) > limit {
		c.buf = append(c.buf, out[limit:]...)
		out = out[:limit]
	}
	return out, nil
}

// readGroup is one XREADGROUP of the streams, on a single Redis.
func (s *Store) readGroup(ctx context.Context, streams []string, count int, block time.Duration) ([]redis.XStream, error) {
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	for range streams {
		args = append(args, ">")
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    s.opts.Group,
		Consumer: s.opts.Consumer,
		Streams:  args,
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return res, err
}

// readBySlot reads the streams on a cluster, without blocking. One
// XREADGROUP may name only keys of one hash slot (else CROSSSLOT), so the
// streams are grouped by slot — a tenant's stream has the slot of its
// {tenant} tag, so most groups hold one stream — and each group is read by
// its own XREADGROUP, all in one cluster pipeline: each node gets its
// commands in one round trip, the nodes in parallel. It returns what the
// reads returned, the streams whose group is missing, and the first other
// error (the streams of a failed read are marked dirty).
func (s *Store) readBySlot(ctx context.Context, streams []string, count int) ([]redis.XStream, []string, error) {
	c := s.consumer
	bySlot := make(map[int][]string, len(streams))
	order := make([]int, 0, len(streams))
	for _, st := range streams {
		sl := slot(st)
		if _, ok := bySlot[sl]; !ok {
			order = append(order, sl)
		}
		bySlot[sl] = append(bySlot[sl], st)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XStreamSliceCmd, len(order))
	for i, sl := range order {
		group := bySlot[sl]
		args := make([]string, 0, 2*len(group))
		args = append(args, group...)
		for range group {
			args = append(args, ">")
		}
		cmds[i] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: s.opts.Group, Consumer: s.opts.Consumer, Streams: args, Count: int64(count), Block: -1,
		})
	}
	_ = execPipe(ctx, pipe) // per-command errors are read below
	var (
		res     []redis.XStream
		missing []string
		first   error
	)
	for i, cmd := range cmds {
		group := bySlot[order[i]]
		r, err := cmd.Result()
		switch {
		case err == nil:
			res = append(res, r...)
		case errors.Is(err, redis.Nil):
		case isNoGroup(err):
			missing = append(missing, group...)
		default:
			if first == nil {
				first = fmt.Errorf("xreadgroup %s: %w", group[0], classify(err))
			}
			for _, st := range group {
				c.markDirty(st)
			}
		}
	}
	return res, missing, first
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
	if err := execPipe(ctx, pipe); err != nil {
		return fmt.Errorf("xack: %w", classify(err))
	}
	return nil
}
