package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// op performs one operation (one HTTP request, one XADD, one pipeline) and
// returns nil if it succeeded. Each worker owns its op, so an op may reuse
// its buffers without locking.
type op func(ctx context.Context) error

// loadResult is one closed-loop measurement.
type loadResult struct {
	Target       string    `json:"target"`
	Clients      int       `json:"clients"`
	EventsPerOp  int       `json:"eventsPerOp"`
	Ops          uint64    `json:"ops"`
	Errors       uint64    `json:"errors"`
	FirstError   string    `json:"firstError,omitempty"`
	OpsPerSec    float64   `json:"opsPerSec"`
	EventsPerSec float64   `json:"eventsPerSec"`
	LatencyMs    latencyMs `json:"latencyMs"`
	// Procs is what each process used in the window: "server" is the process
	// behind the target (sidecar or no-op server; none for direct go-redis),
	// "harness" the load generator itself.
	Procs map[string]usage `json:"procs"`
	// MachineBusyCores is what the whole machine used in the window;
	// OtherCores the part of it no process above used: other workloads on a
	// shared machine, whose competition makes the numbers noisy.
	MachineBusyCores float64 `json:"machineBusyCores"`
	OtherCores       float64 `json:"otherCores"`
}

// closedLoop runs clients workers, each issuing its op back to back, for
// warmup and then dur. Only operations started inside the measured window
// count; throughput is what they completed divided by dur. It returns early
// with ctx's error when ctx ends.
func closedLoop(ctx context.Context, clients int, newOp func() op, warmup, dur time.Duration) (*histogram, uint64, uint64, string, error) {
	type workerResult struct {
		h        *histogram
		ok, errs uint64
		firstErr error
	}
	results := make([]workerResult, clients)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			r.h = &histogram{}
			do := newOp()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := do(ctx)
				lat := time.Since(t0)
				if t0.Before(measureFrom) {
					if err != nil {
						time.Sleep(time.Millisecond) // a failing target is not a busy loop
					}
					continue
				}
				if err != nil {
					r.errs++
					if r.firstErr == nil {
						r.firstErr = err
					}
					time.Sleep(time.Millisecond)
					continue
				}
				r.ok++
				r.h.record(lat)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, "", err
	}
	total := &histogram{}
	var ok, errs uint64
	var firstErr string
	for _, r := range results {
		total.merge(r.h)
		ok += r.ok
		errs += r.errs
		if r.firstErr != nil && firstErr == "" {
			firstErr = r.firstErr.Error()
		}
	}
	return total, ok, errs, firstErr, nil
}

// eventBody is one publish body of exactly size bytes (at least the fixed
// part): {"type":"bench.event","tenantId":"acme","data":{"pad":"xxx…"}}.
func eventBody(size int) []byte {
	const head, tail = `{"type":"bench.event","tenantId":"acme","data":{"pad":"`, `"}}`
	pad := max(size-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// batchBody is {"events":[e,e,…]} with n copies of event.
func batchBody(event []byte, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(event)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// newHostClient is the load generator's HTTP client for one worker set: one
// connection per worker, over TCP to addr or, with socket set, over the Unix
// socket.
func newHostClient(addr, socket string, clients int) *fasthttp.HostClient {
	hc := &fasthttp.HostClient{
		Addr:                addr,
		MaxConns:            clients,
		ReadTimeout:         30 * time.Second,
		WriteTimeout:        30 * time.Second,
		MaxIdleConnDuration: time.Minute,
		MaxResponseBodySize: 16 << 20,
	}
	if socket != "" {
		hc.Addr = "sidecar"
		hc.Dial = func(string) (net.Conn, error) { return net.Dial("unix", socket) }
	}
	return hc
}

// httpOp posts body to path and wants 202.
func httpOp(hc *fasthttp.HostClient, path string, body []byte) func() op {
	uri := "http://" + hc.Addr + path
	return func() op {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI(uri)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
		return func(context.Context) error {
			if err := hc.Do(req, resp); err != nil {
				return fmt.Errorf("POST %s: %w", path, err)
			}
			if resp.StatusCode() != fasthttp.StatusAccepted {
				return fmt.Errorf("POST %s: status %d: %.200s", path, resp.StatusCode(), resp.Body())
			}
			return nil
		}
	}
}

// directValues are the entry fields the sidecar writes for one event (see
// event.AppendValues), with fresh id, timestamp and correlation id, as an app
// writing to Redis itself would have to produce them.
func directValues(dst []any, data string) []any {
	id, _ := uuid.NewV7()
	return append(dst[:0],
		"id", id.String(),
		"type", "bench.event",
		"source", "bench",
		"timestamp", time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"correlationId", uuid.NewString(),
		"tenantId", "acme",
		"userId", "system",
		"version", "1.0",
		"data", data)
}

// directOp is the baseline: the app itself sends the XADD the sidecar would
// send (same fields, same approximate MINID trim), n per pipeline.
func directOp(rdb *redis.Client, stream, data string, n int) func() op {
	return func() op {
		values := make([][]any, n)
		return func(ctx context.Context) error {
			// The sidecar trims to its 30-day retention with every XADD.
			minid := strconv.FormatInt(time.Now().Add(-720*time.Hour).UnixMilli(), 10)
			if n == 1 {
				values[0] = directValues(values[0], data)
				return rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, MinID: minid, Approx: true, Values: values[0]}).Err()
			}
			pipe := rdb.Pipeline()
			for i := range values {
				values[i] = directValues(values[i], data)
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, MinID: minid, Approx: true, Values: values[i]})
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				return fmt.Errorf("pipeline of %d XADD: %w", len(cmds), err)
			}
			return nil
		}
	}
}

// dropStreams unlinks the streams a measurement filled and waits until Redis
// has freed them in the background, so the next measurement starts on an
// equally empty server.
func dropStreams(ctx context.Context, rdb *redis.Client, keys ...string) error {
	if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("unlink %v: %w", keys, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		info, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			return fmt.Errorf("info memory: %w", err)
		}
		if infoField(info, "lazyfree_pending_objects") == "0" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("redis did not free the unlinked streams within 30s")
}

// infoField returns the value of name in an INFO reply ("" if absent).
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
