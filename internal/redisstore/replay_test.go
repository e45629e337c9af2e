package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// replayEnv is a redis-server, a publish-only Store and a running Replayer.
type replayEnv struct {
	s *Store
	c *redis.Client
	r *Replayer
	// stop cancels Run and waits for it to return.
	stop func()
}

func newReplayEnv(t *testing.T, o ReplayOptions) *replayEnv {
	t.Helper()
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL(), Retention: time.Hour, DLQRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
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
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	}
	t.Cleanup(stop)
	return &replayEnv{s: s, c: srv.Client(t), r: r, stop: stop}
}

// seedAt appends ev to its tenant's stream with the entry id <ms>-<seq>, in
// the sidecar's entry format, and registers the tenant.
func seedAt(t *testing.T, c *redis.Client, ev *event.Event, ms int64, seq int) string {
	t.Helper()
	ctx := context.Background()
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:events:{" + ev.TenantID + "}", ID: fmt.Sprintf("%d-%d", ms, seq),
		Values: ev.AppendValues(nil)}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SAdd(ctx, "hyvve:tenants", ev.TenantID).Err(); err != nil {
		t.Fatal(err)
	}
	return id
}

// seedMany appends n events of type typ to acme's stream, 1000 per pipeline.
func seedMany(t *testing.T, c *redis.Client, n int, typ string) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		pipe := c.Pipeline()
		for j := i; j < min(i+1000, n); j++ {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: "hyvve:events:{acme}", Values: testEvent("acme", typ, j).AppendValues(nil)})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SAdd(ctx, "hyvve:tenants", "acme").Err(); err != nil {
		t.Fatal(err)
	}
}

// waitEnded polls the job until it is no longer running (10 s at most).
func waitEnded(t *testing.T, r *Replayer, id string) relay.ReplayJob {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		job, err := r.GetReplay(context.Background(), id)
		if err != nil {
			t.Fatalf("GetReplay %s: %v", id, err)
		}
		if job.Status != relay.ReplayRunning {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay %s still running after 10 s: %+v", id, job)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// entriesAfter returns the entries of the stream after id.
func entriesAfter(t *testing.T, c *redis.Client, stream, id string) []redis.XMessage {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, "("+id, "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func ms(n int64) time.Time { return time.UnixMilli(n) }

func TestReplay_pages_a_range_and_republishes_the_matching_events_as_replays(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{PageSize: 3}) // many pages, one ending exactly at the range's end
	c := env.c
	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	types := []string{"approval.requested", "approval.granted", "user.joined"}
	orig := map[string]*event.Event{} // stream id → event
	var last string
	for i := range 20 {
		ev := testEvent("acme", types[i%3], i)
		last = seedAt(t, c, ev, base+int64(i), 0)
		orig[last] = ev
		if i == 12 {
			// In the range too, and skipped: an entry that is itself a
			// replay, and an entry that is not an event (no id).
			rep := testEvent("acme", "approval.requested", 100)
			rep.Replay, rep.ReplayOf, rep.ReplayID = true, "1-0", "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d"
			seedAt(t, c, rep, base+12, 1)
			if err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: "hyvve:events:{acme}", ID: fmt.Sprintf("%d-2", base+12),
				Values: []any{"type", "approval.requested", "tenantId", "acme"}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}

	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{
		Tenant: "acme", From: ms(base + 5), To: ms(base + 15), Types: []string{"approval.*"}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != relay.ReplayRunning || job.Owner != "sidecar-test-1" || !job.To.Equal(ms(base+15)) {
		t.Errorf("started job: got status %q, owner %q, to %v; want running, sidecar-test-1, %v", job.Status, job.Owner, job.To, ms(base+15))
	}
	got := waitEnded(t, env.r, job.ID)

	// Entries base+5 … base+14: 10 events, the replay and the non-event.
	// approval.* among the events: i = 6, 7, 9, 10, 12, 13.
	var want []string
	for i := 5; i < 15; i++ {
		if i%3 != 2 {
			want = append(want, fmt.Sprintf("%d-0", base+int64(i)))
		}
	}
	if got.Status != relay.ReplayDone || got.Error != "" || got.Scanned != 12 || got.Matched != 6 || got.Republished != 6 {
		t.Errorf("job: got status %q error %q scanned %d matched %d republished %d; want done, no error, 12, 6, 6",
			got.Status, got.Error, got.Scanned, got.Matched, got.Republished)
	}
	if got.FinishedAt.IsZero() || got.FinishedAt.Before(got.StartedAt) || got.UpdatedAt.Before(got.StartedAt) {
		t.Errorf("times: started %v updated %v finished %v; want finished ≥ started", got.StartedAt, got.UpdatedAt, got.FinishedAt)
	}

	out := entriesAfter(t, c, "hyvve:events:{acme}", last)
	if len(out) != len(want) {
		t.Fatalf("new entries: got %d, want %d", len(out), len(want))
	}
	for i, m := range out {
		ev, err := event.FromValues(m.Values)
		if err != nil {
			t.Fatalf("new entry %s: %v", m.ID, err)
		}
		o := orig[want[i]]
		if ev.ID != o.ID || ev.Type != o.Type || string(ev.Data) != string(o.Data) || ev.CorrelationID != o.CorrelationID ||
			ev.Timestamp != o.Timestamp || ev.TraceParent != o.TraceParent {
			t.Errorf("entry %d: got %s (traceparent %q), want the original %s (%q)", i, ev.AppendJSON(nil), ev.TraceParent,
				o.AppendJSON(nil), o.TraceParent)
		}
		if !ev.Replay || ev.ReplayOf != want[i] || ev.ReplayID != job.ID || ev.TargetGroup != "" {
			t.Errorf("entry %d: got replay %v, replayOf %q, replayId %q, targetGroup %q; want true, %s, %s, none",
				i, ev.Replay, ev.ReplayOf, ev.ReplayID, ev.TargetGroup, want[i], job.ID)
		}
	}
	if n, _ := c.SCard(context.Background(), "hyvve:tenants").Result(); n != 1 {
		t.Errorf("tenant registry: got %d members, want 1 (a replay registers nothing)", n)
	}
	// Readers waiting on the signal stream are told of the replayed entries.
	if sig, err := c.XRevRangeN(context.Background(), "hyvve:notify", "+", "-", 1).Result(); err != nil || len(sig) != 1 ||
		sig[0].Values["tenants"] != "acme" {
		t.Errorf("signal after the replay: got %v, %v; want one naming acme", sig, err)
	}
}

func TestReplay_clamps_to_at_the_job_start(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	c := env.c
	base := time.Now().Add(-time.Minute).UnixMilli()
	for i := range 3 {
		seedAt(t, c, testEvent("acme", "order.paid", i), base+int64(i), 0)
	}
	// An entry with an id an hour ahead (a clock that was wrong): past the
	// job's start, so not read.
	future := time.Now().Add(time.Hour).UnixMilli()
	seedAt(t, c, testEvent("acme", "order.paid", 9), future, 0)

	before := time.Now().Add(-time.Second)
	asked := time.Now().Add(2 * time.Hour)
	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: ms(base), To: asked})
	if err != nil {
		t.Fatal(err)
	}
	if job.To.Before(before) || job.To.After(time.Now().Add(time.Second)) || !job.To.Equal(job.StartedAt) {
		t.Errorf("to: got %v, want the job start %v (about now)", job.To, job.StartedAt)
	}
	if !job.RequestedTo.Equal(ms(asked.UnixMilli())) {
		t.Errorf("requestedTo: got %v, want %v", job.RequestedTo, asked)
	}
	got := waitEnded(t, env.r, job.ID)
	if got.Scanned != 3 || got.Matched != 3 || got.Republished != 3 {
		t.Errorf("counters: got scanned %d matched %d republished %d, want 3, 3, 3 (the future entry unread)",
			got.Scanned, got.Matched, got.Republished)
	}
}

func TestReplay_twice_does_not_replay_the_first_replays(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	c := env.c
	base := time.Now().Add(-time.Minute).UnixMilli()
	for i := range 5 {
		seedAt(t, c, testEvent("acme", "order.paid", i), base+int64(i), 0)
	}
	req := relay.ReplayRequest{Tenant: "acme", From: ms(base), To: time.Now().Add(time.Hour)}
	first, err := env.r.StartReplay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	waitEnded(t, env.r, first.ID)
	time.Sleep(5 * time.Millisecond) // the second job starts in a later ms than the first's output
	second, err := env.r.StartReplay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := waitEnded(t, env.r, second.ID)
	if got.Scanned != 10 || got.Matched != 5 || got.Republished != 5 {
		t.Errorf("second job: got scanned %d matched %d republished %d; want 10, 5, 5 (the first job's 5 replays skipped)",
			got.Scanned, got.Matched, got.Republished)
	}
	if n, _ := c.XLen(context.Background(), "hyvve:events:{acme}").Result(); n != 15 {
		t.Errorf("stream length: got %d, want 15", n)
	}
}

func TestReplay_of_every_tenant_for_one_group(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	c := env.c
	ctx := context.Background()
	if err := c.HSet(ctx, "hyvve:groups", "billing", time.Now().UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Minute).UnixMilli()
	lastAcme := seedAt(t, c, testEvent("acme", "order.paid", 1), base, 0)
	lastAcme = seedAt(t, c, testEvent("acme", "order.paid", 2), base+1, 0)
	lastBeta := seedAt(t, c, testEvent("beta", "order.paid", 3), base+2, 0)
	// A registered tenant without a stream, and a registry member that is
	// not a tenant id (never part of a key).
	if err := c.SAdd(ctx, "hyvve:tenants", "ghost", "bad tenant}").Err(); err != nil {
		t.Fatal(err)
	}

	job, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "*", From: ms(base), To: time.Now(), Group: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	got := waitEnded(t, env.r, job.ID)
	if got.Status != relay.ReplayDone || got.Tenant != "*" || got.Group != "billing" || got.Scanned != 3 || got.Republished != 3 {
		t.Errorf("job: got %+v, want done, tenant *, group billing, 3 scanned and republished", got)
	}
	for stream, after := range map[string]string{"hyvve:events:{acme}": lastAcme, "hyvve:events:{beta}": lastBeta} {
		out := entriesAfter(t, c, stream, after)
		if stream == "hyvve:events:{acme}" && len(out) != 2 || stream == "hyvve:events:{beta}" && len(out) != 1 {
			t.Errorf("%s: got %d replays, want its own events only", stream, len(out))
		}
		for _, m := range out {
			if m.Values["targetGroup"] != "billing" || m.Values["replay"] != "true" {
				t.Errorf("%s %s: got targetGroup %v, replay %v; want billing, true", stream, m.ID, m.Values["targetGroup"], m.Values["replay"])
			}
		}
	}
	if n, _ := c.Exists(ctx, "hyvve:events:{ghost}", "hyvve:events:{bad tenant}}").Result(); n != 0 {
		t.Errorf("a replay created %d streams, want none", n)
	}
}

func TestStartReplay_rejects_bad_requests_naming_the_field(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	ctx := context.Background()
	if err := env.c.SAdd(ctx, "hyvve:tenants", "acme").Err(); err != nil {
		t.Fatal(err)
	}
	if err := env.c.HSet(ctx, "hyvve:groups", "billing", "1").Err(); err != nil {
		t.Fatal(err)
	}
	from, to := time.Now().Add(-time.Hour), time.Now()
	tests := []struct {
		name  string
		req   relay.ReplayRequest
		field string
	}{
		{"no tenant", relay.ReplayRequest{From: from, To: to}, "tenantId"},
		{"bad tenant id", relay.ReplayRequest{Tenant: "ac me", From: from, To: to}, "tenantId"},
		{"unknown tenant", relay.ReplayRequest{Tenant: "nobody", From: from, To: to}, "tenantId"},
		{"no from", relay.ReplayRequest{Tenant: "acme", To: to}, "from"},
		{"no to", relay.ReplayRequest{Tenant: "acme", From: from}, "to"},
		{"from after to", relay.ReplayRequest{Tenant: "acme", From: to, To: from}, "from"},
		{"from equal to", relay.ReplayRequest{Tenant: "acme", From: to, To: to}, "from"},
		{"bad pattern", relay.ReplayRequest{Tenant: "acme", From: from, To: to, Types: []string{"approval.*", "Approval"}}, "types"},
		{"bad group name", relay.ReplayRequest{Tenant: "acme", From: from, To: to, Group: "bill ing"}, "group"},
		{"unknown group", relay.ReplayRequest{Tenant: "acme", From: from, To: to, Group: "billin"}, "group"},
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
	if n, _ := env.c.ZCard(ctx, "hyvve:replays").Result(); n != 0 {
		t.Errorf("jobs recorded for refused requests: got %d, want 0", n)
	}
}

func TestReplay_a_third_job_on_a_sidecar_running_its_most_is_refused(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{MaxRunning: 1, PageSize: 3})
	seedMany(t, env.c, 3000, "order.paid") // 1000 pages: running for a while
	req := relay.ReplayRequest{Tenant: "acme", From: ms(0), To: time.Now().Add(time.Hour)}
	first, err := env.r.StartReplay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.r.StartReplay(context.Background(), req); !errors.Is(err, relay.ErrTooManyReplays) {
		t.Fatalf("second job while the first runs: got %v, want ErrTooManyReplays", err)
	}
	if got := waitEnded(t, env.r, first.ID); got.Status != relay.ReplayDone || got.Republished != 3000 {
		t.Fatalf("first job: got %s with %d republished, want done with 3000", got.Status, got.Republished)
	}
	// The slot is free once the job's goroutine has returned: just after it
	// recorded its end (Run's shutdown waits for that record to be written).
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: ms(0), To: ms(1)})
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
	env := newReplayEnv(t, ReplayOptions{PageSize: 3})
	seedMany(t, env.c, 3000, "order.paid")
	// Run's goroutine is started; the job's goroutines are not yet.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	job, err := env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: ms(0), To: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	env.stop() // returns once the job has recorded its end
	got, err := env.r.GetReplay(context.Background(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != relay.ReplayFailed || got.Error != relay.ShutdownReplayError || got.FinishedAt.IsZero() || got.Scanned >= 3000 {
		t.Errorf("job after shutdown: got status %q error %q finished %v scanned %d; want failed, %q, a time, < 3000",
			got.Status, got.Error, got.FinishedAt, got.Scanned, relay.ShutdownReplayError)
	}
	_, err = env.r.StartReplay(context.Background(), relay.ReplayRequest{Tenant: "acme", From: ms(0), To: time.Now()})
	if !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("start after Run ended: got %v, want ErrUnavailable", err)
	}
}

func TestReplay_a_job_declared_dead_by_a_reader_stops_and_keeps_that_record(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{PageSize: 3})
	ctx := context.Background()
	seedMany(t, env.c, 30000, "order.paid") // 10,000 pages: seconds
	job, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: ms(0), To: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	key := "hyvve:replay:" + job.ID
	// What a reader writes when the heartbeat is late.
	if err := env.c.HSet(ctx, key, "status", "failed", "error", relay.StaleReplayError).Err(); err != nil {
		t.Fatal(err)
	}
	var prev int64 = -1
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		n, err := env.c.XLen(ctx, "hyvve:events:{acme}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == prev {
			if n >= 60000 {
				t.Fatalf("the job replayed everything (%d entries) instead of stopping", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream still grows 5 s after the job was declared dead (%d entries)", n)
		}
		prev = n
	}
	h, err := env.c.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["status"] != "failed" || h["error"] != relay.StaleReplayError {
		t.Errorf("record: got status %q error %q, want failed, %q (not overwritten by the job)", h["status"], h["error"], relay.StaleReplayError)
	}
}

func TestGetReplay_reports_a_running_job_with_a_stale_heartbeat_as_failed(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	ctx := context.Background()
	if err := env.c.SAdd(ctx, "hyvve:tenants", "acme").Err(); err != nil {
		t.Fatal(err)
	}
	// Records as a sidecar that then died leaves them; nothing runs them.
	stale, err := env.s.createReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: ms(0), To: ms(1)}, "dead-sidecar")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := env.s.createReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: ms(0), To: ms(1)}, "live-sidecar")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-relay.ReplayStaleAfter - 2*time.Second).UnixMilli()
	if err := env.c.HSet(ctx, "hyvve:replay:"+stale.ID, "updatedAt", old).Err(); err != nil {
		t.Fatal(err)
	}

	got, err := env.r.GetReplay(ctx, stale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != relay.ReplayFailed || got.Error != relay.StaleReplayError || got.FinishedAt.IsZero() || got.Owner != "dead-sidecar" {
		t.Errorf("stale job: got status %q error %q finished %v owner %q; want failed, %q, a time, dead-sidecar",
			got.Status, got.Error, got.FinishedAt, got.Owner, relay.StaleReplayError)
	}
	if s, _ := env.c.HGet(ctx, "hyvve:replay:"+stale.ID, "status").Result(); s != "failed" {
		t.Errorf("stored status: got %q, want failed (written, not only reported)", s)
	}
	if got, err := env.r.GetReplay(ctx, fresh.ID); err != nil || got.Status != relay.ReplayRunning {
		t.Errorf("job with a fresh heartbeat: got %q, %v; want running", got.Status, err)
	}
	list, err := env.r.ListReplays(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != fresh.ID || list[1].ID != stale.ID || list[1].Status != relay.ReplayFailed {
		t.Errorf("list: got %v, want the fresh job then the stale one, failed", jobIDs(list))
	}
}

func jobIDs(jobs []relay.ReplayJob) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID + " " + j.Status
	}
	return out
}

func TestListReplays_newest_first_within_the_limit_without_expired_jobs(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	ctx := context.Background()
	if err := env.c.SAdd(ctx, "hyvve:tenants", "acme").Err(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 4 {
		job, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: ms(0), To: ms(1)})
		if err != nil {
			t.Fatal(err)
		}
		waitEnded(t, env.r, job.ID)
		ids = append([]string{job.ID}, ids...)
		time.Sleep(2 * time.Millisecond) // distinct start times
	}
	if ttl, _ := env.c.PTTL(ctx, "hyvve:replay:"+ids[0]).Result(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("record TTL: got %v, want the retention (1h)", ttl)
	}
	list, err := env.r.ListReplays(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := jobIDs(list); !slices.Equal(got, []string{ids[0] + " done", ids[1] + " done", ids[2] + " done"}) {
		t.Errorf("list limit 3: got %v, want the 3 newest of %v, done", got, ids)
	}
	// A record that expired leaves the listing and the index.
	if err := env.c.Del(ctx, "hyvve:replay:"+ids[1]).Err(); err != nil {
		t.Fatal(err)
	}
	list, err = env.r.ListReplays(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != ids[0] || list[1].ID != ids[2] || list[2].ID != ids[3] {
		t.Errorf("list after one expired: got %v, want %v", jobIDs(list), []string{ids[0], ids[2], ids[3]})
	}
	if n, _ := env.c.ZCard(ctx, "hyvve:replays").Result(); n != 3 {
		t.Errorf("index: got %d entries, want 3", n)
	}
}

func TestGetReplay_unknown_and_malformed_ids(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	if _, err := env.r.GetReplay(context.Background(), "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d"); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("unknown id: got %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "x", "0193A6C4-5F1E-7C3A-9B2D-4E8F0A1B2C3D", "0193a6c4-5f1e-7c3a-9b2d-4e8f0a1b2c3d0", "*", "0193a6c4 5f1e-7c3a-9b2d-4e8f0a1b2c3d"} {
		var ee *event.Error
		if _, err := env.r.GetReplay(context.Background(), id); !errors.As(err, &ee) || ee.Field != "id" {
			t.Errorf("id %q: got %v, want an *event.Error naming id", id, err)
		}
	}
}

func TestReplay_reports_an_unavailable_broker(t *testing.T) {
	env := newReplayEnv(t, ReplayOptions{})
	env.s.Close()
	ctx := context.Background()
	if _, err := env.r.StartReplay(ctx, relay.ReplayRequest{Tenant: "acme", From: ms(0), To: ms(1)}); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("start: got %v, want ErrUnavailable", err)
	}
	if _, err := env.r.ListReplays(ctx, 0); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("list: got %v, want ErrUnavailable", err)
	}
}

func TestNextPageSize_holds_about_4_MiB_within_the_bounds(t *testing.T) {
	tests := []struct {
		name              string
		size, n, pageSize int
		want              int
	}{
		{"small events fill the page", 256 * 500, 256, 256, 256},
		{"16 KiB events", 16 * (16 << 10), 16, 256, 256},
		{"64 KiB events", 16 * (64 << 10), 16, 256, 64},
		{"1 MiB events", 16 << 20, 16, 256, 4},
		{"60 MiB events still read a few", 4 * (60 << 20), 4, 256, 4},
		{"a smaller page size bounds it", 100, 1, 3, 3},
		{"empty entries", 0, 5, 256, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextPageSize(tt.size, tt.n, tt.pageSize); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
