package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
)

// job is one Publish call waiting for a writer. The writer owns res until it
// closes done; the caller copies res out afterwards, so a caller that gave up
// (its ctx ended) never races with a late writer.
type job struct {
	reqs []relay.PublishRequest
	res  []relay.PublishResult
	done chan struct{}
}

func (j *job) fail(err error) {
	for i := range j.res {
		j.res[i] = relay.PublishResult{Err: err}
	}
	close(j.done)
}

// Publish implements relay.Publisher. Concurrent calls are coalesced into
// pipelined round trips by the writers that Run owns.
func (s *Store) Publish(ctx context.Context, reqs []relay.PublishRequest, res []relay.PublishResult) {
	j := &job{reqs: reqs, res: make([]relay.PublishResult, len(reqs)), done: make(chan struct{})}
	fail := func(err error) {
		for i := range res {
			res[i] = relay.PublishResult{Err: err}
		}
	}
	// After Run has ended nothing takes jobs any more: fail at once rather
	// than race the send below against closed.
	select {
	case <-s.closed:
		fail(fmt.Errorf("%w: sidecar shutting down", relay.ErrUnavailable))
		return
	default:
	}
	select {
	case s.jobs <- j:
	case <-s.closed:
		fail(fmt.Errorf("%w: sidecar shutting down", relay.ErrUnavailable))
		return
	case <-ctx.Done():
		fail(fmt.Errorf("%w: %v", relay.ErrUnavailable, ctx.Err()))
		return
	}
	select {
	case <-j.done:
		copy(res, j.res)
	case <-ctx.Done():
		// The write may still happen: the caller reports it as unavailable and
		// an Idempotency-Key makes its retry safe.
		fail(fmt.Errorf("%w: %v", relay.ErrUnavailable, ctx.Err()))
	}
}

// writeLoop takes one job, then every job already waiting up to maxBatch
// events, and sends them all in one pipeline. Under load, batches grow by
// themselves; at low load a publish pays one round trip, no added delay.
func (s *Store) writeLoop(ctx context.Context) {
	batch := make([]*job, 0, 64)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			batch = append(batch, j)
		}
		n := len(batch[0].reqs)
	more:
		for n < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
				n += len(j.reqs)
			default:
				break more
			}
		}
		s.write(ctx, batch)
	}
}

// idemScript publishes at most once per idempotency key: if the key holds a
// result it is returned, else the event is appended and the result stored for
// the window, atomically. Both keys share the tenant's hash slot.
//
// KEYS[1] stream, KEYS[2] idempotency key; ARGV[1] window ms, ARGV[2] MINID,
// ARGV[3] event id, ARGV[4] correlation id, ARGV[5..] entry fields and values.
var idemScript = redis.NewScript(`
local prev = redis.call('GET', KEYS[2])
if prev then return {0, prev} end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', unpack(ARGV, 5))
redis.call('SET', KEYS[2], id .. '\n' .. ARGV[3] .. '\n' .. ARGV[4], 'PX', ARGV[1])
return {1, id}
`)

// write sends one pipeline for a batch of jobs and completes every job.
func (s *Store) write(ctx context.Context, batch []*job) {
	// A writer's round trip is bounded even when the publisher's is not.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()

	now := time.Now()
	minid := minID(now, s.opts.Retention)
	pipe := s.rdb.Pipeline()
	cmds := make([][]redis.Cmder, len(batch))
	var newTenants []string
	for bi, j := range batch {
		cmds[bi] = make([]redis.Cmder, len(j.reqs))
		for i, r := range j.reqs {
			ev := r.Event
			stream := s.keys.stream(ev.TenantID)
			values := ev.AppendValues(make([]any, 0, 24))
			if r.IdempotencyKey == "" {
				cmds[bi][i] = pipe.XAdd(wctx, &redis.XAddArgs{Stream: stream, MinID: minid, Approx: true, Values: values})
			} else {
				args := make([]any, 0, 4+len(values))
				args = append(args, IdempotencyWindow.Milliseconds(), minid, ev.ID, ev.CorrelationID)
				args = append(args, values...)
				cmds[bi][i] = idemScript.Eval(wctx, pipe, []string{stream, s.keys.idem(ev.TenantID, r.IdempotencyKey)}, args...)
			}
			if !s.registered.Contains(ev.TenantID) && !contains(newTenants, ev.TenantID) {
				newTenants = append(newTenants, ev.TenantID)
			}
		}
	}
	var sadd *redis.IntCmd
	if len(newTenants) > 0 {
		members := make([]any, len(newTenants))
		for i, t := range newTenants {
			members[i] = t
		}
		sadd = pipe.SAdd(wctx, s.keys.tenants(), members...)
	}
	// The cluster-wide published-per-minute counter: one INCRBY per pipeline.
	s.CountPublished(wctx, pipe, now, batchEvents(batch))
	_, _ = pipe.Exec(wctx) // per-command errors are read below

	// A tenant whose registration failed must not have its events reported
	// as published: no reader would ever find its stream.
	var regErr error
	if sadd != nil {
		if regErr = classify(sadd.Err()); regErr == nil {
			for _, t := range newTenants {
				s.registered.Add(t, struct{}{})
			}
		} else {
			regErr = fmt.Errorf("register tenant: %w", regErr)
		}
	}
	for bi, j := range batch {
		for i, r := range j.reqs {
			stream := s.keys.stream(r.Event.TenantID)
			out := relay.PublishResult{Stream: stream, EventID: r.Event.ID, CorrelationID: r.Event.CorrelationID}
			switch c := cmds[bi][i].(type) {
			case *redis.StringCmd:
				out.StreamID, out.Err = c.Val(), c.Err()
			case *redis.Cmd:
				out.Err = c.Err()
				if out.Err == nil {
					out.StreamID, out.EventID, out.CorrelationID, out.Duplicate, out.Err = parseIdem(c.Val(), out)
				}
			}
			if out.Err != nil {
				out.Err = fmt.Errorf("xadd %s: %w", stream, classify(out.Err))
			} else if regErr != nil && contains(newTenants, r.Event.TenantID) {
				out.Err = regErr
			}
			j.res[i] = out
		}
		close(j.done)
	}
}

// parseIdem reads the idempotency script's reply {fresh, id-or-record}.
func parseIdem(v any, def relay.PublishResult) (streamID, eventID, corrID string, dup bool, err error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return "", "", "", false, fmt.Errorf("idempotent publish: unexpected reply %v", v)
	}
	fresh, _ := arr[0].(int64)
	s, _ := arr[1].(string)
	if fresh == 1 {
		return s, def.EventID, def.CorrelationID, false, nil
	}
	parts := strings.SplitN(s, "\n", 3)
	if len(parts) != 3 {
		return "", "", "", false, fmt.Errorf("idempotent publish: malformed record %q", s)
	}
	return parts[0], parts[1], parts[2], true, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
