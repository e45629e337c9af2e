package metrics

import (
	"testing"
	"time"
)

func TestRates_per_second_over_the_last_minute_and_per_minute(t *testing.T) {
	m := New()
	r := m.NewRates()
	if s := r.Snapshot(); s.Window != 0 || len(s.Minutes) != 0 {
		t.Fatalf("before any sample: got %+v, want zero", s)
	}
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	// Two minutes of samples, one a second: 1 publish a second, 2 deliveries
	// in each second of the second minute, a failure every 10 s.
	for i := range 121 {
		now := t0.Add(time.Duration(i) * time.Second)
		r.Sample(now)
		m.Published.WithLabelValues("ok").Inc()
		m.Published.WithLabelValues("rejected").Inc() // not a published event
		if i >= 60 {
			m.Deliveries.WithLabelValues("ok").Add(2)
			m.Deliveries.WithLabelValues("skipped").Inc() // not a delivery
		}
		if i%10 == 0 {
			m.Deliveries.WithLabelValues("unreachable").Inc()
		}
	}
	s := r.Snapshot()
	if s.Window != time.Minute || s.PublishedPerSec != 1 || s.DeliveredPerSec != 2 || s.FailedPerSec != 0.1 {
		t.Errorf("got window %s, rates %v %v %v; want 1m, 1, 2, 0.1", s.Window, s.PublishedPerSec, s.DeliveredPerSec, s.FailedPerSec)
	}
	want := []RateMinute{
		{Start: t0, Published: 60, Delivered: 0, Failed: 6},
		{Start: t0.Add(time.Minute), Published: 60, Delivered: 120, Failed: 6},
		{Start: t0.Add(2 * time.Minute), Published: 0, Delivered: 0, Failed: 0}, // the current minute, one sample so far
	}
	if len(s.Minutes) != len(want) {
		t.Fatalf("got %d minutes %+v, want %d", len(s.Minutes), s.Minutes, len(want))
	}
	for i, w := range want {
		if g := s.Minutes[i]; !g.Start.Equal(w.Start) || g.Published != w.Published || g.Delivered != w.Delivered || g.Failed != w.Failed {
			t.Errorf("minute %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestRates_keeps_one_hour(t *testing.T) {
	m := New()
	r := m.NewRates()
	t0 := time.Date(2026, 11, 26, 10, 0, 30, 0, time.UTC)
	for i := range 2 * 3600 {
		r.Sample(t0.Add(time.Duration(i) * time.Second))
		m.Published.WithLabelValues("ok").Inc()
	}
	s := r.Snapshot()
	if len(s.Minutes) != 60 {
		t.Fatalf("got %d minutes, want 60", len(s.Minutes))
	}
	for _, mn := range s.Minutes[:59] {
		if mn.Published != 60 {
			t.Errorf("minute %s: got %d, want 60", mn.Start, mn.Published)
		}
	}
	if s.PublishedPerSec != 1 {
		t.Errorf("got %v per second, want 1", s.PublishedPerSec)
	}
}
