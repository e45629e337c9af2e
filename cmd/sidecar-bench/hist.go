package main

import (
	"math"
	"math/bits"
	"time"
)

// Histogram geometry: values below 2*histSub nanoseconds are counted exactly;
// above, every power of two is split into histSub linear sub-buckets, so a
// reported percentile is within 1/histSub (1.6 %) of the true value whatever
// its size, in a fixed 30 KB.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// histogram records latencies in log-linear buckets. It is not safe for
// concurrent use: each worker owns one and merge joins them afterwards.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds
	max    int64   // nanoseconds
}

func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return shift*histSub + int(v>>shift)
}

// bucketValue is the midpoint of bucket i (its exact value for small ones).
func bucketValue(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	lower := int64(i-shift*histSub) << shift
	return lower + (int64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the latency at or below which a fraction q of the samples
// lie (0 with no samples); it never exceeds the largest sample.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// latencyMs is a latency summary in milliseconds, as printed in the report.
type latencyMs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func (h *histogram) summary() latencyMs {
	s := latencyMs{
		P50:  ms(h.quantile(0.50)),
		P90:  ms(h.quantile(0.90)),
		P99:  ms(h.quantile(0.99)),
		P999: ms(h.quantile(0.999)),
		Max:  ms(time.Duration(h.max)),
	}
	if h.n > 0 {
		s.Mean = round3(h.sum / float64(h.n) / 1e6)
	}
	return s
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return round3(float64(d) / 1e6) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
