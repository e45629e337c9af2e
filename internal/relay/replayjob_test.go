package relay

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// saves records what RunReplayJob saved: the final status of each save.
type saves struct {
	mu       sync.Mutex
	statuses []string
	msgs     []string
	own      bool // false: the record is no longer the job's
}

func (s *saves) save(_ context.Context, _ *ReplayProgress, status, msg string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status != "" {
		s.statuses, s.msgs = append(s.statuses, status), append(s.msgs, msg)
	}
	return s.own, nil
}

func TestRunReplayJob_records_how_the_job_ended(t *testing.T) {
	tests := []struct {
		name       string
		replay     func(ctx context.Context, p *ReplayProgress) error
		own        bool
		shutdown   bool // ctx ends while the job runs
		wantStatus []string
		wantMsg    []string
	}{
		{"done", func(_ context.Context, p *ReplayProgress) error { p.Scanned.Add(3); return nil }, true, false,
			[]string{ReplayDone}, []string{""}},
		{"failed with its error", func(context.Context, *ReplayProgress) error { return errors.New("xrange: broker unavailable") },
			true, false, []string{ReplayFailed}, []string{"xrange: broker unavailable"}},
		{"shutdown", func(ctx context.Context, _ *ReplayProgress) error { <-ctx.Done(); return ctx.Err() }, true, true,
			[]string{ReplayFailed}, []string{ShutdownReplayError}},
		// A reader declared the job failed (its heartbeat was late): the
		// heartbeat's save finds the record taken, the job stops, and its end
		// is not written over the reader's.
		{"record taken over", func(ctx context.Context, _ *ReplayProgress) error { <-ctx.Done(); return ctx.Err() }, false, false,
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &saves{own: tt.own}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.shutdown {
				time.AfterFunc(30*time.Millisecond, cancel)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				RunReplayJob(ctx, ReplayJobRun{Job: ReplayJob{ID: "j1", Tenant: "acme"}, Replay: tt.replay, Save: s.save,
					Heartbeat: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("RunReplayJob did not return")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if !slices.Equal(s.statuses, tt.wantStatus) || !slices.Equal(s.msgs, tt.wantMsg) {
				t.Errorf("final saves: got %q %q, want %q %q", s.statuses, s.msgs, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}
