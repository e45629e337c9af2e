// Package retry owns the retry policy of push delivery: how an app's answer is
// classified (SPEC §3), how long to wait before the next attempt, and when to
// give up and dead-letter. It holds no state: the state of each delivery lives
// in the broker (delivery count and idle time of the pending entry), so a
// restarted sidecar or another replica continues the schedule.
package retry

import (
	"errors"
	"fmt"
	"time"
)

// Outcome is what to do with an entry after a push attempt.
type Outcome int

const (
	// Ack: the app took the event (2xx).
	Ack Outcome = iota
	// Retry: try again later (5xx, 408, 429, timeout, no answer).
	Retry
	// Reject: the app refused the event (4xx other than 408 and 429); it is
	// dead-lettered at once, retrying cannot help.
	Reject
)

func (o Outcome) String() string {
	switch o {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Classify maps an app's answer to an Outcome. status is the HTTP status, or 0
// when the push got no HTTP answer at all (err != nil).
func Classify(status int, err error) Outcome {
	switch {
	case err != nil || status == 0:
		return Retry
	case status >= 200 && status < 300:
		return Ack
	case status == 408 || status == 429:
		return Retry
	case status >= 400 && status < 500:
		return Reject
	default:
		return Retry
	}
}

// Policy is a retry schedule: after attempt k (1-based) failed, attempt k+1
// happens no sooner than Schedule[k-1] later. len(Schedule)+1 attempts in all.
type Policy struct {
	Schedule []time.Duration
}

// NewPolicy checks the schedule: 1 to 20 steps, each > 0, non-decreasing.
func NewPolicy(schedule []time.Duration) (Policy, error) {
	if len(schedule) == 0 || len(schedule) > 20 {
		return Policy{}, errors.New("retry schedule needs 1 to 20 steps")
	}
	for i, d := range schedule {
		if d <= 0 {
			return Policy{}, fmt.Errorf("retry schedule step %d is %s; steps must be > 0", i+1, d)
		}
		if i > 0 && d < schedule[i-1] {
			return Policy{}, fmt.Errorf("retry schedule step %d (%s) is shorter than step %d (%s)", i+1, d, i, schedule[i-1])
		}
	}
	return Policy{Schedule: append([]time.Duration(nil), schedule...)}, nil
}

// MaxAttempts is the number of push attempts before dead-lettering.
func (p Policy) MaxAttempts() int { return len(p.Schedule) + 1 }

// Step is the least time between failed attempt `attempt` and the next one.
// Past the last step (an entry whose holder died during its last attempt) it
// is the last step.
func (p Policy) Step(attempt int) time.Duration {
	switch {
	case attempt < 1:
		return p.Schedule[0]
	case attempt > len(p.Schedule):
		return p.Schedule[len(p.Schedule)-1]
	}
	return p.Schedule[attempt-1]
}

// Shortest is the shortest step: no pending entry is due sooner.
func (p Policy) Shortest() time.Duration { return p.Schedule[0] }

// Next says what follows failed attempt `attempt`: retry after the returned
// wait, or (false) dead-letter. A Retry-After the app sent on 429 or 503 is
// honoured when it is longer than the step, up to the schedule's longest step
// (so an app cannot park an event beyond the retry window).
func (p Policy) Next(attempt, status int, retryAfter time.Duration) (time.Duration, bool) {
	if attempt >= p.MaxAttempts() {
		return 0, false
	}
	wait := p.Step(attempt)
	if (status == 429 || status == 503) && retryAfter > wait {
		wait = min(retryAfter, p.Schedule[len(p.Schedule)-1])
	}
	return wait, true
}
