package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// job is one Publish call waiting for a writer. The writer owns res until it
// closes done; the caller copies res out afterwards, so a caller that gave up
// (its ctx ended) never races with a late writer.
type job struct {
	reqs []relay.PublishRequest
	res  []relay.PublishResult
	done chan struct{}
	one  [1]relay.PublishResult // res of a single event, in the same allocation
}

func (j *job) fail(err error) {
	for i := range j.res {
		j.res[i] = relay.PublishResult{Err: err}
	}
	close(j.done)
}

// Publish implements relay.Publisher. Concurrent calls are coalesced into
// pipelined round trips, at most writers of them in flight. A call that
// finds a pipeline free sends it itself, with the publishes queued
// meanwhile: at low load a publish costs one round trip and no hand-off to
// another goroutine. Otherwise it queues for the writer goroutines that Run
// owns, which take queued publishes first whenever a pipeline frees up.
func (s *Store) Publish(ctx context.Context, reqs []relay.PublishRequest, res []relay.PublishResult) {
	j := &job{reqs: reqs, done: make(chan struct{})}
	if len(reqs) == 1 {
		j.res = j.one[:]
	} else {
		j.res = make([]relay.PublishResult, len(reqs))
	}
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
	case w := <-s.slots:
		s.write(ctx, s.gather(w, j), w)
		s.slots <- w
		copy(res, j.res)
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

// writeLoop sends the queued publishes: it takes one, waits for a free
// pipeline and sends it with the others queued by then.
func (s *Store) writeLoop(ctx context.Context) {
	for {
		var j *job
		select {
		case <-ctx.Done():
			return
		case j = <-s.jobs:
		}
		var w *writer
		select {
		case <-ctx.Done():
			j.fail(fmt.Errorf("%w: sidecar shutting down", relay.ErrUnavailable))
			return
		case w = <-s.slots:
		}
		s.write(ctx, s.gather(w, j), w)
		s.slots <- w
	}
}

// gather returns first and the publishes already queued, up to maxBatch
// events, in w's batch slice. Under load batches grow by themselves; at low
// load nothing waits for company.
func (s *Store) gather(w *writer, first *job) []*job {
	batch := append(w.batch[:0], first)
	for n := len(first.reqs); n < maxBatch; {
		select {
		case j := <-s.jobs:
			batch = append(batch, j)
			n += len(j.reqs)
		default:
			w.batch = batch
			return batch
		}
	}
	w.batch = batch
	return batch
}

// writer is the state of one pipeline slot, reused from batch to batch, so
// that a published event costs few allocations: the XADD arguments of a
// batch share one slice, the event's strings go in as *string (go-redis
// writes them like strings) and each tenant's stream key is built and boxed
// once. Only the holder of the slot uses it.
type writer struct {
	batch []*job
	args  []any
	cmds  []redis.Cmder // nil where errs holds why no command was sent
	errs  []error
	// pipeOf is the index of the pipeline of each command in pipes.
	pipeOf  []int
	pipes   pipes
	tenants []string
	// streams maps a tenant to its stream key as an interface value; it is
	// emptied when it reaches maxCachedStreams, which bounds its memory.
	streams map[string]any
}

const maxCachedStreams = 4096

// stream returns tenant's stream key, boxed.
func (w *writer) stream(k keys, tenant string) any {
	if v, ok := w.streams[tenant]; ok {
		return v
	}
	if len(w.streams) >= maxCachedStreams {
		clear(w.streams)
	}
	v := any(k.stream(tenant))
	w.streams[tenant] = v
	return v
}

// appendEntry appends the stream entry fields of e, the pairs of
// event.AppendValues in the same order, without copying or boxing its
// strings: values are *string into e and data is e.Data itself. e must not
// change until the command has been written.
func appendEntry(dst []any, e *event.Event) []any {
	var data any = "{}"
	if len(e.Data) > 0 {
		data = e.Data
	}
	dst = append(dst,
		"id", &e.ID,
		"type", &e.Type,
		"source", &e.Source,
		"timestamp", &e.Timestamp,
		"correlationId", &e.CorrelationID,
		"tenantId", &e.TenantID,
		"userId", &e.UserID,
		"version", &e.Version,
		"data", data)
	if e.Replay {
		dst = append(dst, "replay", "true")
	}
	if e.ReplayOf != "" {
		dst = append(dst, "replayOf", &e.ReplayOf)
	}
	if e.ReplayID != "" {
		dst = append(dst, "replayId", &e.ReplayID)
	}
	if e.TargetGroup != "" {
		dst = append(dst, "targetGroup", &e.TargetGroup)
	}
	if e.TraceParent != "" {
		dst = append(dst, "traceparent", &e.TraceParent)
	}
	if e.TraceState != "" {
		dst = append(dst, "tracestate", &e.TraceState)
	}
	return dst
}

// entryArgs is the most script arguments of an idempotent publish: the 4
// of idemScript before the entry, then at most 14 field/value pairs.
const entryArgs = 4 + 2*14

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

// writeTimeout bounds a writer's round trip (WAIT's timeout comes on top),
// even when the publisher's context does not.
const writeTimeout = 10 * time.Second

// write sends a batch of jobs and completes every job: one pipeline on a
// single Redis or a cluster; with WaitReplicas on a cluster, one pipeline
// per master (see pipes). A pipeline ends with WAIT when WaitReplicas is
// set, and an event is published only if the WAIT of its pipeline saw
// enough replicas.
//
// The change signal of the batch (see signalAppended) must reach readers
// after the entries. On a single Redis it ends the pipeline, after every
// XADD on the same connection. A cluster pipeline runs on every node at
// once, so there the signal, with the stats counter, follows in a second
// pipeline once the first has answered and the publishers are answered.
func (s *Store) write(ctx context.Context, batch []*job, w *writer) {
	timeout := writeTimeout
	if s.opts.WaitReplicas > 0 {
		timeout += s.opts.WaitTimeout
	}
	// A publisher that sends its own pipeline keeps its deadline; the
	// writer goroutines' context has none.
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	defer func() {
		// Drop the references to this batch's events before the next.
		clear(w.batch)
		w.batch = w.batch[:0]
		clear(w.args)
		clear(w.cmds)
		clear(w.errs)
		clear(w.pipes.pipes) // their queued commands hold the events too
		w.args, w.cmds, w.errs, w.pipeOf, w.tenants = w.args[:0], w.cmds[:0], w.errs[:0], w.pipeOf[:0], w.tenants[:0]
		w.pipes.pipes, w.pipes.ctx = w.pipes.pipes[:0], nil
	}()

	now := time.Now()
	minid := minID(now, s.opts.Retention)
	var minidArg any = minid
	p := &w.pipes
	p.reset(s, wctx)
	var newTenants []string
	for _, j := range batch {
		for _, r := range j.reqs {
			ev := r.Event
			stream := w.stream(s.keys, ev.TenantID)
			pi, pipe, err := p.forKey(stream.(string))
			var cmd redis.Cmder
			switch {
			case err != nil:
			case r.IdempotencyKey == "":
				at := len(w.args)
				w.args = append(w.args, "xadd", stream, "minid", "~", minidArg, "*")
				w.args = appendEntry(w.args, ev)
				c := redis.NewStringCmd(wctx, w.args[at:len(w.args):len(w.args)]...)
				_ = pipe.Process(wctx, c) // a pipeline only queues; errors come with Exec
				cmd = c
			default:
				args := make([]any, 0, entryArgs)
				args = append(args, IdempotencyWindow.Milliseconds(), minidArg, &ev.ID, &ev.CorrelationID)
				args = appendEntry(args, ev)
				cmd = idemScript.Eval(wctx, pipe, []string{stream.(string), s.keys.idem(ev.TenantID, r.IdempotencyKey)}, args...)
			}
			w.cmds = append(w.cmds, cmd)
			w.errs = append(w.errs, err)
			w.pipeOf = append(w.pipeOf, pi)
			w.tenants = append(w.tenants, ev.TenantID)
			if !s.registered.Contains(ev.TenantID) && !contains(newTenants, ev.TenantID) {
				newTenants = append(newTenants, ev.TenantID)
			}
		}
	}
	// A tenant whose registration failed must not have its events reported
	// as published: no reader would ever find its stream.
	var regErr error
	var sadd *redis.IntCmd
	saddPipe := -1
	if len(newTenants) > 0 {
		members := make([]any, len(newTenants))
		for i, t := range newTenants {
			members[i] = t
		}
		var pipe redis.Pipeliner
		if saddPipe, pipe, regErr = p.forKey(s.keys.tenants()); regErr == nil {
			sadd = pipe.SAdd(wctx, s.keys.tenants(), members...)
		}
	}
	slices.Sort(w.tenants)
	w.tenants = slices.Compact(w.tenants)
	var count counted
	if s.cluster == nil {
		// The cluster-wide published-per-minute counter: one INCRBY per pipeline.
		count = s.CountPublished(wctx, p.pipes[0].pipe, now, batchEvents(batch))
		s.signalAppended(wctx, p.pipes[0].pipe, w.tenants...)
	}
	p.exec(wctx)
	count.done(s)

	if sadd != nil {
		if regErr = cmp.Or(classify(sadd.Err()), p.waitErr(saddPipe)); regErr == nil {
			for _, t := range newTenants {
				s.registered.Add(t, struct{}{})
			}
		}
	}
	if regErr != nil {
		regErr = fmt.Errorf("register tenant: %w", regErr)
	}
	k := 0
	for _, j := range batch {
		for i, r := range j.reqs {
			stream := w.stream(s.keys, r.Event.TenantID).(string)
			out := relay.PublishResult{Stream: stream, EventID: r.Event.ID, CorrelationID: r.Event.CorrelationID}
			switch c := w.cmds[k].(type) {
			case nil:
				out.Err = w.errs[k]
			case *redis.StringCmd:
				out.StreamID, out.Err = c.Val(), classify(c.Err())
			case *redis.Cmd:
				out.Err = classify(c.Err())
				if out.Err == nil {
					out.StreamID, out.EventID, out.CorrelationID, out.Duplicate, out.Err = parseIdem(c.Val(), out)
				}
			}
			if out.Err == nil {
				out.Err = p.waitErr(w.pipeOf[k])
			}
			k++
			if out.Err != nil {
				out.Err = fmt.Errorf("xadd %s: %w", stream, out.Err)
			} else if regErr != nil && contains(newTenants, r.Event.TenantID) {
				out.Err = regErr
			}
			j.res[i] = out
		}
		close(j.done)
	}
	if s.cluster != nil {
		// Best effort, like the signal of a single Redis's pipeline.
		after := s.rdb.Pipeline()
		count := s.CountPublished(wctx, after, now, batchEvents(batch))
		s.signalAppended(wctx, after, w.tenants...)
		_ = execPipe(wctx, after)
		count.done(s)
	}
	if p.unavailable {
		s.reloadSlots(wctx)
	}
}

// pipes are the pipelines of one publish batch. On a single Redis, or on a
// cluster without WAIT, there is one: the client's (a cluster pipeline sends
// each node its commands). WAIT applies to the writes made before it on the
// same connection, and a cluster pipeline spreads its commands over
// connections to several nodes, so on a cluster with WAIT each master the
// batch writes to gets a pipeline of its own, on its own client, ending
// with its WAIT.
type pipes struct {
	s     *Store
	ctx   context.Context
	pipes []pipe
	// byNode indexes pipes by master, on a cluster with WAIT.
	byNode map[*redis.Client]int
	// unavailable says a pipeline met an unavailable node or a moved slot:
	// the slot map is read again.
	unavailable bool
}

type pipe struct {
	pipe redis.Pipeliner
	wait *redis.IntCmd // nil without WAIT
	addr string        // the master's address, on a cluster with WAIT
}

// reset readies p for a new batch, keeping its slices.
func (p *pipes) reset(s *Store, ctx context.Context) {
	clear(p.pipes)
	p.s, p.ctx, p.pipes, p.unavailable = s, ctx, p.pipes[:0], false
	if s.cluster == nil || s.opts.WaitReplicas == 0 {
		p.pipes = append(p.pipes, pipe{pipe: s.rdb.Pipeline()})
		return
	}
	if p.byNode == nil {
		p.byNode = map[*redis.Client]int{}
	}
	clear(p.byNode)
}

// forKey returns the pipeline that key's commands go on, and its index. On
// a cluster with WAIT that is the pipeline of the master of key's slot in
// the client's slot map; an error (no slot map) wraps relay.ErrUnavailable.
func (p *pipes) forKey(key string) (int, redis.Pipeliner, error) {
	if p.byNode == nil {
		return 0, p.pipes[0].pipe, nil
	}
	master, err := p.s.cluster.MasterForKey(p.ctx, key)
	if err != nil {
		p.unavailable = true
		return -1, nil, fmt.Errorf("find the master of %s: %w", key, classify(err))
	}
	if i, ok := p.byNode[master]; ok {
		return i, p.pipes[i].pipe, nil
	}
	p.byNode[master] = len(p.pipes)
	p.pipes = append(p.pipes, pipe{pipe: master.Pipeline(), addr: master.Options().Addr})
	return len(p.pipes) - 1, p.pipes[len(p.pipes)-1].pipe, nil
}

// exec appends WAIT to each pipeline when WaitReplicas is set and runs
// them, several at once. Per-command errors are left on the commands.
func (p *pipes) exec(ctx context.Context) {
	o := p.s.opts
	if o.WaitReplicas > 0 {
		// WAIT is not among Pipeliner's methods; in a pipeline its
		// timeout is covered by the client's read timeout (readTimeout).
		timeout := max(o.WaitTimeout.Milliseconds(), 1)
		for i := range p.pipes {
			pp := &p.pipes[i]
			pp.wait = redis.NewIntCmd(ctx, "wait", o.WaitReplicas, timeout)
			_ = pp.pipe.Process(ctx, pp.wait)
		}
	}
	// Each goroutine runs only its own pipeline; mu guards unavailable.
	var mu sync.Mutex
	run := func(pp redis.Pipeliner) {
		if err := execPipe(ctx, pp); err != nil && errors.Is(classify(err), relay.ErrUnavailable) {
			mu.Lock()
			p.unavailable = true
			mu.Unlock()
		}
	}
	if len(p.pipes) == 1 {
		run(p.pipes[0].pipe)
		return
	}
	var wg sync.WaitGroup
	for _, pp := range p.pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(pp.pipe)
		}()
	}
	wg.Wait()
}

// waitErr is nil when pipeline i needs no WAIT or its WAIT saw
// WaitReplicas replicas; otherwise an error wrapping relay.ErrUnavailable
// that says the primary has the writes.
func (p *pipes) waitErr(i int) error {
	if i < 0 || p.pipes[i].wait == nil {
		return nil
	}
	o := p.s.opts
	on := ""
	if a := p.pipes[i].addr; a != "" {
		on = " of " + a
	}
	n, err := p.pipes[i].wait.Result()
	if err != nil {
		return fmt.Errorf("%w: accepted by the primary%s, but WAIT for %d replicas failed (%v); "+
			"the event may still be delivered: retry with the same Idempotency-Key",
			relay.ErrUnavailable, on, o.WaitReplicas, classify(err))
	}
	if n < int64(o.WaitReplicas) {
		return fmt.Errorf("%w: accepted by the primary%s, but only %d of %d replicas confirmed it within %s; "+
			"the event may still be delivered: retry with the same Idempotency-Key",
			relay.ErrUnavailable, on, n, o.WaitReplicas, o.WaitTimeout)
	}
	return nil
}

// reloadSlots has a cluster client read the slot map again, in the
// background, after a node was unavailable or a slot moved.
func (s *Store) reloadSlots(ctx context.Context) {
	if s.cluster != nil {
		s.cluster.ReloadState(ctx)
	}
}

// signalAppended queues on pipe the change signal that tells readers which
// tenants' streams got entries: one XADD to the notify stream naming them
// (see the read path in consume.go). Whatever appends to tenant streams
// should queue it after its XADDs; an append without it is still read, by
// the readers' periodic sweep, only later. A failed signal is ignored with
// the pipeline's other per-command errors.
func (s *Store) signalAppended(ctx context.Context, pipe redis.Pipeliner, tenants ...string) {
	if len(tenants) == 0 {
		return
	}
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.notify(), MaxLen: notifyMaxLen, Approx: true,
		Values: []any{notifyField, strings.Join(tenants, " ")}})
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
