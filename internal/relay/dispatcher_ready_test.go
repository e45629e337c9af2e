package relay

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/retry"
)

// failingInbox fails every Fetch while failing is set, else has nothing.
type failingInbox struct {
	fakeInbox
	failing atomic.Bool
}

func (f *failingInbox) Fetch(ctx context.Context, _ int) ([]*Message, error) {
	if f.failing.Load() {
		return nil, errors.New("NOPERM this user has no permissions to run the 'xreadgroup' command")
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Millisecond):
	}
	return nil, nil
}

// A sidecar that cannot read its events (a Redis user without XREADGROUP)
// passes every other readiness check; it must not say ready while it
// delivers nothing, nor stop saying so for a single failed read.
func TestDispatcher_is_not_ready_while_reading_events_keeps_failing(t *testing.T) {
	pol, err := retry.NewPolicy([]time.Duration{time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	in := &failingInbox{}
	d, err := NewDispatcher(DispatcherConfig{Group: "billing", Concurrency: 4, Retry: pol}, in, &fakeApp{status: 204}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	eventually := func(what string, cond func(error) bool) error {
		t.Helper()
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if err = d.Ready(); cond(err) {
				return err
			}
		}
		t.Fatalf("Ready: got %v, want %s", err, what)
		return nil
	}
	eventually("ready once the subscriptions are loaded", func(err error) bool { return err == nil })

	in.failing.Store(true)
	failedAt := time.Now()
	err = eventually("an error naming the failed read", func(err error) bool { return err != nil })
	if waited := time.Since(failedAt); waited < readFailGrace {
		t.Errorf("not ready %v after reads began to fail, want at least %v (a single failure is not a state)", waited, readFailGrace)
	}
	if !strings.Contains(err.Error(), "reading events fails") || !strings.Contains(err.Error(), "'xreadgroup'") {
		t.Errorf("Ready: got %q, want it to say reading events fails, with the broker's error", err)
	}

	in.failing.Store(false)
	eventually("ready again once a read works", func(err error) bool { return err == nil })
}
