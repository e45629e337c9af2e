package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// Replay jobs (SPEC §5) keep their state in the KV bucket P_replays (key =
// job id, value = the JSON replayRecord), so any sidecar can show it. The job
// reads its range with an ordered consumer on P_events that starts at the
// range's start time, and re-publishes what matches to the same subjects.

// Timings and batch sizes of this store's replay jobs (the shared bounds
// and the heartbeat are in relay).
const (
	// A batch is re-published (asynchronously, then awaited) once it holds
	// replayBatchMax events or replayBatchBytes; the ordered consumer
	// buffers at most replayBatchMax messages ahead of the reader.
	replayBatchMax   = 256
	replayBatchBytes = 4 << 20

	// replayIdleCheck is how long the reader waits for the next message
	// before it asks the server whether any is still pending (one that
	// expired after the consumer counted it is never delivered).
	replayIdleCheck = 5 * time.Second
	// replayAckTimeout bounds the wait for one re-published event's ack.
	replayAckTimeout = 10 * time.Second
	// A batch whose publish met an unavailable server is sent again up to
	// replayRetries times, waiting 250 ms, 500 ms, 1 s, 2 s.
	replayRetries = 4
	// replayResetAttempts bounds how often the ordered consumer is
	// recreated in a row (it waits 1 s, 2 s, … between) before the job fails.
	replayResetAttempts = 4
	// replayErrorMax is the longest error recorded in a job record.
	replayErrorMax = 1024
)

// errReplayRecord is a record in the replays bucket that does not decode as a
// job (not written by a sidecar); a listing leaves it out.
var errReplayRecord = errors.New("undecodable replay record")

// ReplayOptions configure a Replayer.
type ReplayOptions struct {
	// Owner names this sidecar instance in the records of the jobs it runs.
	Owner string
	// MaxRunning bounds the jobs running at once (default 2).
	MaxRunning int
	Logger     *slog.Logger
}

// Replayer runs replay jobs: it reads a time range of the events stream and
// re-publishes the events that match as new messages marked as replays.
// Run owns the jobs' goroutines; StartReplay needs Run to be running.
// GetReplay and ListReplays read any sidecar's jobs and do not need Run.
// Safe for concurrent use.
type Replayer struct {
	s   *Store
	o   ReplayOptions
	log *slog.Logger
	// pub is the JetStream context re-published events go through: its
	// own async ack subscription and ack timeout, apart from Publish's.
	pub jetstream.JetStream
	// heartbeat is relay.ReplayHeartbeat; tests shorten it.
	heartbeat time.Duration

	slots *relay.ReplaySlots
}

// NewReplayer returns a Replayer on the store.
func NewReplayer(s *Store, o ReplayOptions) (*Replayer, error) {
	if o.Owner == "" {
		return nil, errors.New("jsstore: a replayer needs an owner name")
	}
	if o.MaxRunning <= 0 {
		o.MaxRunning = relay.DefaultMaxRunningReplays
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pub, err := jetstream.New(s.nc, jetstream.WithPublishAsyncTimeout(replayAckTimeout),
		jetstream.WithPublishAsyncMaxPending(o.MaxRunning*replayBatchMax))
	if err != nil {
		return nil, fmt.Errorf("jsstore: replay publisher: %w", err)
	}
	return &Replayer{s: s, o: o, log: o.Logger, pub: pub, heartbeat: relay.ReplayHeartbeat, slots: relay.NewReplaySlots(o.MaxRunning)}, nil
}

// Run lets jobs start until ctx ends; it then cancels the running jobs,
// which record themselves as failed ("sidecar shutting down"), waits for
// them and returns nil. Call it once.
func (r *Replayer) Run(ctx context.Context) error { return r.slots.Run(ctx) }

// StartReplay validates the request, records a new job as running and starts
// it; it returns the job as recorded, with To clamped to the job's start
// (the NATS server's time, the clock of the events' timestamps). It does not
// wait for the job.
//
// Errors: an *event.Error naming the field for a bad request, including a
// tenant without events in the stream and a group that has no consumer;
// relay.ErrTooManyReplays when MaxRunning jobs already run here;
// relay.ErrUnavailable when JetStream does not answer or Run is not running.
func (r *Replayer) StartReplay(ctx context.Context, req relay.ReplayRequest) (relay.ReplayJob, error) {
	return r.slots.Start(ctx, req, func(ctx context.Context) (relay.ReplayJobRun, error) {
		job, rev, err := r.s.createReplay(ctx, req, r.o.Owner)
		if err != nil {
			return relay.ReplayJobRun{}, err
		}
		return relay.ReplayJobRun{
			Job: job,
			Replay: func(ctx context.Context, p *relay.ReplayProgress) error {
				return r.replayRange(ctx, job, p)
			},
			// rev is the record's revision as the job last wrote it, then
			// as each save leaves it (RunReplayJob never saves twice at once).
			Save: func(ctx context.Context, p *relay.ReplayProgress, status, msg string) (bool, error) {
				return r.s.saveReplay(ctx, job, &rev, p, status, msg)
			},
			Heartbeat: r.heartbeat, Logger: r.log,
		}, nil
	})
}

// replayRecord is a job as stored in the replays bucket. Times are UTC;
// startedAt (and so a clamped to) is the NATS server's time, to the
// nanosecond, updatedAt and finishedAt the writer's clock.
type replayRecord struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	Tenant      string    `json:"tenantId"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	RequestedTo time.Time `json:"requestedTo"`
	Types       []string  `json:"types,omitempty"`
	Group       string    `json:"group,omitempty"`
	Scanned     int64     `json:"scanned"`
	Matched     int64     `json:"matched"`
	Republished int64     `json:"republished"`
	StartedAt   time.Time `json:"startedAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
	Error       string    `json:"error,omitempty"`
	Owner       string    `json:"owner"`
}

func replayRecordOf(j relay.ReplayJob) replayRecord {
	return replayRecord{ID: j.ID, Status: j.Status, Tenant: j.Tenant, From: j.From, To: j.To, RequestedTo: j.RequestedTo,
		Types: j.Types, Group: j.Group, Scanned: j.Scanned, Matched: j.Matched, Republished: j.Republished,
		StartedAt: j.StartedAt, UpdatedAt: j.UpdatedAt, FinishedAt: j.FinishedAt, Error: j.Error, Owner: j.Owner}
}

func (r replayRecord) job() relay.ReplayJob {
	return relay.ReplayJob{ID: r.ID, Status: r.Status, Tenant: r.Tenant, From: r.From, To: r.To, RequestedTo: r.RequestedTo,
		Types: r.Types, Group: r.Group, Scanned: r.Scanned, Matched: r.Matched, Republished: r.Republished,
		StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt, Error: r.Error, Owner: r.Owner}
}

// replayMs is t in UTC at millisecond precision, as records hold times.
func replayMs(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// createReplay checks the tenant and group against the stream and its
// consumers, writes the job record and returns it with its revision. The
// record is written twice: created first, so the server stamps it, then
// updated with that stamp as the job's start (and the clamp of to).
func (s *Store) createReplay(ctx context.Context, req relay.ReplayRequest, owner string) (relay.ReplayJob, uint64, error) {
	if err := s.waitReady(ctx); err != nil {
		return relay.ReplayJob{}, 0, err
	}
	if req.Tenant != relay.AllTenants {
		subject := s.names.subject(req.Tenant)
		_, err := s.events.GetLastMsgForSubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return relay.ReplayJob{}, 0, &event.Error{Code: event.CodeInvalidField, Field: "tenantId", Message: fmt.Sprintf(
				"tenant %q has no events: stream %s holds nothing on %s", req.Tenant, s.names.eventsStream(), subject)}
		case err != nil:
			return relay.ReplayJob{}, 0, fmt.Errorf("last message on %s: %w", subject, classify(err))
		}
	}
	if req.Group != "" {
		_, err := s.js.Consumer(ctx, s.names.eventsStream(), durableName(req.Group))
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			return relay.ReplayJob{}, 0, &event.Error{Code: event.CodeInvalidField, Field: "group", Message: fmt.Sprintf(
				"group %q is not a registered consumer group (no consumer %s on %s): no sidecar ever ran with --group %s",
				req.Group, durableName(req.Group), s.names.eventsStream(), req.Group)}
		case err != nil:
			return relay.ReplayJob{}, 0, fmt.Errorf("consumer %s: %w", durableName(req.Group), classify(err))
		}
	}

	now := replayMs(time.Now())
	from := replayMs(time.UnixMilli(max(req.From.UnixMilli(), 0)))
	job := relay.ReplayJob{
		ID:          uuid.Must(uuid.NewV7()).String(),
		Status:      relay.ReplayRunning,
		Tenant:      req.Tenant,
		From:        from,
		RequestedTo: replayMs(req.To),
		Types:       slices.Clone(req.Types),
		Group:       req.Group,
		StartedAt:   now,
		UpdatedAt:   now,
		Owner:       owner,
	}
	job.To = replayClamp(job.RequestedTo, now, from)
	bucket := s.names.replaysBucket()
	rev, err := s.replays.Create(ctx, job.ID, replayJSON(replayRecordOf(job)))
	if err != nil {
		return relay.ReplayJob{}, 0, fmt.Errorf("record replay %s in %s: %w", job.ID, bucket, classify(err))
	}
	e, err := s.replays.Get(ctx, job.ID)
	if err != nil {
		s.dropReplay(job.ID)
		return relay.ReplayJob{}, 0, fmt.Errorf("read replay %s in %s: %w", job.ID, bucket, classify(err))
	}
	// The server's full precision: an event stored in the job's first
	// millisecond, before the job, is replayed.
	started := e.Created().UTC()
	job.StartedAt, job.UpdatedAt = started, started
	job.To = replayClamp(job.RequestedTo, started, from)
	if rev, err = s.replays.Update(ctx, job.ID, replayJSON(replayRecordOf(job)), rev); err != nil {
		s.dropReplay(job.ID)
		return relay.ReplayJob{}, 0, fmt.Errorf("record replay %s in %s: %w", job.ID, bucket, classify(err))
	}
	return job, rev, nil
}

// replayClamp is where a job stops: the requested end, at most the job's
// start (so it never reads its own output), and not before from.
func replayClamp(requested, started, from time.Time) time.Time {
	to := requested
	if to.After(started) {
		to = started
	}
	if to.Before(from) {
		to = from
	}
	return to
}

// dropReplay deletes the record of a job that could not be started (best
// effort: a leftover reads as failed once its heartbeat is stale).
func (s *Store) dropReplay(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.replays.Delete(ctx, id)
}

// replayJSON encodes a record; it cannot fail.
func replayJSON(rec replayRecord) []byte {
	b, err := json.Marshal(rec)
	if err != nil {
		panic("jsstore: encoding a replay record: " + err.Error())
	}
	return b
}

// saveReplay writes a job's counters and updatedAt and, with a final status
// ("" = progress only), how it ended; only while the record is still running
// under this owner, so a job that a reader declared dead cannot write over
// that. The write is conditional on *rev, the revision the job last wrote;
// when another revision is found running under this owner (the reply to the
// job's own write was lost), the write is made on that one. It returns false
// when the record is no longer this running job's.
func (s *Store) saveReplay(ctx context.Context, job relay.ReplayJob, rev *uint64, p *relay.ReplayProgress, status, msg string) (bool, error) {
	now := replayMs(time.Now())
	rec := replayRecordOf(job)
	rec.Scanned, rec.Matched, rec.Republished = p.Scanned.Load(), p.Matched.Load(), p.Republished.Load()
	rec.UpdatedAt = now
	if status != "" {
		rec.Status, rec.Error, rec.FinishedAt = status, replayErrorText(msg), now
	}
	b := replayJSON(rec)
	for range 3 {
		n, err := s.replays.Update(ctx, job.ID, b, *rev)
		if err == nil {
			*rev = n
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, fmt.Errorf("save replay %s: %w", job.ID, classify(err))
		}
		e, err := s.replays.Get(ctx, job.ID)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("read replay %s: %w", job.ID, classify(err))
		}
		var cur replayRecord
		if json.Unmarshal(e.Value(), &cur) != nil || cur.Status != relay.ReplayRunning || cur.Owner != job.Owner {
			return false, nil
		}
		*rev = e.Revision()
	}
	return false, fmt.Errorf("save replay %s: the record kept changing under the job", job.ID)
}

// replayErrorText bounds a recorded error to replayErrorMax bytes of valid UTF-8.
func replayErrorText(msg string) string {
	if len(msg) <= replayErrorMax {
		return msg
	}
	return strings.ToValidUTF8(msg[:replayErrorMax], "")
}

// GetReplay returns one job; relay.ErrNotFound when there is none (or its
// record expired), an *event.Error (field "id") for an id that cannot be a
// job's. A running job whose heartbeat is older than relay.ReplayStaleAfter is
// returned, and recorded, as failed.
func (r *Replayer) GetReplay(ctx context.Context, id string) (relay.ReplayJob, error) {
	if !relay.ValidReplayID(id) {
		return relay.ReplayJob{}, &event.Error{Code: event.CodeInvalidField, Field: "id",
			Message: fmt.Sprintf("%.64q is not a replay job id (a UUID such as 0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d)", id)}
	}
	if err := r.s.waitReady(ctx); err != nil {
		return relay.ReplayJob{}, err
	}
	return r.s.readReplay(ctx, id)
}

// readReplay reads a job record; a running one whose heartbeat is older
// than relay.ReplayStaleAfter is first written as failed (relay.StaleReplayError), so a
// job whose sidecar died never shows "running" forever. That write is
// conditional on the revision read: when the job's heartbeat got there
// first, the record is read again. A failed write still reports the job
// failed; the next read writes it.
func (s *Store) readReplay(ctx context.Context, id string) (relay.ReplayJob, error) {
	for attempt := 0; ; attempt++ {
		e, err := s.replays.Get(ctx, id)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			return relay.ReplayJob{}, fmt.Errorf("replay %s: %w", id, relay.ErrNotFound)
		case err != nil:
			return relay.ReplayJob{}, fmt.Errorf("read replay %s: %w", id, classify(err))
		}
		var rec replayRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return relay.ReplayJob{}, fmt.Errorf("replay %s: %w in %s: %v", id, errReplayRecord, s.names.replaysBucket(), err)
		}
		rec.ID = id
		now := time.Now()
		if rec.Status != relay.ReplayRunning || now.Sub(rec.UpdatedAt) <= relay.ReplayStaleAfter {
			return rec.job(), nil
		}
		rec.Status, rec.Error, rec.FinishedAt = relay.ReplayFailed, relay.StaleReplayError, replayMs(now)
		_, err = s.replays.Update(ctx, id, replayJSON(rec), e.Revision())
		if err == nil || !errors.Is(err, jetstream.ErrKeyRevisionMismatch) || attempt == 2 {
			return rec.job(), nil
		}
	}
}

// ListReplays returns the most recent jobs, newest first: limit of them
// (relay.DefaultReplayListLimit when ≤ 0, at most relay.MaxReplayListLimit). Stale
// running jobs are reported failed as by GetReplay; records that are not a
// job's are left out. Job ids are UUIDv7, so their order is their start
// order (to the millisecond).
func (r *Replayer) ListReplays(ctx context.Context, limit int) ([]relay.ReplayJob, error) {
	if limit <= 0 {
		limit = relay.DefaultReplayListLimit
	}
	limit = min(limit, relay.MaxReplayListLimit)
	if err := r.s.waitReady(ctx); err != nil {
		return nil, err
	}
	ids, err := r.s.replayIDs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	jobs := make([]relay.ReplayJob, 0, min(limit, len(ids)))
	for _, id := range ids {
		if len(jobs) == limit {
			break
		}
		job, err := r.s.readReplay(ctx, id)
		switch {
		case errors.Is(err, relay.ErrNotFound) || errors.Is(err, errReplayRecord):
			continue // expired since it was listed, or not a job's record
		case err != nil:
			return nil, err
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// replayIDs returns the ids of every job record in the bucket.
func (s *Store) replayIDs(ctx context.Context) ([]string, error) {
	bucket := s.names.replaysBucket()
	kl, err := s.replays.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", bucket, classify(err))
	}
	defer func() { _ = kl.Stop() }()
	var ids []string
	for {
		select {
		case k, ok := <-kl.Keys():
			if !ok {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("list %s: %w", bucket, classify(err))
				}
				return ids, nil
			}
			if relay.ValidReplayID(k) {
				ids = append(ids, k)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("list %s: %w", bucket, classify(ctx.Err()))
		}
	}
}

// replayRange reads the job's range with an ordered consumer on the events
// stream (filter: the tenant's subject, or every tenant's), starting at the
// first message stored at or after From. It stops at the first message
// stored at or after To, or after the last message the consumer had pending.
// Matching events are collected into batches of replayBatchMax events or
// replayBatchBytes and each batch is re-published before the reader goes on,
// so memory is a batch plus the consumer's buffer, whatever the range.
func (r *Replayer) replayRange(ctx context.Context, job relay.ReplayJob, p *relay.ReplayProgress) error {
	s := r.s
	if !job.To.After(job.From) {
		return nil
	}
	filter := s.names.allEvents()
	if job.Tenant != relay.AllTenants {
		filter = s.names.subject(job.Tenant)
	}
	from := job.From
	stream := s.names.eventsStream()
	cons, err := s.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:   []string{filter},
		DeliverPolicy:    jetstream.DeliverByStartTimePolicy,
		OptStartTime:     &from,
		MaxResetAttempts: replayResetAttempts,
		NamePrefix:       "replay-" + job.ID,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", stream, classify(err))
	}
	info := cons.CachedInfo()
	defer func() {
		// The server would drop it after its inactive threshold anyway.
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.js.DeleteConsumer(dctx, stream, ci.Name)
			cancel()
		}
	}()
	if info != nil && info.NumPending == 0 {
		return nil // nothing stored since From
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayBatchMax))
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, classify(err))
	}
	defer it.Stop()

	batch := make([]*nats.Msg, 0, replayBatchMax)
	size := 0
	flush := func() error {
		err := r.republish(ctx, batch, p)
		clear(batch)
		batch, size = batch[:0], 0
		return err
	}
	for {
		m, err := nextReplayMessage(ctx, it, cons)
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if m == nil {
			return flush() // nothing more pending
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if !md.Timestamp.Before(job.To) {
			return flush()
		}
		p.Scanned.Add(1)
		if out := replayMessage(m, md.Sequence.Stream, job); out != nil {
			p.Matched.Add(1)
			batch = append(batch, out)
			size += len(out.Data) + len(out.Subject)
			for k, v := range out.Header {
				size += len(k) + len(v[0])
			}
		}
		if md.NumPending == 0 {
			return flush()
		}
		if len(batch) >= replayBatchMax || size >= replayBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// nextReplayMessage returns the consumer's next message, or nil when nothing is
// pending any more: it waits replayIdleCheck at a time and then asks the
// server (a message counted as pending may have expired before delivery).
func nextReplayMessage(ctx context.Context, it jetstream.MessagesContext, cons jetstream.Consumer) (jetstream.Msg, error) {
	for {
		nctx, cancel := context.WithTimeout(ctx, replayIdleCheck)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case err == nil:
			return m, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return nil, classify(err)
		}
		ictx, cancel := context.WithTimeout(ctx, replayIdleCheck)
		info, err := cons.Info(ictx)
		cancel()
		if err != nil {
			return nil, classify(err)
		}
		if info.NumPending == 0 {
			return nil, nil
		}
	}
}

// replayMessage returns the message that re-publishes m for the job, or nil
// when m is not replayed: it is itself a replay (so replaying twice does not
// multiply events), its type matches none of the job's patterns, or it is
// not an event (an attribute the sidecar needs is missing). seq is m's
// stream sequence.
func replayMessage(m jetstream.Msg, seq uint64, job relay.ReplayJob) *nats.Msg {
	h := m.Headers()
	if v := h["replay"]; len(v) > 0 && v[0] == "true" {
		return nil
	}
	typ := ""
	if v := h["type"]; len(v) > 0 {
		typ = v[0]
	}
	if !relay.MatchesAny(job.Types, typ) {
		return nil
	}
	ev, err := decodeEvent(h, m.Data())
	if err != nil {
		return nil
	}
	ev.Replay, ev.ReplayOf, ev.ReplayID = true, strconv.FormatUint(seq, 10), job.ID
	if job.Group != "" {
		ev.TargetGroup = job.Group
	}
	return newMsg(m.Subject(), ev)
}

// republish publishes the batch asynchronously and waits for every ack.
// Messages whose publish met an unavailable server (or whose ack did not come
// within replayAckTimeout) are sent again, up to replayRetries times; one
// whose outcome is unknown may then be stored twice: replays are at least
// once. Each stored message counts in p.Republished and in the published
// stats.
func (r *Replayer) republish(ctx context.Context, batch []*nats.Msg, p *relay.ReplayProgress) error {
	pending := batch
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	wait := 250 * time.Millisecond
	for attempt := 0; len(pending) > 0; attempt++ {
		futures = futures[:0]
		var failed []*nats.Msg
		var first error
		for i, m := range pending {
			f, err := r.pub.PublishMsgAsync(m)
			if err != nil {
				failed = append(failed, pending[i:]...)
				first = err
				break
			}
			futures = append(futures, f)
		}
		ok := 0
		for _, f := range futures {
			select {
			case <-f.Ok():
				ok++
			case err := <-f.Err():
				failed = append(failed, f.Msg())
				if first == nil {
					first = err
				}
			case <-ctx.Done():
				p.Republished.Add(int64(ok))
				r.s.published.Add(int64(ok))
				return ctx.Err()
			}
		}
		p.Republished.Add(int64(ok))
		r.s.published.Add(int64(ok))
		if first == nil {
			return nil
		}
		err := classify(first)
		if errors.Is(first, jetstream.ErrAsyncPublishTimeout) || errors.Is(first, jetstream.ErrTooManyStalledMsgs) {
			err = fmt.Errorf("%w: %v", relay.ErrUnavailable, first)
		}
		if !errors.Is(err, relay.ErrUnavailable) || attempt == replayRetries {
			return fmt.Errorf("publish %d replayed events: %w", len(failed), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
		pending = failed
	}
	return nil
}
