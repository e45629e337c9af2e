package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogram_bucket_value_is_within_precision(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 1000, 123_456, 1_000_000, 987_654_321, math.MaxInt64 / 3} {
		got := bucketValue(bucketOf(v))
		if diff := math.Abs(float64(got-v)) / math.Max(float64(v), 1); diff > 1.0/histSub {
			t.Errorf("bucketValue(bucketOf(%d)) = %d, off by %.2f%%, want within %.2f%%", v, got, 100*diff, 100.0/histSub)
		}
		if i := bucketOf(v); i < 0 || i >= histBuckets {
			t.Errorf("bucketOf(%d) = %d, want 0 ≤ i < %d", v, i, histBuckets)
		}
	}
}

func TestHistogram_quantiles_match_sorted_samples(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0-10ms", func() time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) }},
		{"exponential mean 200us", func() time.Duration { return time.Duration(r.ExpFloat64() * 200e3) }},
		{"constant 1ms", func() time.Duration { return time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two workers' histograms merged, as closedLoop does.
			a, b := &histogram{}, &histogram{}
			var all []time.Duration
			for i := range 20000 {
				d := tt.gen()
				all = append(all, d)
				if i%2 == 0 {
					a.record(d)
				} else {
					b.record(d)
				}
			}
			a.merge(b)
			slices.Sort(all)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				want := all[int(math.Ceil(q*float64(len(all))))-1]
				got := a.quantile(q)
				if diff := math.Abs(float64(got - want)); diff > float64(want)/histSub+1 {
					t.Errorf("quantile(%v) = %v, want %v ± %.1f%%", q, got, want, 100.0/histSub)
				}
			}
			if got, want := time.Duration(a.max), all[len(all)-1]; got != want {
				t.Errorf("max = %v, want %v", got, want)
			}
			if a.n != uint64(len(all)) {
				t.Errorf("n = %d, want %d", a.n, len(all))
			}
		})
	}
}

func TestHistogram_empty_summary_is_zero(t *testing.T) {
	var h histogram
	if got := h.summary(); got != (latencyMs{}) {
		t.Errorf("summary of no samples = %+v, want zeros", got)
	}
}
