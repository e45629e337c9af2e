package retry

import (
	"errors"
	"testing"
	"time"
)

func TestClassify_follows_the_app_answer_contract(t *testing.T) {
	cases := []struct {
		status int
		err    error
		want   Outcome
	}{
		{200, nil, Ack}, {202, nil, Ack}, {204, nil, Ack}, {299, nil, Ack},
		{400, nil, Reject}, {401, nil, Reject}, {404, nil, Reject}, {422, nil, Reject}, {499, nil, Reject},
		{408, nil, Retry}, {429, nil, Retry},
		{500, nil, Retry}, {502, nil, Retry}, {503, nil, Retry}, {504, nil, Retry},
		{301, nil, Retry}, {100, nil, Retry},
		{0, errors.New("connection refused"), Retry},
		{200, errors.New("read: reset"), Retry},
	}
	for _, tc := range cases {
		if got := Classify(tc.status, tc.err); got != tc.want {
			t.Errorf("Classify(%d, %v): got %s, want %s", tc.status, tc.err, got, tc.want)
		}
	}
}

func TestPolicy_Next_walks_the_schedule_then_gives_up(t *testing.T) {
	p, err := NewPolicy([]time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxAttempts() != 4 {
		t.Fatalf("MaxAttempts: got %d, want 4", p.MaxAttempts())
	}
	cases := []struct {
		attempt, status int
		retryAfter      time.Duration
		wait            time.Duration
		ok              bool
	}{
		{1, 500, 0, time.Minute, true},
		{2, 500, 0, 5 * time.Minute, true},
		{3, 0, 0, 30 * time.Minute, true},
		{4, 500, 0, 0, false},
		{7, 500, 0, 0, false},
		{1, 429, 3 * time.Minute, 3 * time.Minute, true}, // longer Retry-After wins
		{1, 503, 10 * time.Second, time.Minute, true},    // shorter one does not
		{1, 429, 48 * time.Hour, 30 * time.Minute, true}, // capped at the longest step
		{1, 500, 3 * time.Minute, time.Minute, true},     // only on 429 and 503
	}
	for _, tc := range cases {
		wait, ok := p.Next(tc.attempt, tc.status, tc.retryAfter)
		if wait != tc.wait || ok != tc.ok {
			t.Errorf("Next(%d, %d, %s): got %s %v, want %s %v", tc.attempt, tc.status, tc.retryAfter, wait, ok, tc.wait, tc.ok)
		}
	}
	if got := p.Step(9); got != 30*time.Minute {
		t.Errorf("Step past the end: got %s, want the last step", got)
	}
}

func TestNewPolicy_refuses_bad_schedules(t *testing.T) {
	for _, s := range [][]time.Duration{nil, {0}, {-time.Second}, {time.Minute, time.Second}, make([]time.Duration, 21)} {
		if _, err := NewPolicy(s); err == nil {
			t.Errorf("NewPolicy(%v): got nil error", s)
		}
	}
}
