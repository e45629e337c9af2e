package jsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// replayTestEnv is an embedded JetStream store (publish-only, running) and a
// running Replayer on it.
type replayTestEnv struct {
	s *Store
	r *Replayer
	// stop cancels the Replayer's Run and waits for it to return.
	stop func()
	// closeStore stops the store's Run and closes it (also done by Cleanup).
	closeStore func()
}

func newReplayTestEnv(t *testing.T, o ReplayOptions) *replayTestEnv {
	t.Helper()
	s, err := New(Options{DataDir: t.TempDir(), Retention: time.Hour, DLQRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() {
		defer close(sdone)
		if err := s.Run(sctx); err != nil {
			t.Errorf("Store.Run: %v", err)
		}
	}()
	var closeOnce sync.Once
	closeStore := func() {
		closeOnce.Do(func() {
			scancel()
			<-sdone
			s.Close()
		})
	}
	t.Cleanup(closeStore)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if err := s.waitReady(rctx); err != nil {
		t.Fatal(err)
	}

	if o.Owner == "" {
		o.Owner = "sidecar-test-1"
	}
	r, err := NewReplayer(s, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: got %v, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return &replayTestEnv{s: s, r: r, stop: stop, closeStore: closeStore}
}

func replayTestEvent(tenant, typ string, n int) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("ev-%s-%d", tenant, n), Type: typ, Source: "crm",
		Timestamp: "2026-11-26T10:00:00.123Z", CorrelationID: fmt.Sprintf("corr-%d", n), TenantID: tenant,
		UserID: "u-42", Version: "1.0", Data: []byte(fmt.Sprintf(`{"n":%d}`, n)),
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

// replayTestPublish stores ev on its tenant's subject the way the sidecar
// does and returns its stream sequence.
func replayTestPublish(t *testing.T, s *Store, ev *event.Event) uint64 {
	t.Helper()
	ack, err := s.js.PublishMsg(context.Background(), newMsg(s.names.subject(ev.TenantID), ev))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// replayTestPublishMany stores n events of type typ for tenant, pipelined
// 1000 at a time.
func replayTestPublishMany(t *testing.T, s *Store, tenant, typ string, n int) {
	t.Helper()
	for i := 0; i < n; i += 1000 {
		var futures []jetstream.PubAckFuture
		for j := i; j < min(i+1000, n); j++ {
			f, err := s.js.PublishMsgAsync(newMsg(s.names.subject(tenant), replayTestEvent(tenant, typ, j)))
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			}
		}
	}
}

// replayTestBoundary returns a millisecond that every message stored so far
// precedes and every message stored from now on follows (the embedded
// server stamps messages with this process's clock).
func replayTestBoundary() time.Time {
	b := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(time.Until(b) + time.Millisecond)
	return b
}

// replayTestAfter returns the messages stored after sequence seq.
func replayTestAfter(t *testing.T, s *Store, seq uint64) []*jetstream.RawStreamMsg {
	t.Helper()
	var out []*jetstream.RawStreamMsg
	for n := seq + 1; ; n++ {
		m, err := s.events.GetMsg(context.Background(), n)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func replayTestStreamLen(t *testing.T, s *Store) uint64 {
	t.Helper()
	info, err := s.events.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// replayTestWaitEnded polls the job until it is no longer running (20 s at most).
func replayTestWaitEnded(t *testing.T, r *Replayer, id string) relay.ReplayJob {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		job, err := r.GetReplay(context.Background(), id)
		if err != nil {
			t.Fatalf("GetReplay %s: %v", id, err)
		}
		if job.Status != relay.ReplayRunning {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay %s still running after 20 s: %+v", id, job)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replayTestRecord reads a job's stored record as it is in the bucket.
func replayTestRecord(t *testing.T, s *Store, id string) (replayRecord, jetstream.KeyValueEntry) {
	t.Helper()
	e, err := s.replays.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var rec replayRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	return rec, e
}

func replayTestPut(t *testing.T, s *Store, rec replayRecord) {
	t.Helper()
	if _, err := s.replays.Put(context.Background(), rec.ID, replayJSON(rec)); err != nil {
		t.Fatal(err)
	}
}

// replayTestLog is a concurrency-safe buffer for a JSON slog handler.
type replayTestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *replayTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// has reports whether a logged line holds msg and the replay id.
func (l *replayTestLog) has(msg, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, `"msg":"`+msg+`"`) && strings.Contains(line, `"replay_id":"`+id+`"`) {
			return true
		}
	}
	return false
}

func TestReplay_republishes_the_matching_events_of_the_range_as_replays(t *testing.T) {
	var logs replayTestLog
	env := newReplayTestEnv(t, ReplayOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	s := env.s
	// Before the range.
	replayTestPublish(t, s, replayTestEvent("acme", "approval.requested", 100))
	replayTestPublish(t, s, replayTestEvent("acme", "approval.granted", 101))
	from := replayTestBoundary()

	types := []string{"approval.requested", "approval.granted", "user.joined"}
	orig := map[uint64]*event.Event{}
	var want []uint64
	for i := range 9 {
		ev := replayTestEvent("acme", types[i%3], i)
		seq := replayTestPublish(t, s, ev)
		orig[seq] = ev
		if i%3 != 2 {
			want = append(want, seq)
		}
		if i == 4 {
			// In the range too, and not replayed: another tenant's
			// events, an event that is itself a replay, and a message
			// that is not an event (no id).
			replayTestPublish(t, s, replayTestEvent("beta", "approval.requested", 200))
			rep := replayTestEvent("acme", "approval.requested", 300)
			rep.Replay, rep.ReplayOf, rep.ReplayID = true, "1", "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d"
			replayTestPublish(t, s, rep)
			bad := &nats.Msg{Subject: s.names.subject("acme"), Data: []byte("{}"),
				Header: nats.Header{"type": {"approval.requested"}, "tenantId": {"acme"}}}
			if _, err := s.js.PublishMsg(context.Background(), bad); err != nil {
				t.Fatal(err)
			}
			replayTestPublish(t, s, replayTestEvent("beta", "approval.granted", 201))
		}
	}
	to := replayTestBoundary()
	// After the range.
	replayTestPublish(t, s, replayTestEvent("acme", "approval.requested", 400))
	last := replayTestPublish(t, s, replayTestEvent("acme", "approval.granted", 401))

	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{
		Tenant: "acme", From: from, To: to, Types: []string{"approval.*"}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != relay.ReplayRunning || job.Owner != "sidecar-test-1" || !job.To.Equal(to) || !job.From.Equal(from) {
		t.Errorf("started job: got status %q, owner %q, from %v, to %v; want running, sidecar-test-1, %v, %v",
			job.Status, job.Owner, job.From, job.To, from, to)
	}
	got := replayTestWaitEnded(t, env.r, job.ID)

	// acme in the range: 9 events, the replay and the non-event.
	if got.Status != relay.ReplayDone || got.Error != "" || got.Scanned != 11 || got.Matched != 6 || got.Republished != 6 {
		t.Errorf("job: got status %q error %q scanned %d matched %d republished %d; want done, no error, 11, 6, 6",
			got.Status, got.Error, got.Scanned, got.Matched, got.Republished)
	}
	if got.FinishedAt.IsZero() || got.FinishedAt.Before(got.StartedAt) || got.UpdatedAt.Before(got.StartedAt) ||
		!slices.Equal(got.Types, []string{"approval.*"}) || got.Tenant != "acme" || got.Owner != "sidecar-test-1" {
		t.Errorf("record: got %+v; want finished ≥ started, types [approval.*], tenant acme, the owner", got)
	}

	out := replayTestAfter(t, s, last)
	if len(out) != len(want) {
		t.Fatalf("new messages: got %d, want %d", len(out), len(want))
	}
	for i, m := range out {
		ev, err := decodeEvent(m.Header, m.Data)
		if err != nil {
			t.Fatalf("new message %d: %v", m.Sequence, err)
		}
		o := orig[want[i]]
		if m.Subject != "hyvve.events.acme" || ev.ID != o.ID || ev.Type != o.Type || string(ev.Data) != string(o.Data) ||
			ev.CorrelationID != o.CorrelationID || ev.Timestamp != o.Timestamp || ev.TraceParent != o.TraceParent ||
			ev.TenantID != o.TenantID || ev.Source != o.Source || ev.UserID != o.UserID || ev.Version != o.Version {
			t.Errorf("message %d on %s: got %s (traceparent %q), want the original %s (%q) on hyvve.events.acme",
				i, m.Subject, ev.AppendJSON(nil), ev.TraceParent, o.AppendJSON(nil), o.TraceParent)
		}
		wantOf := strconv.FormatUint(want[i], 10)
		if !ev.Replay || ev.ReplayOf != wantOf || ev.ReplayID != job.ID || ev.TargetGroup != "" {
			t.Errorf("message %d: got replay %v, replayOf %q, replayId %q, targetGroup %q; want true, %s, %s, none",
				i, ev.Replay, ev.ReplayOf, ev.ReplayID, ev.TargetGroup, wantOf, job.ID)
		}
	}
	if n := s.published.Load(); n < 6 {
		t.Errorf("published counter: got %d, want at least the 6 replays", n)
	}
	if !logs.has("replay started", job.ID) || !logs.has("replay finished", job.ID) {
		t.Errorf("log: want replay started and replay finished with replay_id %s, got\n%s", job.ID, logs.buf.String())
	}
}

func TestReplay_clamps_to_at_the_job_start(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	from := replayTestBoundary()
	for i := range 3 {
		replayTestPublish(t, env.s, replayTestEvent("acme", "order.paid", i))
	}
	before := time.Now().Add(-time.Millisecond)
	asked := time.Now().Add(2 * time.Hour)
	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: from, To: asked})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Millisecond)
	if job.To.Before(before) || job.To.After(after) || !job.To.Equal(job.StartedAt) {
		t.Errorf("to: got %v, want the job start %v (between %v and %v)", job.To, job.StartedAt, before, after)
	}
	if !job.RequestedTo.Equal(asked.Truncate(time.Millisecond)) {
		t.Errorf("requestedTo: got %v, want %v", job.RequestedTo, asked.Truncate(time.Millisecond))
	}
	got := replayTestWaitEnded(t, env.r, job.ID)
	if !got.To.Equal(job.To) || got.Scanned != 3 || got.Matched != 3 || got.Republished != 3 {
		t.Errorf("job: got to %v, scanned %d matched %d republished %d; want %v, 3, 3, 3",
			got.To, got.Scanned, got.Matched, got.Republished, job.To)
	}
}

func TestReplay_twice_does_not_replay_the_first_replays(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	from := replayTestBoundary()
	for i := range 5 {
		replayTestPublish(t, env.s, replayTestEvent("acme", "order.paid", i))
	}
	req := relay.ReplayRequest{Tenant: "acme", From: from, To: time.Now().Add(time.Hour)}
	first, err := env.r.StartReplay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := replayTestWaitEnded(t, env.r, first.ID); got.Scanned != 5 || got.Republished != 5 {
		t.Errorf("first job: got scanned %d republished %d, want 5, 5 (not its own output)", got.Scanned, got.Republished)
	}
	replayTestBoundary() // the second job starts in a later ms than the first's output
	second, err := env.r.StartReplay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := replayTestWaitEnded(t, env.r, second.ID)
	if got.Scanned != 10 || got.Matched != 5 || got.Republished != 5 {
		t.Errorf("second job: got scanned %d matched %d republished %d; want 10, 5, 5 (the first job's 5 replays skipped)",
			got.Scanned, got.Matched, got.Republished)
	}
	if n := replayTestStreamLen(t, env.s); n != 15 {
		t.Errorf("stream length: got %d, want 15", n)
	}
}

func TestReplay_of_every_tenant_for_one_group(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	s := env.s
	ctx := context.Background()
	// The consumer a sidecar with --group billing creates.
	if _, err := s.js.CreateOrUpdateConsumer(ctx, s.names.eventsStream(), jetstream.ConsumerConfig{
		Durable: durableName("billing"), DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: s.names.allEvents(), Metadata: map[string]string{groupMetadataKey: "billing"},
	}); err != nil {
		t.Fatal(err)
	}
	from := replayTestBoundary()
	replayTestPublish(t, s, replayTestEvent("acme", "order.paid", 1))
	replayTestPublish(t, s, replayTestEvent("beta", "order.paid", 2))
	last := replayTestPublish(t, s, replayTestEvent("acme", "order.paid", 3))
	to := replayTestBoundary()

	job, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "*", From: from, To: to, Group: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	got := replayTestWaitEnded(t, env.r, job.ID)
	if got.Status != relay.ReplayDone || got.Tenant != "*" || got.Group != "billing" || got.Scanned != 3 || got.Republished != 3 {
		t.Errorf("job: got %+v, want done, tenant *, group billing, 3 scanned and republished", got)
	}
	out := replayTestAfter(t, s, last)
	wantSubjects := []string{"hyvve.events.acme", "hyvve.events.beta", "hyvve.events.acme"}
	if len(out) != len(wantSubjects) {
		t.Fatalf("new messages: got %d, want %d", len(out), len(wantSubjects))
	}
	for i, m := range out {
		ev, err := decodeEvent(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != wantSubjects[i] || ev.TenantID != s.names.tenantOf(m.Subject) || ev.TargetGroup != "billing" || !ev.Replay {
			t.Errorf("message %d: got subject %s, tenant %s, targetGroup %q, replay %v; want %s, its tenant, billing, true",
				i, m.Subject, ev.TenantID, ev.TargetGroup, ev.Replay, wantSubjects[i])
		}
	}
}

func TestStartReplay_rejects_bad_requests_naming_the_field(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	ctx := context.Background()
	replayTestPublish(t, env.s, replayTestEvent("acme", "order.paid", 1))
	from, to := time.Now().Add(-time.Hour), time.Now()
	tests := []struct {
		name  string
		req   relay.ReplayRequest
		field string
	}{
		{"no tenant", relay.ReplayRequest{From: from, To: to}, "tenantId"},
		{"bad tenant id", relay.ReplayRequest{Tenant: "ac me", From: from, To: to}, "tenantId"},
		{"tenant without events", relay.ReplayRequest{Tenant: "nobody", From: from, To: to}, "tenantId"},
		{"no from", relay.ReplayRequest{Tenant: "acme", To: to}, "from"},
		{"from after to", relay.ReplayRequest{Tenant: "acme", From: to, To: from}, "from"},
		{"bad pattern", relay.ReplayRequest{Tenant: "acme", From: from, To: to, Types: []string{"approval.*", "Approval"}}, "types"},
		{"bad group name", relay.ReplayRequest{Tenant: "acme", From: from, To: to, Group: "bill ing"}, "group"},
		{"unregistered group", relay.ReplayRequest{Tenant: "acme", From: from, To: to, Group: "billing"}, "group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.r.StartReplay(ctx, tt.req)
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Field != tt.field {
				t.Fatalf("got %v, want an *event.Error naming %s", err, tt.field)
			}
		})
	}
	if list, err := env.r.ListReplays(ctx, 0); err != nil || len(list) != 0 {
		t.Errorf("jobs recorded for refused requests: got %v, %v; want none", replayTestIDs(list), err)
	}
}

func TestReplay_a_second_job_on_a_sidecar_running_its_most_is_refused(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{MaxRunning: 1})
	replayTestPublishMany(t, env.s, "acme", "order.paid", 3000)
	req := relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(1), To: time.Now().Add(time.Hour)}
	first, err := env.r.StartReplay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.r.StartReplay(context.Background(), req); !errors.Is(err, relay.ErrTooManyReplays) {
		t.Fatalf("second job while the first runs: got %v, want ErrTooManyReplays", err)
	}
	if got := replayTestWaitEnded(t, env.r, first.ID); got.Status != relay.ReplayDone || got.Republished != 3000 {
		t.Fatalf("first job: got %s with %d republished, want done with 3000", got.Status, got.Republished)
	}
	// The slot is free once the job's goroutine has returned.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.UnixMilli(1)})
		if err == nil {
			break
		}
		if !errors.Is(err, relay.ErrTooManyReplays) || time.Now().After(deadline) {
			t.Fatalf("a job after the first ended: got %v, want it started", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReplay_shutdown_marks_a_running_job_failed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	env := newReplayTestEnv(t, ReplayOptions{})
	replayTestPublishMany(t, env.s, "acme", "order.paid", 3000)
	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	env.stop() // returns once the job has recorded its end
	got, err := env.r.GetReplay(context.Background(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != relay.ReplayFailed || got.Error != relay.ShutdownReplayError || got.FinishedAt.IsZero() || got.Republished >= 3000 {
		t.Errorf("job after shutdown: got status %q error %q finished %v republished %d; want failed, %q, a time, < 3000",
			got.Status, got.Error, got.FinishedAt, got.Republished, relay.ShutdownReplayError)
	}
	_, err = env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.Now()})
	if !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("start after Run ended: got %v, want ErrUnavailable", err)
	}
	env.closeStore() // before goleak looks: the store's goroutines end here
}

func TestReplay_a_job_declared_dead_by_a_reader_stops_and_keeps_that_record(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	env.r.heartbeat = 10 * time.Millisecond
	replayTestPublishMany(t, env.s, "acme", "order.paid", 20000)
	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// What a reader writes when the heartbeat is late.
	rec, _ := replayTestRecord(t, env.s, job.ID)
	rec.Status, rec.Error = relay.ReplayFailed, relay.StaleReplayError
	replayTestPut(t, env.s, rec)

	deadline := time.Now().Add(10 * time.Second)
	for {
		n := env.r.slots.Running()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job still runs 10 s after it was declared dead")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := replayTestStreamLen(t, env.s); n >= 40000 {
		t.Errorf("stream length: got %d, want < 40000 (the job stopped instead of replaying everything)", n)
	}
	got, _ := replayTestRecord(t, env.s, job.ID)
	if got.Status != relay.ReplayFailed || got.Error != relay.StaleReplayError {
		t.Errorf("record: got status %q error %q, want failed, %q (not overwritten by the job)", got.Status, got.Error, relay.StaleReplayError)
	}
}

func TestGetReplay_reports_a_running_job_with_a_stale_heartbeat_as_failed(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	ctx := context.Background()
	replayTestPublish(t, env.s, replayTestEvent("acme", "order.paid", 1))
	// Records as a sidecar that then died leaves them; nothing runs them.
	req := relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.UnixMilli(1)}
	stale, _, err := env.s.createReplay(ctx, req, "dead-sidecar")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	fresh, _, err := env.s.createReplay(ctx, req, "live-sidecar")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := replayTestRecord(t, env.s, stale.ID)
	rec.UpdatedAt = time.Now().Add(-relay.ReplayStaleAfter - 2*time.Second)
	replayTestPut(t, env.s, rec)

	got, err := env.r.GetReplay(ctx, stale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != relay.ReplayFailed || got.Error != relay.StaleReplayError || got.FinishedAt.IsZero() || got.Owner != "dead-sidecar" {
		t.Errorf("stale job: got status %q error %q finished %v owner %q; want failed, %q, a time, dead-sidecar",
			got.Status, got.Error, got.FinishedAt, got.Owner, relay.StaleReplayError)
	}
	if stored, _ := replayTestRecord(t, env.s, stale.ID); stored.Status != relay.ReplayFailed {
		t.Errorf("stored status: got %q, want failed (written, not only reported)", stored.Status)
	}
	if got, err := env.r.GetReplay(ctx, fresh.ID); err != nil || got.Status != relay.ReplayRunning {
		t.Errorf("job with a fresh heartbeat: got %q, %v; want running", got.Status, err)
	}
	list, err := env.r.ListReplays(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != fresh.ID || list[1].ID != stale.ID || list[1].Status != relay.ReplayFailed {
		t.Errorf("list: got %v, want the fresh job then the stale one, failed", replayTestIDs(list))
	}
}

func replayTestIDs(jobs []relay.ReplayJob) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID + " " + j.Status
	}
	return out
}

func TestListReplays_newest_first_within_the_limit(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	ctx := context.Background()
	replayTestPublish(t, env.s, replayTestEvent("acme", "order.paid", 1))
	var ids []string
	for range 4 {
		job, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.UnixMilli(1)})
		if err != nil {
			t.Fatal(err)
		}
		replayTestWaitEnded(t, env.r, job.ID)
		ids = append([]string{job.ID}, ids...)
		time.Sleep(2 * time.Millisecond) // distinct start times
	}
	list, err := env.r.ListReplays(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := replayTestIDs(list); !slices.Equal(got, []string{ids[0] + " done", ids[1] + " done", ids[2] + " done"}) {
		t.Errorf("list limit 3: got %v, want the 3 newest of %v, done", got, ids)
	}
	// A record that expired leaves the listing; so does one that is not a
	// job's, and a key that is not a job id.
	if err := env.s.replays.Delete(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"ffffffff-ffff-7fff-bfff-ffffffffffff": "not json", "other": "{}"} {
		if _, err := env.s.replays.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	list, err = env.r.ListReplays(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != ids[0] || list[1].ID != ids[2] || list[2].ID != ids[3] {
		t.Errorf("list after one expired: got %v, want %v", replayTestIDs(list), []string{ids[0], ids[2], ids[3]})
	}
}

func TestGetReplay_unknown_and_malformed_ids(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	if _, err := env.r.GetReplay(context.Background(), "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d"); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("unknown id: got %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "x", "0193A6C4-5F1E-7C3A-9B2D-4E8F0A1B2C3D", "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d0",
		"*", "0193a6c4 5f1e-7c3a-9b2d-4e8f0a1b2c3d", "hyvve.events.>"} {
		t.Run(id, func(t *testing.T) {
			var ee *event.Error
			if _, err := env.r.GetReplay(context.Background(), id); !errors.As(err, &ee) || ee.Field != "id" {
				t.Errorf("got %v, want an *event.Error naming id", err)
			}
		})
	}
}

func TestReplay_reports_an_unavailable_broker(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	env.closeStore()
	ctx := context.Background()
	if _, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: time.UnixMilli(0), To: time.UnixMilli(1)}); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("start: got %v, want ErrUnavailable", err)
	}
	if _, err := env.r.ListReplays(ctx, 0); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("list: got %v, want ErrUnavailable", err)
	}
	if _, err := env.r.GetReplay(ctx, "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d"); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("get: got %v, want ErrUnavailable", err)
	}
}

func TestReplay_of_20000_events_takes_seconds(t *testing.T) {
	env := newReplayTestEnv(t, ReplayOptions{})
	const n = 20000
	replayTestPublishMany(t, env.s, "acme", "order.paid", n)
	start := time.Now()
	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{
		Tenant: "acme", From: time.UnixMilli(0), To: time.Now().Add(time.Hour), Types: []string{"order.*"}})
	if err != nil {
		t.Fatal(err)
	}
	got := replayTestWaitEnded(t, env.r, job.ID)
	took := time.Since(start)
	t.Logf("replayed %d events in %v (%.0f/s)", got.Republished, took.Round(time.Millisecond), float64(got.Republished)/took.Seconds())
	if got.Status != relay.ReplayDone || got.Scanned != n || got.Matched != n || got.Republished != n {
		t.Errorf("job: got status %q scanned %d matched %d republished %d, want done, %d each", got.Status, got.Scanned,
			got.Matched, got.Republished, n)
	}
	if l := replayTestStreamLen(t, env.s); l != 2*n {
		t.Errorf("stream length: got %d, want %d", l, 2*n)
	}
	if took > 10*time.Second {
		t.Errorf("took %v, want a few seconds", took)
	}
}
