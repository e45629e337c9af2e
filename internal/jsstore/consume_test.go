package jsstore

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

func TestFetch_delivers_each_event_once_and_nothing_after_ack(t *testing.T) {
	s := open(t, Options{Group: "billing", Retry: fastRetry(t)})
	plain := newEvent("acme", 1)
	traced := newEvent("globex", 2)
	traced.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced.TraceState = "vendor=x"
	replayed := newEvent("acme", 3)
	replayed.Replay, replayed.ReplayOf, replayed.ReplayID, replayed.TargetGroup = true, plain.ID, "r-1", "billing"
	evs := []*event.Event{plain, traced, replayed}
	res := publish(t, s.Store, evs...)

	got := fetchN(t, s.Store, len(evs), 5*time.Second)
	if len(got) != len(evs) {
		t.Fatalf("got %d messages, want %d", len(got), len(evs))
	}
	for i, m := range got {
		want := evs[i] // one subject filter: delivered in stream order
		if m.Err != nil {
			t.Fatalf("message %d: Err %v", i, m.Err)
		}
		if !reflect.DeepEqual(m.Event, want) {
			t.Errorf("message %d: got event %+v, want %+v", i, m.Event, want)
		}
		if m.Tenant != want.TenantID {
			t.Errorf("message %d: got tenant %q, want %q", i, m.Tenant, want.TenantID)
		}
		if wantStream := "hyvve.events." + want.TenantID; m.Stream != wantStream || res[i].Stream != wantStream {
			t.Errorf("message %d: got stream %q (publish said %q), want %q", i, m.Stream, res[i].Stream, wantStream)
		}
		if m.StreamID != res[i].StreamID || m.StreamID != strconv.Itoa(i+1) {
			t.Errorf("message %d: got stream id %q (publish said %q), want %d", i, m.StreamID, res[i].StreamID, i+1)
		}
		if m.Attempt != 1 {
			t.Errorf("message %d: got attempt %d, want 1", i, m.Attempt)
		}
	}
	ack(t, s.Store, got...)
	fetchNone(t, s.Store, 3*s.opts.Retry.Shortest())
}

func TestFetch_without_a_group_fails(t *testing.T) {
	s := open(t, Options{})
	if _, err := s.Fetch(context.Background(), 1); err == nil {
		t.Fatal("Fetch on a publish-only store: got no error, want one")
	}
}

func TestFetch_returns_when_ctx_ends(t *testing.T) {
	s := open(t, Options{Group: "billing", Retry: slowRetry(t)})
	cases := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr bool
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 30*time.Millisecond)
		}, false}, // an empty answer (the fetch expired first) or an error
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(30*time.Millisecond, cancel)
			return ctx, cancel
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			msgs, err := s.Fetch(ctx, 10)
			if took := time.Since(start); took > 150*time.Millisecond {
				t.Errorf("Fetch took %s with ctx ending after 30ms, want it to return then", took)
			}
			if len(msgs) != 0 || (tc.wantErr && err == nil) {
				t.Errorf("got %d messages, error %v; want none (and an error: %v)", len(msgs), err, tc.wantErr)
			}
		})
	}
}

func TestRetry_counts_attempts_and_holds_each_redelivery_until_notBefore(t *testing.T) {
	pol := fastRetry(t)
	s := open(t, Options{Group: "billing", Retry: pol})
	ev := newEvent("acme", 1)
	publish(t, s.Store, ev)

	m := fetchN(t, s.Store, 1, 5*time.Second)[0]
	for attempt := 1; attempt < pol.MaxAttempts(); attempt++ {
		if m.Attempt != attempt {
			t.Fatalf("got attempt %d, want %d", m.Attempt, attempt)
		}
		wait, ok := pol.Next(attempt, 503, 0)
		if !ok {
			t.Fatalf("attempt %d: the policy gives up, want a retry", attempt)
		}
		notBefore := time.Now().Add(wait)
		if err := s.Retry(context.Background(), m, notBefore, "HTTP 503"); err != nil {
			t.Fatal(err)
		}
		next := fetchN(t, s.Store, 1, wait+3*time.Second)[0]
		if now := time.Now(); now.Before(notBefore) {
			t.Fatalf("attempt %d came %s before notBefore", next.Attempt, notBefore.Sub(now))
		}
		if next.StreamID != m.StreamID || next.Event.ID != ev.ID {
			t.Fatalf("got entry %s (event %s), want %s (event %s)", next.StreamID, next.Event.ID, m.StreamID, ev.ID)
		}
		m = next
	}
	if m.Attempt != pol.MaxAttempts() {
		t.Fatalf("last delivery: got attempt %d, want %d", m.Attempt, pol.MaxAttempts())
	}
	ack(t, s.Store, m)
	fetchNone(t, s.Store, 3*pol.Shortest())
}

func TestRetry_with_notBefore_passed_redelivers_at_once(t *testing.T) {
	s := open(t, Options{Group: "billing", Retry: slowRetry(t)}) // ack wait 1 min
	publish(t, s.Store, newEvent("acme", 1))
	m := fetchN(t, s.Store, 1, 5*time.Second)[0]
	if err := s.Retry(context.Background(), m, time.Now().Add(-time.Second), "timeout"); err != nil {
		t.Fatal(err)
	}
	if next := fetchN(t, s.Store, 1, 2*time.Second)[0]; next.Attempt != 2 {
		t.Errorf("got attempt %d, want 2", next.Attempt)
	}
}

func TestFetch_redelivers_what_a_closed_sidecar_held_to_another_of_its_group(t *testing.T) {
	srv, url := openServer(t)
	pol := fastRetry(t)
	dead := open(t, Options{URL: url, Group: "billing", Consumer: "dead", Retry: pol})
	live := open(t, Options{URL: url, Group: "billing", Consumer: "live", Retry: pol})
	ev := newEvent("acme", 1)
	publish(t, srv.Store, ev)

	held := fetchN(t, dead.Store, 1, 5*time.Second)[0]
	fetchedAt := time.Now()
	dead.stop() // the sidecar dies without answering

	m := fetchN(t, live.Store, 1, 5*time.Second)[0]
	if since := time.Since(fetchedAt); since < pol.Shortest() {
		t.Errorf("redelivered %s after the first delivery, want no sooner than the ack wait %s", since, pol.Shortest())
	}
	if m.Attempt != 2 || m.StreamID != held.StreamID || m.Event.ID != ev.ID {
		t.Errorf("got attempt %d of entry %s (event %s), want attempt 2 of %s (event %s)",
			m.Attempt, m.StreamID, m.Event.ID, held.StreamID, ev.ID)
	}
}

func TestFetch_fans_out_to_every_group_and_shares_within_one(t *testing.T) {
	srv, url := openServer(t)
	pol := slowRetry(t) // nothing is redelivered: every delivery counted is a first one
	billingA := open(t, Options{URL: url, Group: "billing", Consumer: "a", Retry: pol})
	billingB := open(t, Options{URL: url, Group: "billing", Consumer: "b", Retry: pol})
	audit := open(t, Options{URL: url, Group: "audit.v2", Consumer: "a", Retry: pol})

	const n = 20
	var evs []*event.Event
	for i := range n {
		evs = append(evs, newEvent([]string{"acme", "globex"}[i%2], i))
	}
	publish(t, srv.Store, evs...)

	auditGot := fetchN(t, audit.Store, n, 5*time.Second)
	ack(t, audit.Store, auditGot...)
	fetchNone(t, audit.Store, 300*time.Millisecond)

	// The two consumers of billing take turns, one message each.
	perConsumer := map[string]int{}
	var billingGot []*relay.Message
	for deadline := time.Now().Add(10 * time.Second); len(billingGot) < n && time.Now().Before(deadline); {
		for _, c := range []*testStore{billingA, billingB} {
			msgs, err := c.Fetch(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			ack(t, c.Store, msgs...)
			perConsumer[c.opts.Consumer] += len(msgs)
			billingGot = append(billingGot, msgs...)
		}
	}
	fetchNone(t, billingA.Store, 300*time.Millisecond)
	fetchNone(t, billingB.Store, 300*time.Millisecond)

	for _, tc := range []struct {
		group string
		got   []*relay.Message
	}{{"audit.v2", auditGot}, {"billing", billingGot}} {
		ids := eventIDs(tc.got)
		for _, e := range evs {
			if ids[e.ID] != 1 {
				t.Errorf("group %s: event %s delivered %d times, want once", tc.group, e.ID, ids[e.ID])
			}
		}
		if len(tc.got) != n {
			t.Errorf("group %s: got %d deliveries, want %d", tc.group, len(tc.got), n)
		}
	}
	if perConsumer["a"] == 0 || perConsumer["b"] == 0 {
		t.Errorf("billing's consumers got %v, want both a share", perConsumer)
	}
}

func TestGroup_created_after_events_gets_only_the_later_ones(t *testing.T) {
	dir := t.TempDir()
	before := []*event.Event{newEvent("acme", 1), newEvent("globex", 2)}
	pub := open(t, Options{DataDir: dir})
	publish(t, pub.Store, before...)
	pub.stop()

	s := open(t, Options{DataDir: dir, Group: "late", Retry: slowRetry(t)})
	fetchNone(t, s.Store, 300*time.Millisecond)
	after := []*event.Event{newEvent("acme", 3), newEvent("initech", 4)}
	publish(t, s.Store, after...)
	got := fetchN(t, s.Store, len(after), 5*time.Second)
	ids := eventIDs(got)
	for _, e := range after {
		if ids[e.ID] != 1 {
			t.Errorf("event %s published after the group: delivered %d times, want once", e.ID, ids[e.ID])
		}
	}
	for _, e := range before {
		if ids[e.ID] != 0 {
			t.Errorf("event %s published before the group: delivered, want not", e.ID)
		}
	}
	ack(t, s.Store, got...)
	fetchNone(t, s.Store, 300*time.Millisecond)
}

func TestStore_restarted_on_its_data_dir_redelivers_unacked_events(t *testing.T) {
	dir := t.TempDir()
	pol := fastRetry(t)
	s := open(t, Options{DataDir: dir, Group: "billing", Retry: pol})
	evs := []*event.Event{newEvent("acme", 1), newEvent("acme", 2), newEvent("globex", 3)}
	publish(t, s.Store, evs...)
	got := fetchN(t, s.Store, len(evs), 5*time.Second)
	ack(t, s.Store, got[0])
	s.stop() // Close flushes the ack first

	s2 := open(t, Options{DataDir: dir, Group: "billing", Retry: pol})
	again := fetchN(t, s2.Store, 2, 5*time.Second)
	ids := eventIDs(again)
	if ids[evs[1].ID] != 1 || ids[evs[2].ID] != 1 {
		t.Errorf("after the restart got events %v, want %s and %s once each", ids, evs[1].ID, evs[2].ID)
	}
	for _, m := range again {
		if m.Attempt != 2 {
			t.Errorf("event %s: got attempt %d, want 2", m.Event.ID, m.Attempt)
		}
	}
	ack(t, s2.Store, again...)
	fetchNone(t, s2.Store, 3*pol.Shortest())
}

// dlqMsg is the dead letter stored with sequence seq.
func dlqMsg(t *testing.T, s *Store, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	m, err := s.dlq.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatalf("dead letter %d: %v", seq, err)
	}
	return m
}

func dlqCount(t *testing.T, s *Store) uint64 {
	t.Helper()
	info, err := s.dlq.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestDeadLetter_writes_every_header_and_the_event_is_not_delivered_again(t *testing.T) {
	pol := fastRetry(t)
	s := open(t, Options{Group: "billing", Retry: pol})
	ev := newEvent("acme", 1)
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	publish(t, s.Store, ev)
	m := fetchN(t, s.Store, 1, 5*time.Second)[0]
	orig := m.Ref.(jetstream.Msg).Headers()

	before := time.Now().UTC().Truncate(time.Millisecond)
	moved, err := s.DeadLetter(context.Background(), m, 4, "HTTP 500: boom\r\nat line 2\x00\tend")
	after := time.Now().UTC()
	if err != nil || !moved {
		t.Fatalf("DeadLetter: got (%v, %v), want (true, nil)", moved, err)
	}

	d := dlqMsg(t, s.Store, 1)
	if d.Subject != "hyvve.dlq.acme" {
		t.Errorf("got subject %q, want hyvve.dlq.acme", d.Subject)
	}
	for _, tc := range []struct{ header, want string }{
		{"originalStreamId", m.StreamID},
		{"group", "billing"},
		{"attempts", "4"},
		{"lastError", "HTTP 500: boom  at line 2  end"},
		{"Nats-Msg-Id", "dl:billing:" + m.StreamID},
	} {
		if got := d.Header[tc.header]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("header %s: got %q, want [%q]", tc.header, got, tc.want)
		}
	}
	failedAt := headerValue(d.Header, "failedAt")
	at, err := time.Parse("2006-01-02T15:04:05.000Z", failedAt)
	if err != nil || at.Before(before) || at.After(after) {
		t.Errorf("header failedAt: got %q (%v), want a UTC time with ms between %s and %s", failedAt, err, before, after)
	}
	for k, v := range orig {
		if got := d.Header[k]; !reflect.DeepEqual(got, v) {
			t.Errorf("header %s of the original: got %q in the dead letter, want %q", k, got, v)
		}
	}
	got, err := decodeEvent(d.Header, d.Data)
	if err != nil || !reflect.DeepEqual(got, ev) {
		t.Errorf("dead letter's event: got %+v (%v), want %+v", got, err, ev)
	}

	fetchNone(t, s.Store, 3*pol.Shortest())
}

func TestDeadLetter_written_twice_is_stored_once(t *testing.T) {
	pol := fastRetry(t)
	s := open(t, Options{Group: "billing", Retry: pol})
	publish(t, s.Store, newEvent("acme", 1))
	m := fetchN(t, s.Store, 1, 5*time.Second)[0]
	jm := m.Ref.(jetstream.Msg)
	seq, _ := strconv.ParseUint(m.StreamID, 10, 64)

	// A sidecar that crashed between the dead-letter write and the ack.
	if fresh, err := s.writeDeadLetter(context.Background(), m, jm, seq, 4, "first"); err != nil || !fresh {
		t.Fatalf("first write: got (%v, %v), want (true, nil)", fresh, err)
	}
	moved, err := s.DeadLetter(context.Background(), m, 4, "second")
	if err != nil || moved {
		t.Fatalf("DeadLetter: got (%v, %v), want (false, nil)", moved, err)
	}
	if n := dlqCount(t, s.Store); n != 1 {
		t.Errorf("got %d dead letters, want 1", n)
	}
	if got := headerValue(dlqMsg(t, s.Store, 1).Header, "lastError"); got != "first" {
		t.Errorf("lastError: got %q, want the first write's %q", got, "first")
	}
	fetchNone(t, s.Store, 3*pol.Shortest()) // the second call acked the original
}

func TestDeadLetter_of_a_message_acked_since_reports_false_and_writes_nothing(t *testing.T) {
	pol := fastRetry(t)
	s := open(t, Options{Group: "billing", Retry: pol})
	publish(t, s.Store, newEvent("acme", 1))
	stale := fetchN(t, s.Store, 1, 5*time.Second)[0]
	// Held past the ack wait: delivered again, and this time acked.
	fresh := fetchN(t, s.Store, 1, 5*time.Second)[0]
	if fresh.Attempt != 2 {
		t.Fatalf("redelivery: got attempt %d, want 2", fresh.Attempt)
	}
	ack(t, s.Store, fresh)
	seq, _ := strconv.ParseUint(fresh.StreamID, 10, 64)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := s.cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor %d, want %d", info.AckFloor.Stream, seq)
		}
	}

	moved, err := s.DeadLetter(context.Background(), stale, 1, "timeout")
	if err != nil || moved {
		t.Fatalf("DeadLetter: got (%v, %v), want (false, nil)", moved, err)
	}
	if n := dlqCount(t, s.Store); n != 0 {
		t.Errorf("got %d dead letters, want 0", n)
	}
}

func TestFetch_marks_what_is_not_an_event_and_dead_letters_it_as_it_was(t *testing.T) {
	full := func(tenant string) nats.Header {
		return nats.Header{"id": {"e-1"}, "type": {"order.created"}, "tenantId": {tenant}, "x-custom": {"kept"}}
	}
	cases := []struct {
		name   string
		header nats.Header
		data   string
	}{
		{"no headers", nil, `{"a":1}`},
		{"no id", nats.Header{"type": {"order.created"}, "tenantId": {"acme"}}, `{}`},
		{"no tenantId", nats.Header{"id": {"e-1"}, "type": {"order.created"}}, `{}`},
		{"data not an object", full("acme"), `[1,2]`},
		{"data not JSON", full("acme"), `not json`},
		{"event of another tenant", full("globex"), `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{Group: "billing", Retry: fastRetry(t)})
			raw := &nats.Msg{Subject: "hyvve.events.acme", Header: tc.header, Data: []byte(tc.data)}
			if _, err := s.js.PublishMsg(context.Background(), raw); err != nil {
				t.Fatal(err)
			}
			m := fetchN(t, s.Store, 1, 5*time.Second)[0]
			if m.Err == nil || m.Event != nil {
				t.Fatalf("got Err %v and event %+v, want an error and no event", m.Err, m.Event)
			}
			if m.Tenant != "acme" || m.StreamID != "1" || m.Attempt != 1 {
				t.Errorf("got tenant %q, stream id %q, attempt %d; want acme, 1, 1", m.Tenant, m.StreamID, m.Attempt)
			}

			moved, err := s.DeadLetter(context.Background(), m, 1, m.Err.Error())
			if err != nil || !moved {
				t.Fatalf("DeadLetter: got (%v, %v), want (true, nil)", moved, err)
			}
			d := dlqMsg(t, s.Store, 1)
			if string(d.Data) != tc.data {
				t.Errorf("dead letter's body: got %q, want %q", d.Data, tc.data)
			}
			for k, v := range tc.header {
				if got := d.Header[k]; !reflect.DeepEqual(got, v) {
					t.Errorf("header %s: got %q, want %q as published", k, got, v)
				}
			}
			if got := headerValue(d.Header, "originalStreamId"); got != "1" {
				t.Errorf("originalStreamId: got %q, want 1", got)
			}
			fetchNone(t, s.Store, 600*time.Millisecond)
		})
	}
}

func TestAck_Retry_DeadLetter_refuse_a_message_not_from_JetStream(t *testing.T) {
	s := open(t, Options{Group: "billing", Retry: slowRetry(t)})
	m := &relay.Message{Stream: "hyvve.events.acme", StreamID: "1", Ref: "not a message"}
	ctx := context.Background()
	if err := s.Ack(ctx, m); err == nil {
		t.Error("Ack: got no error, want one")
	}
	if err := s.Retry(ctx, m, time.Now(), ""); err == nil {
		t.Error("Retry: got no error, want one")
	}
	if _, err := s.DeadLetter(ctx, m, 1, ""); err == nil {
		t.Error("DeadLetter: got no error, want one")
	}
}

func TestFetch_of_a_store_whose_server_is_down_is_unavailable(t *testing.T) {
	srv, url := openServer(t)
	s := open(t, Options{URL: url, Group: "billing", Retry: slowRetry(t)})
	srv.stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Fetch(context.Background(), 1)
		if errors.Is(err, relay.ErrUnavailable) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Fetch with the server down: got error %v, want relay.ErrUnavailable", err)
		}
	}
}

func TestHeaderSafe_cuts_and_blanks_control_characters(t *testing.T) {
	long := strings.Repeat("x", 2047) + "é" // é is 2 bytes: it does not fit
	cases := []struct {
		name, in, want string
	}{
		{"plain", "HTTP 500", "HTTP 500"},
		{"line breaks", "a\r\nb\nc", "a  b c"},
		{"other controls", "a\x00b\tc\x7fd\u0085e", "a b c d e"},
		{"unicode kept", "délai dépassé", "délai dépassé"},
		{"cut at a character boundary", long, strings.Repeat("x", 2047)},
		{"cut", strings.Repeat("y", 3000), strings.Repeat("y", 2048)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := headerSafe(tc.in, maxLastError); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A consumer or stream deleted behind the sidecar's back (by an operator, or a
// server that lost its files) is created again, and delivery goes on.
func TestStore_creates_again_a_deleted_consumer_and_stream(t *testing.T) {
	s := open(t, Options{Group: "billing", Retry: fastRetry(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := s.js.DeleteConsumer(ctx, s.names.eventsStream(), durableName("billing")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "Fetch to work again after the consumer was deleted", func() bool {
		_, err := s.Fetch(ctx, 1)
		return err == nil
	})
	publish(t, s.Store, newEvent("acme", 1))
	fetchN(t, s.Store, 1, 5*time.Second)

	if err := s.js.DeleteStream(ctx, s.names.eventsStream()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a publish to work again after the stream was deleted", func() bool {
		res := make([]relay.PublishResult, 1)
		s.Publish(ctx, []relay.PublishRequest{{Event: newEvent("acme", 2)}}, res)
		return res[0].Err == nil
	})
	eventually(t, 10*time.Second, "the event published after the repair to be delivered", func() bool {
		msgs, err := s.Fetch(ctx, 10)
		return err == nil && len(msgs) > 0
	})
}
