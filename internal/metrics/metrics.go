// Package metrics owns the sidecar's Prometheus collectors. One *Metrics is
// created per daemon on its own registry (no global registry), and handed to
// the parts that count things.
package metrics

import "github.com/prometheus/client_golang/prometheus"

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
	}
	reg.MustRegister(m.Published, m.PublishDuration, m.Deliveries, m.DeliveryDuration, m.Retries, m.DeadLetters, m.InFlight, m.BrokerErrors,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
