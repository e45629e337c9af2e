package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ReplaySlots bounds the replay jobs one sidecar runs at once and ties them
// to the lifetime of Run: a job starts only while Run runs, and Run waits
// for every job after its context ended. A store's replay runner embeds one.
// Safe for concurrent use.
type ReplaySlots struct {
	max int

	// mu guards ctx, done and running; wg counts jobs, added to only under
	// mu while ctx is set, so Run's Wait sees every job.
	mu      sync.Mutex
	ctx     context.Context // Run's context while it runs, else nil
	done    bool            // Run has returned
	running int
	wg      sync.WaitGroup
}

// NewReplaySlots allows max jobs at once (at least 1).
func NewReplaySlots(n int) *ReplaySlots { return &ReplaySlots{max: max(1, n)} }

// Run lets jobs start until ctx ends; then it waits for the running jobs
// (they end by themselves, their context being Run's) and returns nil. Call
// it once.
func (s *ReplaySlots) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil || s.done {
		s.mu.Unlock()
		return errors.New("replay jobs: Run called twice")
	}
	s.ctx = ctx
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.ctx, s.done = nil, true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Acquire takes a slot for one job: it returns the context the job runs
// under (Run's) and release, which the job calls once when it has ended,
// whether it started or not. The slot is taken before the job exists, so a
// burst of requests cannot overshoot. Errors: ErrUnavailable when Run is not
// running; ErrTooManyReplays when every slot is taken.
func (s *ReplaySlots) Acquire() (ctx context.Context, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ctx == nil:
		return nil, nil, fmt.Errorf("%w: replays are not running (sidecar starting or shutting down)", ErrUnavailable)
	case s.running >= s.max:
		return nil, nil, fmt.Errorf("%w: this sidecar runs %d replay jobs, the most it may; try again when one has finished",
			ErrTooManyReplays, s.running)
	}
	s.running++
	s.wg.Add(1)
	var once sync.Once
	return s.ctx, func() {
		once.Do(func() {
			s.mu.Lock()
			s.running--
			s.mu.Unlock()
			s.wg.Done()
		})
	}, nil
}

// Start starts one job: it validates req, takes a slot (so a burst of
// requests cannot overshoot), records the job with create and runs it in
// the background with RunReplayJob under Run's context; it returns the job
// as create recorded it, without waiting for it. Errors: req's validation
// error, those of Acquire, and create's.
func (s *ReplaySlots) Start(ctx context.Context, req ReplayRequest, create func(ctx context.Context) (ReplayJobRun, error)) (ReplayJob, error) {
	if err := req.Validate(); err != nil {
		return ReplayJob{}, err
	}
	runCtx, release, err := s.Acquire()
	if err != nil {
		return ReplayJob{}, err
	}
	run, err := create(ctx)
	if err != nil {
		release()
		return ReplayJob{}, err
	}
	go func() {
		defer release()
		RunReplayJob(runCtx, run)
	}()
	return run.Job, nil
}

// Running is the number of slots taken.
func (s *ReplaySlots) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}
