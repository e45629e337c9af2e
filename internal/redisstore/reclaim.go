package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// pendingPage bounds one XPENDING read per stream and scan.
const pendingPage = 100

// scanInterval is how often the pending lists are scanned for entries due
// again: a quarter of the shortest retry step, between 50 ms and 15 s, so a
// retry is late by at most a quarter step (15 s with the default schedule)
// plus the time a scan takes. Fetch scans readChunk streams per call, in
// calls that follow each other without waiting, so a scan of many streams
// never holds up new entries for more than one chunk's round trip.
func scanInterval(shortest time.Duration) time.Duration {
	return min(max(shortest/4, 50*time.Millisecond), 15*time.Second)
}

type candidate struct {
	stream, tenant, id string
	deliveries         int64
	step               time.Duration
}

// reclaim finds pending entries of the group on the given streams (at most
// readChunk) that are due again, whoever holds them (this sidecar after a
// failed push, or a consumer that died), and claims up to limit of them for
// this consumer.
//
// The algorithm, per scan: one pipelined XPENDING … IDLE <shortest step> per
// stream (a page of 100 from a per-stream cursor, so a long pending list is
// walked over several scans instead of read at once); an entry with delivery
// count c is due when idle ≥ step(c) and its recorded retry state (a longer
// Retry-After) allows; then one XCLAIM per due entry with MINIDLE = step(c), so
// when several consumers race for an entry exactly one wins and the delivery
// count moves to c+1, the attempt number.
func (s *Store) reclaim(ctx context.Context, streams []string, limit int) ([]*relay.Message, error) {
	c := s.consumer
	pol := s.opts.Retry
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(streams))
	starts := make(map[string]string, len(streams))
	for i, st := range streams {
		start := c.cursor[st]
		if start == "" {
			start = "-"
		}
		starts[st] = start
		cmds[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: st, Group: s.opts.Group, Idle: pol.Shortest(), Start: start, End: "+", Count: pendingPage,
		})
	}
	if err := execPipe(ctx, pipe); err != nil && !isNoGroup(err) && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("xpending: %w", classify(err))
	}
	var due []candidate
	for i, cmd := range cmds {
		st := streams[i]
		pend, err := cmd.Result()
		if err != nil {
			delete(c.cursor, st) // a missing group is recreated by the next read
			continue
		}
		if len(pend) == pendingPage {
			c.cursor[st] = "(" + pend[len(pend)-1].ID
		} else {
			delete(c.cursor, st)
		}
		for _, p := range pend {
			step := pol.Step(int(p.RetryCount))
			if p.Idle >= step {
				due = append(due, candidate{stream: st, tenant: s.keys.tenantOf(st), id: p.ID, deliveries: p.RetryCount, step: step})
			}
		}
	}
	if len(due) == 0 {
		return nil, nil
	}

	// The retry state holds a not-before time (a longer Retry-After) and the
	// last error; entries without state are due by idle time alone.
	pipe = s.rdb.Pipeline()
	states := make([]*redis.StringCmd, len(due))
	for i, d := range due {
		states[i] = pipe.HGet(ctx, s.keys.retry(d.tenant), s.retryField(d.id))
	}
	_ = execPipe(ctx, pipe) // redis.Nil for entries without state; real errors below
	now := time.Now()
	lastErr := map[string]string{}
	kept := due[:0]
	for i, d := range due {
		v, err := states[i].Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("hget %s: %w", s.keys.retry(d.tenant), classify(err))
		}
		notBefore, msg := parseRetryState(v)
		if now.Before(notBefore) {
			continue
		}
		lastErr[d.id] = msg
		kept = append(kept, d)
		if len(kept) == limit {
			// Due entries past this one were not taken: the next scan must
			// start right after it, and streams not reached yet where they
			// started this time.
			c.cursor[d.stream] = "(" + d.id
			for _, rest := range due[i+1:] {
				if rest.stream != d.stream {
					restoreCursor(c.cursor, rest.stream, starts[rest.stream])
				}
			}
			break
		}
	}
	if len(kept) == 0 {
		return nil, nil
	}

	pipe = s.rdb.Pipeline()
	claims := make([]*redis.XMessageSliceCmd, len(kept))
	for i, d := range kept {
		claims[i] = pipe.XClaim(ctx, &redis.XClaimArgs{
			Stream: d.stream, Group: s.opts.Group, Consumer: s.opts.Consumer, MinIdle: d.step, Messages: []string{d.id},
		})
	}
	_ = execPipe(ctx, pipe)
	var out []*relay.Message
	for i, d := range kept {
		msgs, err := claims[i].Result()
		if err != nil {
			if errors.Is(err, redis.Nil) || isNoGroup(err) {
				continue
			}
			return out, fmt.Errorf("xclaim %s %s: %w", d.stream, d.id, classify(err))
		}
		for _, m := range msgs {
			if m.ID == "" || m.Values == nil {
				continue // deleted from the stream (trimmed) while pending
			}
			ev, derr := event.FromValues(m.Values)
			out = append(out, &relay.Message{Event: ev, Tenant: d.tenant, Stream: d.stream, StreamID: m.ID,
				Attempt: int(d.deliveries) + 1, LastError: lastErr[d.id], Err: derr})
		}
	}
	if len(out) > 0 {
		s.log.Debug("reclaimed pending entries for another attempt", "group", s.opts.Group, "count", len(out))
	}
	return out, nil
}

// Retry implements relay.Failures: it resets the entry's idle time to now
// (XCLAIM … JUSTID to this consumer, which keeps the delivery count), so the
// next attempt waits a full step from the failure, and records the retry
// state: not-before time and last error.
func (s *Store) Retry(ctx context.Context, m *relay.Message, notBefore time.Time, lastError string) error {
	pipe := s.rdb.Pipeline()
	pipe.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: m.Stream, Group: s.opts.Group, Consumer: s.opts.Consumer, MinIdle: 0, Messages: []string{m.StreamID},
	})
	pipe.HSet(ctx, s.keys.retry(m.Tenant), s.retryField(m.StreamID),
		strconv.FormatInt(notBefore.UnixMilli(), 10)+" "+truncate(lastError, 1024))
	if err := execPipe(ctx, pipe); err != nil {
		return fmt.Errorf("record failed attempt %s %s: %w", m.Stream, m.StreamID, classify(err))
	}
	return nil
}

func restoreCursor(cursor map[string]string, stream, start string) {
	if start == "-" {
		delete(cursor, stream)
	} else {
		cursor[stream] = start
	}
}

func parseRetryState(v string) (time.Time, string) {
	ms, msg, _ := strings.Cut(v, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, ""
	}
	return time.UnixMilli(n), msg
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}
