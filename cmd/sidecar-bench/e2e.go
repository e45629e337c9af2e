package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// e2eWorkers is how many publishers share a fixed rate. At 20k/s each sends
// one event every 3.2 ms, well above one publish's latency, so the schedule
// is kept unless the sidecar itself falls behind.
const e2eWorkers = 64

// receiver is the app a sidecar pushes to: it declares one subscription to
// every event type on /e and records, for events of the current run, the
// time from the publisher's send (carried in data.sent, nanoseconds since
// base) to the push's arrival. Safe for concurrent use.
type receiver struct {
	base time.Time
	srv  *fasthttp.Server
	ln   net.Listener
	run  atomic.Int64 // events of other runs are answered but not recorded

	mu       sync.Mutex // guards the fields up to bad
	h        *histogram
	received int64
	since    time.Duration // when the run started, since base
	last     time.Duration // when its last event arrived, since base
	bad      atomic.Int64  // pushes whose body did not parse
}

func startReceiver(base time.Time) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &receiver{base: base, ln: ln, h: &histogram{}}
	r.srv = &fasthttp.Server{Handler: r.handle, Name: "bench-app", NoDefaultServerHeader: true, NoDefaultDate: true}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) url() string { return "http://" + r.ln.Addr().String() }

func (r *receiver) close() error { return r.srv.Shutdown() }

func (r *receiver) handle(ctx *fasthttp.RequestCtx) {
	now := time.Since(r.base)
	switch string(ctx.Path()) {
	case "/hyvve/subscriptions":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`[{"pattern":"**","path":"/e"}]`)
	case "/e":
		body := ctx.PostBody()
		run, ok1 := intField(body, `"run":`)
		sent, ok2 := intField(body, `"sent":`)
		if !ok1 || !ok2 {
			r.bad.Add(1)
			return // 200: an unparseable event is not retried forever
		}
		if run == r.run.Load() {
			r.mu.Lock()
			r.h.record(now - time.Duration(sent))
			r.received++
			r.last = now
			r.mu.Unlock()
		}
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// runStats is what the receiver saw of one run.
type runStats struct {
	h        *histogram
	received int64
	// span is from the start of the run to the arrival of its last event.
	span time.Duration
}

// reset starts recording events of run and returns what it saw of the
// previous one.
func (r *receiver) reset(run int64) runStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := runStats{h: r.h, received: r.received, span: r.last - r.since}
	now := time.Since(r.base)
	r.h, r.received, r.since, r.last = &histogram{}, 0, now, now
	r.run.Store(run)
	return st
}

func (r *receiver) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received
}

// intField parses the non-negative integer after the first occurrence of key.
func intField(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return n, err == nil
}

// e2eResult is one fixed-rate end-to-end measurement.
type e2eResult struct {
	Rate         int     `json:"rate"`
	AchievedRate float64 `json:"achievedRate"`
	Sent         int64   `json:"sent"`
	Received     int64   `json:"received"`
	// DeliveredRate is events received per second, from the start of the
	// run to the arrival of its last event: below AchievedRate when
	// delivery fell behind.
	DeliveredRate float64   `json:"deliveredRate"`
	PublishErrs   int64     `json:"publishErrors"`
	FirstError    string    `json:"firstError,omitempty"`
	LatencyMs     latencyMs `json:"latencyMs"`
	Sidecar       usage     `json:"sidecar"`
	Redis         usage     `json:"redis"`
	// The harness (publisher and receiving app) and the machine, as in
	// loadResult.
	Harness          usage   `json:"harness"`
	MachineBusyCores float64 `json:"machineBusyCores"`
	OtherCores       float64 `json:"otherCores"`
}

// paced publishes rate events a second to the sidecar for dur, from
// e2eWorkers workers that each own every e2eWorkers-th slot of the schedule.
// Event i goes to tenant(i) and carries its run and its send time (taken just
// before the request is written) in data, padded so the event is size bytes.
// tenant is called from several goroutines at once. A worker
// behind schedule sends at once; the achieved rate shows if the publisher
// could not keep up. It returns the events sent (202), the errors, the first
// error and how long sending took.
func paced(ctx context.Context, hc *fasthttp.HostClient, base time.Time, run int64, rate, size int, dur time.Duration, tenant func(i int) string) (sent, errs int64, firstErr string, elapsed time.Duration) {
	var nSent, nErrs atomic.Int64
	var errOnce sync.Once
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	total := int(int64(dur) / int64(interval))
	uri := "http://" + hc.Addr + "/v1/events"
	var wg sync.WaitGroup
	for w := range e2eWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(uri)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			var body []byte
			for i := w; i < total && ctx.Err() == nil; i += e2eWorkers {
				if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
					time.Sleep(wait)
				}
				body = e2eBody(body[:0], tenant(i), run, time.Since(base), size)
				req.SetBodyRaw(body)
				err := hc.Do(req, resp)
				if err == nil && resp.StatusCode() != fasthttp.StatusAccepted {
					err = fmt.Errorf("status %d: %.200s", resp.StatusCode(), resp.Body())
				}
				if err != nil {
					nErrs.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				nSent.Add(1)
			}
		}()
	}
	wg.Wait()
	return nSent.Load(), nErrs.Load(), firstErr, time.Since(start)
}

// acme is the tenant of every event of the end-to-end measurements.
func acme(int) string { return "acme" }

// e2eBody appends one event of tenant, of (about) size bytes, whose data
// holds run and the send time.
func e2eBody(b []byte, tenant string, run int64, sent time.Duration, size int) []byte {
	b = append(b, `{"type":"bench.event","tenantId":"`...)
	b = append(b, tenant...)
	b = append(b, `","data":{"run":`...)
	b = strconv.AppendInt(b, run, 10)
	b = append(b, `,"sent":`...)
	b = strconv.AppendInt(b, int64(sent), 10)
	b = append(b, `,"pad":"`...)
	for n := size - len(b) - len(`"}}`); n > 0; n-- {
		b = append(b, 'x')
	}
	return append(b, `"}}`...)
}
