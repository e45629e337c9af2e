package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// Replay jobs (SPEC §5) keep their state in Redis, so any sidecar can show it:
//
//	<prefix>:replay:<id>  hash: the job record (times in Unix ms), expires
//	                      --retention after its last write
//	<prefix>:replays      sorted set: job id by start time (ms), trimmed to
//	                      --retention when a job starts

// Timings and page sizes of this store's replay jobs (the shared bounds and
// the heartbeat are in relay).
const (
	// A page is one XRANGE: at most replayPageMax entries, sized so that it
	// holds about replayPageBytes (from the average entry size of the page
	// before), and never fewer than replayPageMin entries. The first page is
	// replayFirstPage entries, so a stream of 1 MiB events is never read 256
	// at a time.
	replayPageMax   = 256
	replayPageMin   = 4
	replayFirstPage = 16
	replayPageBytes = 4 << 20

	// A page whose read or write met an unavailable Redis is tried again up
	// to replayRetries times, waiting 250 ms, 500 ms, 1 s, 2 s.
	replayRetries = 4
)

func (k keys) replay(id string) string { return k.prefix + ":replay:" + id }
func (k keys) replays() string         { return k.prefix + ":replays" }

// ReplayOptions configure a Replayer.
type ReplayOptions struct {
	// Owner names this sidecar instance in the records of the jobs it runs.
	Owner string
	// MaxRunning bounds the jobs running at once (default 2).
	MaxRunning int
	// PageSize bounds the entries one XRANGE reads (default and most 256).
	PageSize int
	Logger   *slog.Logger
}

// Replayer runs replay jobs: it reads a time range of tenant streams in pages
// and re-publishes the events that match as new entries marked as replays.
// Run owns the jobs' goroutines; StartReplay needs Run to be running.
// GetReplay and ListReplays read any sidecar's jobs and do not need Run.
// Safe for concurrent use.
type Replayer struct {
	s   *Store
	o   ReplayOptions
	log *slog.Logger

	slots *relay.ReplaySlots
}

// NewReplayer returns a Replayer on the store.
func NewReplayer(s *Store, o ReplayOptions) (*Replayer, error) {
	if o.Owner == "" {
		return nil, errors.New("redisstore: a replayer needs an owner name")
	}
	if o.MaxRunning <= 0 {
		o.MaxRunning = relay.DefaultMaxRunningReplays
	}
	if o.PageSize <= 0 || o.PageSize > replayPageMax {
		o.PageSize = replayPageMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Replayer{s: s, o: o, log: o.Logger, slots: relay.NewReplaySlots(o.MaxRunning)}, nil
}

// Run lets jobs start until ctx ends; it then cancels the running jobs,
// which record themselves as failed ("sidecar shutting down"), waits for
// them and returns nil. Call it once.
func (r *Replayer) Run(ctx context.Context) error { return r.slots.Run(ctx) }

// StartReplay validates the request, records a new job as running and starts
// it; it returns the job as recorded, with To clamped to the job's start
// (Redis server time). It does not wait for the job.
//
// Errors: an *event.Error naming the field for a bad request, including a
// tenant that is not in the registry and a group that was never registered;
// relay.ErrTooManyReplays when MaxRunning jobs already run here;
// relay.ErrUnavailable when Redis does not answer or Run is not running.
func (r *Replayer) StartReplay(ctx context.Context, req relay.ReplayRequest) (relay.ReplayJob, error) {
	return r.slots.Start(ctx, req, func(ctx context.Context) (relay.ReplayJobRun, error) {
		job, err := r.s.createReplay(ctx, req, r.o.Owner)
		if err != nil {
			return relay.ReplayJobRun{}, err
		}
		return relay.ReplayJobRun{
			Job: job,
			Replay: func(ctx context.Context, p *relay.ReplayProgress) error {
				return r.s.replayRange(ctx, job, r.o.PageSize, p)
			},
			Save: func(ctx context.Context, p *relay.ReplayProgress, status, msg string) (bool, error) {
				return r.s.saveReplay(ctx, job, p, status, msg)
			},
			Logger: r.log,
		}, nil
	})
}

// createReplay checks the tenant and group against the registries, reads the
// server time, and writes the job record and its index entry.
func (s *Store) createReplay(ctx context.Context, req relay.ReplayRequest, owner string) (relay.ReplayJob, error) {
	pipe := s.rdb.Pipeline()
	var tenantCmd, groupCmd *redis.BoolCmd
	if req.Tenant != relay.AllTenants {
		tenantCmd = pipe.SIsMember(ctx, s.keys.tenants(), req.Tenant)
	}
	if req.Group != "" {
		groupCmd = pipe.HExists(ctx, s.keys.groups(), req.Group)
	}
	timeCmd := pipe.Time(ctx)
	_ = execPipe(ctx, pipe) // per-command errors are read below
	if tenantCmd != nil {
		known, err := tenantCmd.Result()
		if err != nil {
			return relay.ReplayJob{}, fmt.Errorf("sismember %s: %w", s.keys.tenants(), classify(err))
		}
		if !known {
			return relay.ReplayJob{}, &event.Error{Code: event.CodeInvalidField, Field: "tenantId", Message: fmt.Sprintf(
				"tenant %q has no events: it is not in the tenant registry %s", req.Tenant, s.keys.tenants())}
		}
	}
	if groupCmd != nil {
		known, err := groupCmd.Result()
		if err != nil {
			return relay.ReplayJob{}, fmt.Errorf("hexists %s: %w", s.keys.groups(), classify(err))
		}
		if !known {
			return relay.ReplayJob{}, &event.Error{Code: event.CodeInvalidField, Field: "group", Message: fmt.Sprintf(
				"group %q is not a registered consumer group (%s): no sidecar ever ran with --group %s", req.Group, s.keys.groups(), req.Group)}
		}
	}
	now, err := timeCmd.Result()
	if err != nil {
		return relay.ReplayJob{}, fmt.Errorf("time: %w", classify(err))
	}

	startMs := now.UnixMilli()
	fromMs := max(req.From.UnixMilli(), 0)
	toMs := min(req.To.UnixMilli(), startMs)
	started := time.UnixMilli(startMs)
	job := relay.ReplayJob{
		ID:          uuid.Must(uuid.NewV7()).String(),
		Status:      relay.ReplayRunning,
		Tenant:      req.Tenant,
		From:        time.UnixMilli(fromMs),
		To:          time.UnixMilli(max(toMs, fromMs)),
		RequestedTo: time.UnixMilli(req.To.UnixMilli()),
		Types:       slices.Clone(req.Types),
		Group:       req.Group,
		StartedAt:   started,
		UpdatedAt:   started,
		Owner:       owner,
	}
	key, index := s.keys.replay(job.ID), s.keys.replays()
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	pipe = s.rdb.Pipeline()
	pipe.HSet(ctx, key,
		"id", job.ID, "status", job.Status, "tenantId", job.Tenant,
		"from", ms(job.From), "to", ms(job.To), "requestedTo", ms(job.RequestedTo),
		"types", strings.Join(job.Types, ","), "group", job.Group,
		"scanned", "0", "matched", "0", "republished", "0",
		"startedAt", ms(job.StartedAt), "updatedAt", ms(job.UpdatedAt), "finishedAt", "", "error", "",
		"owner", job.Owner)
	pipe.PExpire(ctx, key, s.recordTTL())
	pipe.ZAdd(ctx, index, redis.Z{Score: float64(startMs), Member: job.ID})
	pipe.ZRemRangeByScore(ctx, index, "-inf", "("+strconv.FormatInt(startMs-s.recordTTL().Milliseconds(), 10))
	if err := execPipe(ctx, pipe); err != nil {
		return relay.ReplayJob{}, fmt.Errorf("record replay %s: %w", key, classify(err))
	}
	return job, nil
}

// recordTTL is how long a job record outlives its last write: --retention,
// like the events it replayed.
func (s *Store) recordTTL() time.Duration {
	if s.opts.Retention > 0 {
		return s.opts.Retention
	}
	return 720 * time.Hour
}

// replaySaveScript writes a job's counters and heartbeat and, with a final
// status, how it ended; only while the record is still running under this
// owner, so a job that a reader declared dead cannot write over that.
// Times are Redis server time.
//
// KEYS[1] job record; ARGV[1] owner, ARGV[2..4] scanned, matched,
// republished, ARGV[5] final status or "", ARGV[6] error, ARGV[7] TTL ms.
// Returns 1 when written, 0 when the record is not this running job's.
var replaySaveScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'status', 'owner')
if cur[1] ~= 'running' or cur[2] ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 'scanned', ARGV[2], 'matched', ARGV[3], 'republished', ARGV[4], 'updatedAt', now)
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[5], 'error', ARGV[6], 'finishedAt', now)
end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
`)

// saveReplay runs replaySaveScript; status "" writes progress only.
func (s *Store) saveReplay(ctx context.Context, job relay.ReplayJob, p *relay.ReplayProgress, status, msg string) (bool, error) {
	key := s.keys.replay(job.ID)
	n, err := replaySaveScript.Run(ctx, s.rdb, []string{key}, job.Owner,
		p.Scanned.Load(), p.Matched.Load(), p.Republished.Load(), status, truncate(msg, 1024),
		s.recordTTL().Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("save replay %s: %w", key, classify(err))
	}
	return n == 1, nil
}

// replayReadScript returns a job record; a running one whose heartbeat is
// older than ARGV[1] ms (Redis server time) is first written as failed with
// the error ARGV[2], so a job whose sidecar died never shows "running"
// forever. An absent record is an empty reply.
var replayReadScript = redis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return h end
local status, updated
for i = 1, #h, 2 do
  if h[i] == 'status' then status = h[i + 1] elseif h[i] == 'updatedAt' then updated = tonumber(h[i + 1]) end
end
if status ~= 'running' then return h end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if updated ~= nil and now - updated <= tonumber(ARGV[1]) then return h end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'finishedAt', string.format('%.0f', now))
return redis.call('HGETALL', KEYS[1])
`)

// GetReplay returns one job; relay.ErrNotFound when there is none (or its
// record expired), an *event.Error (field "id") for an id that cannot be a
// job's. A running job whose heartbeat is older than relay.ReplayStaleAfter is
// returned, and recorded, as failed.
func (r *Replayer) GetReplay(ctx context.Context, id string) (relay.ReplayJob, error) {
	if !relay.ValidReplayID(id) {
		return relay.ReplayJob{}, &event.Error{Code: event.CodeInvalidField, Field: "id",
			Message: fmt.Sprintf("%.64q is not a replay job id (a UUID such as 0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d)", id)}
	}
	key := r.s.keys.replay(id)
	v, err := replayReadScript.Run(ctx, r.s.rdb, []string{key}, relay.ReplayStaleAfter.Milliseconds(), relay.StaleReplayError).Slice()
	if err != nil {
		return relay.ReplayJob{}, fmt.Errorf("read replay %s: %w", key, classify(err))
	}
	if len(v) == 0 {
		return relay.ReplayJob{}, fmt.Errorf("replay %s: %w", id, relay.ErrNotFound)
	}
	return decodeReplayJob(id, v), nil
}

// ListReplays returns the most recent jobs, newest first: limit of them
// (relay.DefaultReplayListLimit when ≤ 0, at most relay.MaxReplayListLimit). Stale
// running jobs are reported failed as by GetReplay; index entries whose
// record expired are dropped.
func (r *Replayer) ListReplays(ctx context.Context, limit int) ([]relay.ReplayJob, error) {
	if limit <= 0 {
		limit = relay.DefaultReplayListLimit
	}
	limit = min(limit, relay.MaxReplayListLimit)
	index := r.s.keys.replays()
	ids, err := r.s.rdb.ZRevRange(ctx, index, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("zrevrange %s: %w", index, classify(err))
	}
	jobs := make([]relay.ReplayJob, 0, len(ids))
	if len(ids) == 0 {
		return jobs, nil
	}
	pipe := r.s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		// Eval, not EvalSha: a pipeline cannot fall back when the script
		// is not cached yet.
		cmds[i] = replayReadScript.Eval(ctx, pipe, []string{r.s.keys.replay(id)}, relay.ReplayStaleAfter.Milliseconds(), relay.StaleReplayError)
	}
	_ = execPipe(ctx, pipe) // per-command errors are read below
	var gone []any
	for i, c := range cmds {
		v, err := c.Slice()
		if err != nil {
			return nil, fmt.Errorf("read replay %s: %w", r.s.keys.replay(ids[i]), classify(err))
		}
		if len(v) == 0 {
			gone = append(gone, ids[i])
			continue
		}
		jobs = append(jobs, decodeReplayJob(ids[i], v))
	}
	if len(gone) > 0 {
		// Best effort: a failure leaves them to the next listing.
		_ = r.s.rdb.ZRem(ctx, index, gone...).Err()
	}
	return jobs, nil
}

// decodeReplayJob reads a job record from HGETALL's flat field/value reply.
// Fields it lacks are zero.
func decodeReplayJob(id string, flat []any) relay.ReplayJob {
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		h[k] = v
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	at := func(k string) time.Time {
		if h[k] == "" {
			return time.Time{}
		}
		return time.UnixMilli(num(k))
	}
	job := relay.ReplayJob{
		ID:          id,
		Status:      h["status"],
		Tenant:      h["tenantId"],
		From:        at("from"),
		To:          at("to"),
		RequestedTo: at("requestedTo"),
		Group:       h["group"],
		Scanned:     num("scanned"),
		Matched:     num("matched"),
		Republished: num("republished"),
		StartedAt:   at("startedAt"),
		UpdatedAt:   at("updatedAt"),
		FinishedAt:  at("finishedAt"),
		Error:       h["error"],
		Owner:       h["owner"],
	}
	if t := h["types"]; t != "" {
		job.Types = strings.Split(t, ",")
	}
	return job
}

// replayRange replays every tenant of the job in turn (for "*", the tenants
// of the registry when the job runs, in sorted order), counting into p.
func (s *Store) replayRange(ctx context.Context, job relay.ReplayJob, pageSize int, p *relay.ReplayProgress) error {
	tenants := []string{job.Tenant}
	if job.Tenant == relay.AllTenants {
		members, err := s.rdb.SMembers(ctx, s.keys.tenants()).Result()
		if err != nil {
			return fmt.Errorf("smembers %s: %w", s.keys.tenants(), classify(err))
		}
		// Only a valid tenant id may become part of a key name.
		tenants = slices.DeleteFunc(members, func(t string) bool { return event.ValidateTenantID(t) != nil })
		slices.Sort(tenants)
	}
	fromMs, toMs := job.From.UnixMilli(), job.To.UnixMilli()
	if toMs <= fromMs {
		return nil
	}
	for _, t := range tenants {
		if err := s.replayTenant(ctx, job, t, fromMs, toMs, pageSize, p); err != nil {
			return err
		}
	}
	return nil
}

// replayTenant walks one tenant stream from fromMs (inclusive) to toMs
// (exclusive) — stream ids are the server's ms timestamps, so the range is
// XRANGE <fromMs> <toMs-1> (an incomplete end id covers that whole ms) — one
// page at a time, and re-publishes the matching entries of each page in one
// pipeline before reading the next. Memory is one page, whatever the range.
func (s *Store) replayTenant(ctx context.Context, job relay.ReplayJob, tenant string, fromMs, toMs int64,
	pageSize int, p *relay.ReplayProgress) error {
	stream := s.keys.stream(tenant)
	start, end := strconv.FormatInt(fromMs, 10), strconv.FormatInt(toMs-1, 10)
	count := min(replayFirstPage, pageSize)
	for {
		var msgs []redis.XMessage
		err := retryUnavailable(ctx, func() error {
			var err error
			if msgs, err = s.rdb.XRangeN(ctx, stream, start, end, int64(count)).Result(); err != nil {
				return fmt.Errorf("xrange %s: %w", stream, classify(err))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		size := 0
		var batch [][]any
		for _, m := range msgs {
			size += entrySize(m)
			if ev := replayEvent(m, job); ev != nil {
				batch = append(batch, ev.AppendValues(make([]any, 0, 30)))
			}
		}
		p.Scanned.Add(int64(len(msgs)))
		p.Matched.Add(int64(len(batch)))
		if err := s.republish(ctx, stream, batch, p); err != nil {
			return err
		}
		if len(msgs) < count {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
		count = nextPageSize(size, len(msgs), pageSize)
	}
}

// nextPageSize is the entries the next XRANGE asks for after a page of n
// entries of size bytes in all: about replayPageBytes at that average entry
// size, between replayPageMin and pageSize entries.
func nextPageSize(size, n, pageSize int) int {
	avg := max(size/max(n, 1), 1)
	return min(max(replayPageBytes/avg, replayPageMin), pageSize)
}

// replayEvent returns the event of entry m as the job re-publishes it, or nil
// when m is not replayed: its type matches none of the job's patterns, it is
// itself a replay (so replaying twice does not multiply events), or it is not
// an event (a field the sidecar needs is missing).
func replayEvent(m redis.XMessage, job relay.ReplayJob) *event.Event {
	if r, _ := m.Values["replay"].(string); r == "true" {
		return nil
	}
	if typ, _ := m.Values["type"].(string); !relay.MatchesAny(job.Types, typ) {
		return nil
	}
	ev, err := event.FromValues(m.Values)
	if err != nil {
		return nil
	}
	ev.Replay, ev.ReplayOf, ev.ReplayID = true, m.ID, job.ID
	if job.Group != "" {
		ev.TargetGroup = job.Group
	}
	return ev
}

// entrySize approximates an entry's size in memory from its fields.
func entrySize(m redis.XMessage) int {
	n := len(m.ID)
	for k, v := range m.Values {
		s, _ := v.(string)
		n += len(k) + len(s)
	}
	return n
}

// republish appends the entries to the stream in one pipeline, trimmed to
// the retention like every publish (MINID ~). Entries whose XADD met an
// unavailable Redis are sent again (retryUnavailable); one whose outcome is
// unknown (a timeout) may then be written twice: replays are at least once.
func (s *Store) republish(ctx context.Context, stream string, batch [][]any, p *relay.ReplayProgress) error {
	return retryUnavailable(ctx, func() error {
		if len(batch) == 0 {
			return nil
		}
		minid := minID(time.Now(), s.opts.Retention)
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, values := range batch {
			cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, MinID: minid, Approx: true, Values: values})
		}
		// Readers waiting on the signal stream read the replayed entries at
		// once. On a cluster the signal follows the entries' replies: a
		// cluster pipeline runs on the nodes at once.
		tenant := s.keys.tenantOf(stream)
		if s.cluster == nil {
			s.signalAppended(ctx, pipe, tenant)
		}
		_ = execPipe(ctx, pipe) // per-command errors are read below
		if s.cluster != nil {
			sig := s.rdb.Pipeline()
			s.signalAppended(ctx, sig, tenant)
			_ = execPipe(ctx, sig)
		}
		var failed [][]any
		var first error
		for i, c := range cmds {
			if err := c.Err(); err != nil {
				failed = append(failed, batch[i])
				if first == nil {
					first = err
				}
				continue
			}
			p.Republished.Add(1)
		}
		batch = failed
		if first != nil {
			return fmt.Errorf("xadd %s: %w", stream, classify(first))
		}
		return nil
	})
}

// retryUnavailable calls f until it succeeds, fails with an error that does
// not wrap relay.ErrUnavailable, or has been retried replayRetries times
// (waiting 250 ms, doubling). It stops with ctx's error when ctx ends.
func retryUnavailable(ctx context.Context, f func() error) error {
	wait := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := f()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, relay.ErrUnavailable) || attempt == replayRetries:
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}
