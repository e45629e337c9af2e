package relay

import (
	"context"
	"errors"
	"testing"
	"time"
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
