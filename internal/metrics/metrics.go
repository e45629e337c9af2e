// Package metrics owns the sidecar's Prometheus collectors. One *Metrics is
// created per daemon on its own registry (no global registry), and handed to
// the parts that count things.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every collector the sidecar exports. All fields are safe for
// concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	// Published counts publish attempts by result: "ok", "duplicate",
	// "rejected" (bad input), "unavailable" (broker down), "error".
	Published *prometheus.CounterVec
	// PublishDuration is the time from request decoded to broker answer.
	PublishDuration prometheus.Histogram
	// Deliveries counts push attempts by outcome: "ok", "app_error" (non-2xx),
	// "unreachable" (no HTTP answer), "skipped" (no subscription matched or
	// the event targets another group).
	Deliveries *prometheus.CounterVec
	// DeliveryDuration is the time the app took to answer a push.
	DeliveryDuration prometheus.Histogram
	// Retries counts failed pushes that were scheduled for another attempt.
	Retries prometheus.Counter
	// DeadLetters counts entries moved to a dead-letter stream, by reason:
	// "rejected" (the app answered 4xx), "exhausted" (the last retry failed),
	// "undecodable" (the entry is not an event).
	DeadLetters *prometheus.CounterVec
	// InFlight is the number of pushes waiting for the app.
	InFlight prometheus.Gauge
	// BrokerErrors counts failed broker calls by operation.
	BrokerErrors *prometheus.CounterVec
	// ConnectionsRefused counts connections to the local API answered 503
	// too_many_connections because their listener was at its cap.
	ConnectionsRefused prometheus.Counter
}

// New registers the collectors on a fresh registry, together with the Go
// runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyvve_published_total",
			Help: "Events the app asked to publish, by result (ok, duplicate, rejected, unavailable, error).",
		}, []string{"result"}),
		PublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hyvve_publish_duration_seconds",
			Help:    "Time from a decoded publish request to the broker's answer.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1, 5},
		}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyvve_deliveries_total",
			Help: "Push attempts to the app, by outcome (ok, app_error, unreachable, skipped).",
		}, []string{"outcome"}),
		DeliveryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hyvve_delivery_duration_seconds",
			Help:    "Time the app took to answer a push.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyvve_retries_total",
			Help: "Failed pushes scheduled for another attempt.",
		}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyvve_dead_letters_total",
			Help: "Entries moved to a dead-letter stream, by reason (rejected, exhausted, undecodable).",
		}, []string{"reason"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hyvve_deliveries_in_flight",
			Help: "Pushes currently waiting for the app's answer.",
		}),
		BrokerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyvve_broker_errors_total",
			Help: "Failed broker calls, by operation.",
		}, []string{"op"}),
		ConnectionsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hyvve_local_connections_refused_total",
			Help: "Connections to the local API refused (503 too_many_connections): the listener had as many open as it serves.",
		}),
	}
	reg.MustRegister(m.Published, m.PublishDuration, m.Deliveries, m.DeliveryDuration, m.Retries, m.DeadLetters, m.InFlight, m.BrokerErrors,
		m.ConnectionsRefused,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Rates keeps this sidecar's recent throughput for the admin stats (SPEC §7):
// once a second Run samples the running totals of published, delivered and
// failed pushes into a ring of one hour of per-second samples, from which
// Snapshot derives rates and per-minute counts. It reads the Prometheus
// collectors, so the publish and delivery paths need nothing more than the
// counters they already increment. Safe for concurrent use.
type Rates struct {
	src *prometheus.Registry // only the counters sampled

	// mu guards ring and n (the samples written so far).
	mu   sync.Mutex
	ring [rateRingSize]RateSample
	n    int
}

// rateRingSize holds one hour of per-second samples and one more, so that
// sixty whole minutes have both ends.
const rateRingSize = 3601

// RateSample is the running totals at one moment.
type RateSample struct {
	At        time.Time
	Published float64 // publish result "ok"
	Delivered float64 // push outcome "ok"
	Failed    float64 // push outcomes "app_error" and "unreachable"
}

// RateSnapshot is what Snapshot derives from the samples.
type RateSnapshot struct {
	// Per second over the last minute (or over the time sampled so far when
	// the sidecar started less than a minute ago).
	PublishedPerSec, DeliveredPerSec, FailedPerSec float64
	// Window is the time the rates are computed over; zero before two samples.
	Window time.Duration
	// Minutes is the last 60 whole minutes, oldest first, as far as sampled.
	Minutes []RateMinute
}

// RateMinute counts what this sidecar did in the minute starting at Start.
type RateMinute struct {
	Start                        time.Time
	Published, Delivered, Failed int64
}

// NewRates returns a Rates reading m's counters; call Run to sample.
func (m *Metrics) NewRates() *Rates {
	src := prometheus.NewRegistry()
	// A collector may belong to several registries: this one is read by
	// Sample only, never exported.
	src.MustRegister(m.Published, m.Deliveries)
	return &Rates{src: src}
}

// Run samples once a second until ctx ends; it returns nil.
func (r *Rates) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	r.Sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			r.Sample(now)
		}
	}
}

// Sample records the current totals at now. Run calls it; tests may call it
// directly with their own clock.
func (r *Rates) Sample(now time.Time) {
	s := RateSample{At: now}
	mfs, err := r.src.Gather()
	if err != nil {
		return // cannot happen for plain counters; a skipped sample only widens the window
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			label := ""
			for _, l := range m.GetLabel() {
				label = l.GetValue()
			}
			switch mf.GetName() {
			case "hyvve_published_total":
				if label == "ok" {
					s.Published += v
				}
			case "hyvve_deliveries_total":
				switch label {
				case "ok":
					s.Delivered += v
				case "app_error", "unreachable":
					s.Failed += v
				}
			}
		}
	}
	r.mu.Lock()
	r.ring[r.n%rateRingSize] = s
	r.n++
	r.mu.Unlock()
}

// Snapshot derives the rates and the per-minute counts from the samples.
func (r *Rates) Snapshot() RateSnapshot {
	r.mu.Lock()
	n := min(r.n, rateRingSize)
	samples := make([]RateSample, n) // oldest first
	for i := range n {
		samples[i] = r.ring[(r.n-n+i)%rateRingSize]
	}
	r.mu.Unlock()
	var out RateSnapshot
	if n < 2 {
		return out
	}
	last := samples[n-1]
	// The rate window: the newest sample at least a minute older than the
	// last one, or the oldest sample there is.
	first := samples[0]
	for i := n - 2; i >= 0; i-- {
		if last.At.Sub(samples[i].At) >= time.Minute {
			first = samples[i]
			break
		}
	}
	if w := last.At.Sub(first.At); w > 0 {
		sec := w.Seconds()
		out.Window = w
		out.PublishedPerSec = (last.Published - first.Published) / sec
		out.DeliveredPerSec = (last.Delivered - first.Delivered) / sec
		out.FailedPerSec = (last.Failed - first.Failed) / sec
	}
	// Per minute: the difference between the first samples of consecutive
	// minutes; the current minute counts up to the last sample. The first and
	// the current minute may be partial.
	var starts []int // index of the first sample of each minute seen
	for i := range samples {
		if i == 0 || samples[i].At.Truncate(time.Minute).After(samples[i-1].At.Truncate(time.Minute)) {
			starts = append(starts, i)
		}
	}
	for k, i := range starts {
		end := last
		if k+1 < len(starts) {
			end = samples[starts[k+1]]
		}
		a := samples[i]
		out.Minutes = append(out.Minutes, RateMinute{
			Start:     a.At.Truncate(time.Minute),
			Published: int64(end.Published - a.Published),
			Delivered: int64(end.Delivered - a.Delivered),
			Failed:    int64(end.Failed - a.Failed),
		})
	}
	if len(out.Minutes) > 60 {
		out.Minutes = out.Minutes[len(out.Minutes)-60:]
	}
	return out
}
