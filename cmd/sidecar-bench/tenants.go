package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The many-tenants measurement has its own key prefix and group, so nothing
// of the other measurements is read and its streams are dropped at the end.
const (
	tenantsPrefix = "benchten"
	tenantsGroup  = "bench-tenants"
	seedChunk     = 1000 // XADDs per pipeline while seeding
)

// tenantsResult is the many-tenants measurement: a sidecar with --app-url
// whose group reads every one of Tenants streams, idle and then with events
// published to random tenants at a low rate.
type tenantsResult struct {
	Tenants int `json:"tenants"`
	// SeedMs is how long seeding the streams took; DiscoverMs is from the
	// sidecar's ready to the arrival of an event published to the last
	// tenant (in the registry's sorted order) just after ready: the time the
	// sidecar took to create its group on every stream and start reading.
	SeedMs     float64 `json:"seedMs"`
	DiscoverMs float64 `json:"discoverMs"`
	// IdleSec is the length of the idle window, after a settle second; the
	// CPU of the sidecar and of Redis in it, in cores.
	IdleSec     float64 `json:"idleSec"`
	IdleSidecar usage   `json:"idleSidecar"`
	IdleRedis   usage   `json:"idleRedis"`
	IdleOther   float64 `json:"idleOtherCores"`
	// New events: Rate events a second to random tenants for the measurement
	// duration; the latency is publish → push arriving at the app.
	Rate        int       `json:"rate"`
	Sent        int64     `json:"sent"`
	Received    int64     `json:"received"`
	PublishErrs int64     `json:"publishErrors"`
	FirstError  string    `json:"firstError,omitempty"`
	LatencyMs   latencyMs `json:"latencyMs"`
	Sidecar     usage     `json:"sidecar"`
	Redis       usage     `json:"redis"`
	OtherCores  float64   `json:"otherCores"`
}

func tenantName(i int) string { return fmt.Sprintf("t%05d", i) }

// seedTenants creates n tenant streams under prefix, each with one entry,
// and registers them in the tenant set, seedChunk streams per pipeline. The
// entries are older than any group created afterwards, so none is delivered.
func seedTenants(ctx context.Context, rdb *redis.Client, prefix string, n int) error {
	for lo := 0; lo < n; lo += seedChunk {
		hi := min(lo+seedChunk, n)
		pipe := rdb.Pipeline()
		members := make([]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			t := tenantName(i)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: prefix + ":events:{" + t + "}", Values: []any{
				"id", "seed-" + t, "type", "bench.seed", "source", "bench", "tenantId", t, "data", "{}"}})
			members = append(members, t)
		}
		pipe.SAdd(ctx, prefix+":tenants", members...)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seed tenants %d–%d: %w", lo, hi-1, err)
		}
	}
	return nil
}

// manyTenants seeds o.tenants streams, starts a sidecar with --app-url on
// them, waits until it reads them all, samples it idle for o.tenantsIdle
// and then publishes o.tenantsRate events a second to random tenants for
// o.duration, timing each until the app has it. The streams stay: the Redis
// is the harness's own and goes when it ends.
func manyTenants(ctx context.Context, o *options, bin, dir, redisAddr string, redisPid int, rdb *redis.Client, logf func(string, ...any)) (*tenantsResult, error) {
	n := o.tenants
	r := &tenantsResult{Tenants: n, Rate: o.tenantsRate}
	t0 := time.Now()
	if err := seedTenants(ctx, rdb, tenantsPrefix, n); err != nil {
		return nil, err
	}
	r.SeedMs = ms(time.Since(t0))
	logf("tenants: %d streams seeded in %.0f ms", n, r.SeedMs)

	base := time.Now()
	recv, err := startReceiver(base)
	if err != nil {
		return nil, err
	}
	defer recv.close()
	sc, err := startSidecar(ctx, bin, o.storeArgs(dir, redisAddr), "",
		"--app-url", recv.url(), "--group", tenantsGroup, "--key-prefix", tenantsPrefix)
	if err != nil {
		return nil, err
	}
	defer sc.stop(syscall.SIGTERM, stopGrace)
	hc := newHostClient(sc.addr, "", e2eWorkers)
	defer hc.CloseIdleConnections()

	// The sidecar makes the streams it discovers readable all at once, after
	// creating its group on each in sorted order: an event of the last
	// tenant arriving means it reads them all.
	last := tenantName(n - 1)
	recv.reset(0)
	ready := time.Now()
	if _, errs, first, _ := paced(ctx, hc, base, 0, 1000, o.eventBytes, time.Millisecond, func(int) string { return last }); errs > 0 {
		return nil, fmt.Errorf("tenants: publish to %s failed: %s", last, first)
	}
	if err := waitReceived(ctx, recv, 1, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("tenants: the event of %s never reached the app: %w\nsidecar output:\n%s", last, err, sc.out.String())
	}
	r.DiscoverMs = ms(time.Since(ready))
	logf("tenants: the sidecar reads all %d streams %.0f ms after ready", n, r.DiscoverMs)

	// Idle: a settle second (the push just made, the acks), then the window.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w := startWatch(sc.pid(), redisPid, 0)
	select {
	case <-time.After(o.tenantsIdle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	use := w.stop()
	r.IdleSec = round3(time.Since(w.start).Seconds())
	r.IdleSidecar, r.IdleRedis = use[0], use[1]
	r.IdleOther = round3(max(w.machineCores()-use[0].CPUCores-use[1].CPUCores-use[2].CPUCores, 0))
	logf("tenants: idle %.1f s: sidecar %.3f cores, redis %.3f cores, other load %.2f cores",
		r.IdleSec, r.IdleSidecar.CPUCores, r.IdleRedis.CPUCores, r.IdleOther)

	// New events to random tenants at a low rate.
	recv.reset(1)
	w = startWatch(sc.pid(), redisPid, 0)
	random := func(int) string { return tenantName(rand.IntN(n)) }
	sent, errs, first, _ := paced(ctx, hc, base, 1, o.tenantsRate, o.eventBytes, o.duration, random)
	use = w.stop()
	_ = waitReceived(ctx, recv, sent, max(2*time.Second, o.duration))
	st := recv.reset(-1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if sc.exited() {
		return nil, fmt.Errorf("tenants: the sidecar exited:\n%s", sc.out.String())
	}
	r.Sent, r.Received, r.PublishErrs, r.FirstError = sent, st.received, errs, first
	r.LatencyMs = st.h.summary()
	r.Sidecar, r.Redis = use[0], use[1]
	r.OtherCores = round3(max(w.machineCores()-use[0].CPUCores-use[1].CPUCores-use[2].CPUCores, 0))
	logf("tenants: %d/s to random tenants: received %d/%d  p50 %.3f ms  p99 %.3f ms  max %.3f ms  sidecar %.3f cores  redis %.3f cores",
		o.tenantsRate, st.received, sent, r.LatencyMs.P50, r.LatencyMs.P99, r.LatencyMs.Max, r.Sidecar.CPUCores, r.Redis.CPUCores)
	if err := sc.stop(syscall.SIGTERM, stopGrace); err != nil {
		return nil, err
	}
	return r, nil
}

// tenantsTargets are issue 10's many-tenants targets; they count as met only
// when measured with at least 10,000 streams.
func tenantsTargets(t *tenantsResult, add func(target string, measured, met bool, format string, args ...any)) {
	enough := t != nil && t.Tenants >= 10_000
	var idle, p99 float64
	var n int
	var received, sent int64
	if t != nil {
		idle, p99, n, received, sent = t.IdleSidecar.CPUCores, t.LatencyMs.P99, t.Tenants, t.Received, t.Sent
	}
	add("with 10,000 tenant streams: idle CPU < 5% of a core", t != nil, enough && idle < 0.05,
		"%.1f%% of a core with %s streams (redis %.1f%%)", 100*idle, strconv.Itoa(n), 100*redisIdleOf(t))
	add("with 10,000 tenant streams: new-event p99 < 50 ms", t != nil, enough && p99 < 50 && sent > 0 && received == sent,
		"%.2f ms with %s streams (%d of %d received)", p99, strconv.Itoa(n), received, sent)
}

func redisIdleOf(t *tenantsResult) float64 {
	if t == nil {
		return 0
	}
	return t.IdleRedis.CPUCores
}
