package relay

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/event"
)

func TestReplaySlots_bound_jobs_and_tie_them_to_Run(t *testing.T) {
	s := NewReplaySlots(2)
	if _, _, err := s.Acquire(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Acquire before Run: got %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	var (
		jobCtx  context.Context
		release func()
		err     error
	)
	deadline := time.Now().Add(5 * time.Second)
	for jobCtx, release, err = s.Acquire(); err != nil; jobCtx, release, err = s.Acquire() {
		if time.Now().After(deadline) {
			t.Fatalf("Acquire while Run runs: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	_, release2, err := s.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(); !errors.Is(err, ErrTooManyReplays) {
		t.Fatalf("third Acquire with 2 slots: got %v, want ErrTooManyReplays", err)
	}
	release2()
	release2() // twice is once
	if got := s.Running(); got != 1 {
		t.Fatalf("running after one release (called twice): got %d, want 1", got)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Errorf("a second Run: got nil, want an error")
	}

	cancel()
	select {
	case <-jobCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the job's context did not end with Run's")
	}
	select {
	case err := <-ran:
		t.Fatalf("Run returned (%v) while a job still held its slot", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the last job released its slot")
	}
	if _, _, err := s.Acquire(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Acquire after Run: got %v, want ErrUnavailable", err)
	}
}

// Start takes a slot only for a valid request, gives it back when the job
// cannot be recorded, and otherwise holds it until the job has ended.
func TestReplaySlots_Start_holds_a_slot_for_the_jobs_life_only(t *testing.T) {
	s := NewReplaySlots(1)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	valid := ReplayRequest{Tenant: "acme", From: time.UnixMilli(1), To: time.UnixMilli(2)}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		_, err := s.Start(ctx, valid, func(context.Context) (ReplayJobRun, error) { return ReplayJobRun{}, errors.New("not now") })
		if !errors.Is(err, ErrUnavailable) {
			break // Run runs
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
	}

	created := false
	_, err := s.Start(ctx, ReplayRequest{Tenant: "acme"}, func(context.Context) (ReplayJobRun, error) {
		created = true
		return ReplayJobRun{}, nil
	})
	var ee *event.Error
	if !errors.As(err, &ee) || created || s.Running() != 0 {
		t.Errorf("invalid request: got %v, created %v, %d running; want its *event.Error, nothing created or running", err, created, s.Running())
	}

	if _, err := s.Start(ctx, valid, func(context.Context) (ReplayJobRun, error) { return ReplayJobRun{}, errors.New("redis down") }); err == nil || s.Running() != 0 {
		t.Errorf("create failing: got %v with %d running, want its error and the slot given back", err, s.Running())
	}

	finish := make(chan struct{})
	saved := make(chan string, 1)
	job, err := s.Start(ctx, valid, func(context.Context) (ReplayJobRun, error) {
		return ReplayJobRun{
			Job:    ReplayJob{ID: "j1", Tenant: "acme"},
			Replay: func(context.Context, *ReplayProgress) error { <-finish; return nil },
			Save: func(_ context.Context, _ *ReplayProgress, status, _ string) (bool, error) {
				if status != "" {
					saved <- status
				}
				return true, nil
			},
			Logger: slog.New(slog.DiscardHandler),
		}, nil
	})
	if err != nil || job.ID != "j1" {
		t.Fatalf("start: got %+v, %v; want job j1", job, err)
	}
	if got := s.Running(); got != 1 {
		t.Errorf("running while the job runs: got %d, want 1", got)
	}
	close(finish)
	if got := <-saved; got != ReplayDone {
		t.Errorf("final status: got %q, want %q", got, ReplayDone)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Running() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slot was not given back after the job ended")
		}
	}
}
