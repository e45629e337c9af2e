package relay

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// ReplayProgress counts a replay job's work: the job's reader writes it,
// its heartbeat reads it. Safe for concurrent use.
type ReplayProgress struct{ Scanned, Matched, Republished atomic.Int64 }

// ReplayJobRun is what RunReplayJob needs from a store for one job.
type ReplayJobRun struct {
	Job ReplayJob
	// Replay reads the job's range and republishes what matches, counting
	// in p, until done or ctx ends (then it returns an error).
	Replay func(ctx context.Context, p *ReplayProgress) error
	// Save writes p and the heartbeat into the job's record and, when
	// status is not "", the final status and msg. It returns false when the
	// record is no longer this job's (gone, or declared failed by a reader).
	// RunReplayJob never calls it twice at once.
	Save func(ctx context.Context, p *ReplayProgress, status, msg string) (bool, error)
	// Heartbeat is how often Save records progress (0: ReplayHeartbeat).
	Heartbeat time.Duration
	Logger    *slog.Logger
}

const (
	// ReplayHeartbeat is how often a running job records its progress: at
	// most 2 s, well under ReplayStaleAfter.
	ReplayHeartbeat = time.Second
	// replayProgressLog is how often a running job logs its counters.
	replayProgressLog = 10 * time.Second
	// replayFinalSave bounds the write of a job's end, which happens even
	// when the job was cancelled by shutdown.
	replayFinalSave = 5 * time.Second
)

// RunReplayJob runs one job and records how it ended. A heartbeat
// goroutine, owned by RunReplayJob, saves the counters every r.Heartbeat and
// logs them every 10 s; when the record is no longer this job's to
// write (a reader declared it failed because the heartbeat was late), the
// job stops and its record is left as the reader wrote it. A job ended by
// ctx (shutdown) is recorded as failed with ShutdownReplayError. It returns
// when the job's end is recorded.
func RunReplayJob(ctx context.Context, r ReplayJobRun) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.Heartbeat <= 0 {
		r.Heartbeat = ReplayHeartbeat
	}
	job := r.Job
	log := r.Logger.With("replay_id", job.ID, "tenant", job.Tenant)
	log.Info("replay started", "from", logTime(job.From), "to", logTime(job.To), "requested_to", logTime(job.RequestedTo),
		"types", job.Types, "group", job.Group, "owner", job.Owner)

	var p ReplayProgress
	var lost atomic.Bool
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		r.heartbeat(jctx, cancel, log, &p, &lost)
	}()
	start := time.Now()
	err := r.Replay(jctx, &p)
	cancel()
	<-hbDone // Save is the heartbeat's until it has returned

	attrs := []any{"scanned", p.Scanned.Load(), "matched", p.Matched.Load(), "republished", p.Republished.Load(),
		"duration", time.Since(start).Round(time.Millisecond).String()}
	if lost.Load() {
		log.Error("replay abandoned: its record was declared failed while it ran (heartbeat late by over "+
			ReplayStaleAfter.String()+")", attrs...)
		return
	}
	status, msg := ReplayDone, ""
	if err != nil {
		status, msg = ReplayFailed, err.Error()
		if ctx.Err() != nil {
			msg = ShutdownReplayError
		}
	}
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), replayFinalSave)
	defer bcancel()
	ok, serr := r.Save(bctx, &p, status, msg)
	switch {
	case serr != nil:
		log.Error("recording the end of a replay failed; readers will show it failed once its heartbeat is "+
			ReplayStaleAfter.String()+" old", append(attrs, "status", status, "error", serr)...)
	case !ok:
		log.Error("replay record was gone or taken over when the job ended", append(attrs, "status", status)...)
	case status == ReplayDone:
		log.Info("replay finished", append(attrs, "status", status)...)
	default:
		log.Error("replay failed", append(attrs, "status", status, "error", msg)...)
	}
}

// heartbeat saves the job's counters every r.Heartbeat and logs them every
// replayProgressLog, until ctx ends. A save that finds the record no longer
// this job's sets lost and cancels the job.
func (r ReplayJobRun) heartbeat(ctx context.Context, cancel context.CancelFunc, log *slog.Logger, p *ReplayProgress, lost *atomic.Bool) {
	t := time.NewTicker(r.Heartbeat)
	defer t.Stop()
	lastLog := time.Now()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := r.Save(ctx, p, "", "")
		switch {
		case err != nil && ctx.Err() == nil:
			// Logged the first time and every 10th, not every second.
			if failures%10 == 0 {
				log.Warn("replay heartbeat failed", "error", err)
			}
			failures++
		case err == nil && !ok:
			lost.Store(true)
			cancel()
			return
		case err == nil:
			failures = 0
		}
		if time.Since(lastLog) >= replayProgressLog {
			lastLog = time.Now()
			log.Info("replay progress", "scanned", p.Scanned.Load(), "matched", p.Matched.Load(),
				"republished", p.Republished.Load())
		}
	}
}

// logTime is how replay times are logged: UTC, in milliseconds.
func logTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
