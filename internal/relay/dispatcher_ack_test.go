package relay

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/retry"
)

// queueInbox hands out its messages, then none; Ack records every call and
// takes ackDelay, like a round trip.
type queueInbox struct {
	fakeInbox
	ackDelay time.Duration

	qmu      sync.Mutex
	queue    []*Message
	ackCalls int
	ackedIDs map[string]int
}

func (q *queueInbox) Fetch(ctx context.Context, n int) ([]*Message, error) {
	q.qmu.Lock()
	n = min(n, len(q.queue))
	out := q.queue[:n:n]
	q.queue = q.queue[n:]
	q.qmu.Unlock()
	if n == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	return out, nil
}

func (q *queueInbox) Ack(_ context.Context, msgs ...*Message) error {
	time.Sleep(q.ackDelay)
	q.qmu.Lock()
	defer q.qmu.Unlock()
	q.ackCalls++
	for _, m := range msgs {
		q.ackedIDs[m.Stream+" "+m.StreamID]++
	}
	return nil
}

func TestDispatcher_acks_every_delivered_entry_once_in_shared_round_trips(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		events      int
		ackDelay    time.Duration
		maxCalls    int // at most this many Ack round trips
	}{
		{"one at a time", 1, 20, 0, 20},
		{"concurrent deliveries share acks", 16, 400, 5 * time.Millisecond, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := retry.NewPolicy([]time.Duration{time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			in := &queueInbox{ackDelay: tt.ackDelay, ackedIDs: map[string]int{}}
			for i := range tt.events {
				in.queue = append(in.queue, &Message{
					Event:  &event.Event{ID: fmt.Sprintf("ev-%d", i), Type: "approval.requested", TenantID: "acme", Data: []byte(`{}`)},
					Tenant: "acme", Stream: "hyvve:events:{acme}", StreamID: fmt.Sprintf("%d-0", i+1), Attempt: 1,
				})
			}
			app := &fakeApp{status: 204}
			d, err := NewDispatcher(DispatcherConfig{Group: "billing", Concurrency: tt.concurrency, Retry: pol, DrainTimeout: 5 * time.Second}, in, app, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				app.mu.Lock()
				n := len(app.got)
				app.mu.Unlock()
				if n == tt.events || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			// Run returns only after the queued acks are flushed.
			cancel()
			<-done

			in.qmu.Lock()
			defer in.qmu.Unlock()
			if len(in.ackedIDs) != tt.events {
				t.Errorf("got %d entries acked, want %d", len(in.ackedIDs), tt.events)
			}
			for id, n := range in.ackedIDs {
				if n != 1 {
					t.Errorf("entry %s: got %d acks, want 1", id, n)
				}
			}
			if in.ackCalls > tt.maxCalls {
				t.Errorf("got %d Ack round trips for %d events, want at most %d", in.ackCalls, tt.events, tt.maxCalls)
			}
		})
	}
}
