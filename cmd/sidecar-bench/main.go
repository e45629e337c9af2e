// Command sidecar-bench measures the real sidecar binary and, in the same run
// on the same Redis, the ceilings around it: a no-op HTTP server answering
// 202 (the cost of a local HTTP hop and nothing else) and an app sending the
// same XADD with go-redis itself.
//
// It builds ./cmd/sidecar into a temporary directory, starts redis-server
// (in memory, on a free port), the no-op server (this binary re-executed) and
// the sidecar, drives them with fasthttp clients over TCP and the Unix socket
// and prints one JSON report on stdout: publish throughput and latency at
// several client counts, batch publish, end-to-end latency publish → push at
// fixed rates, RSS and CPU idle and under load, exec → ready time, a
// sidecar reading many tenant streams (idle CPU, new-event latency), the
// ratios to the ceilings and the targets, met or not. With -plot it also
// draws throughput and p99 latency against clients as a PNG. Progress goes to
// stderr. Every process it starts is stopped on exit, also on Ctrl-C.
//
// Usage:
//
//	go run ./cmd/sidecar-bench [-duration 5s] [-smoke] [-plot docs/performance.png] [-only tenants -tenants 10000]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	duration, warmup, idle time.Duration
	smoke                  bool
	plot                   string
	clients, batchClients  []int
	batchSize              int
	rates                  []int
	eventBytes             int
	starts                 int
	appConcurrency         int
	goBin, redisBin        string
	sidecarBin             string
	store                  string // "redis" or "embedded": the sidecar's store
	tenants, tenantsRate   int
	tenantsIdle            time.Duration
	only                   map[string]bool // sections to run; nil: all

	noopServer bool // internal: run as the no-op server
	noopSocket string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sidecar-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each measurement runs, after its warm-up")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measurement (not counted)")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "how long idle CPU and RSS are sampled")
	fs.BoolVar(&o.smoke, "smoke", false, "run everything for about 300 ms each (CI): checks the harness, not the numbers")
	fs.StringVar(&o.plot, "plot", "", "write a PNG plot of throughput and p99 latency against clients to this path")
	clients := fs.String("clients", "1,32,256", "concurrent clients of the publish measurements")
	batchClients := fs.String("batch-clients", "1,32", "concurrent clients of the batch measurements")
	fs.IntVar(&o.batchSize, "batch-size", 100, "events per batch")
	rates := fs.String("rates", "1000,5000,20000", "end-to-end publish rates, events/s")
	fs.IntVar(&o.eventBytes, "event-bytes", 1024, "size of one event's JSON")
	fs.IntVar(&o.starts, "starts", 5, "how many times exec → ready is measured")
	fs.IntVar(&o.appConcurrency, "app-concurrency", 0, "--app-concurrency of the end-to-end sidecar (0: its default)")
	fs.StringVar(&o.goBin, "go", "go", "go command that builds ./cmd/sidecar")
	fs.StringVar(&o.sidecarBin, "sidecar", "", "use this sidecar binary instead of building one")
	fs.StringVar(&o.store, "store", "redis", "the sidecar's store: redis (the Redis started here) or embedded (its own JetStream in a temp dir); direct go-redis always uses Redis")
	fs.StringVar(&o.redisBin, "redis-server", "redis-server", "redis-server binary")
	fs.IntVar(&o.tenants, "tenants", 10_000, "tenant streams of the many-tenants measurement (0: skip it; -smoke: at most 100)")
	fs.DurationVar(&o.tenantsIdle, "tenants-idle", 5*time.Second, "how long the many-tenants sidecar's idle CPU is sampled")
	fs.IntVar(&o.tenantsRate, "tenants-rate", 50, "events/s published to random tenants in the many-tenants measurement")
	only := fs.String("only", "", "run only these measurements, comma-separated: "+strings.Join(sections, ", ")+" (default: all)")
	fs.BoolVar(&o.noopServer, "internal-noop-server", false, "internal: serve as the no-op server")
	fs.StringVar(&o.noopSocket, "noop-socket", "", "internal: the no-op server's Unix socket")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.clients, err = intList("-clients", *clients); err != nil {
		return nil, err
	}
	if o.batchClients, err = intList("-batch-clients", *batchClients); err != nil {
		return nil, err
	}
	if o.rates, err = intList("-rates", *rates); err != nil {
		return nil, err
	}
	if *only != "" {
		o.only = map[string]bool{}
		for f := range strings.SplitSeq(*only, ",") {
			f = strings.TrimSpace(f)
			if !slices.Contains(sections, f) {
				return nil, fmt.Errorf("-only: %q: want some of %s", f, strings.Join(sections, ", "))
			}
			o.only[f] = true
		}
	}
	if o.smoke {
		o.duration, o.warmup, o.idle, o.starts = 300*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond, 2
		o.tenants, o.tenantsIdle = min(o.tenants, 100), 300*time.Millisecond
	}
	switch {
	case o.duration <= 0:
		return nil, fmt.Errorf("-duration: %v: must be positive", o.duration)
	case o.warmup < 0 || o.idle < 0:
		return nil, errors.New("-warmup, -idle: must not be negative")
	case o.batchSize < 1 || o.batchSize > 1000:
		return nil, fmt.Errorf("-batch-size: %d: must be 1 to 1000 (the sidecar's limit)", o.batchSize)
	case o.eventBytes < 128:
		return nil, fmt.Errorf("-event-bytes: %d: must be at least 128", o.eventBytes)
	case o.starts < 1:
		return nil, fmt.Errorf("-starts: %d: must be at least 1", o.starts)
	case o.appConcurrency < 0:
		return nil, fmt.Errorf("-app-concurrency: %d: must not be negative", o.appConcurrency)
	case o.store != "redis" && o.store != "embedded":
		return nil, fmt.Errorf("-store: %q: must be redis or embedded", o.store)
	case o.tenants < 0 || o.tenants > 99_999:
		return nil, fmt.Errorf("-tenants: %d: must be 0 to 99999", o.tenants)
	case o.tenantsRate < 1:
		return nil, fmt.Errorf("-tenants-rate: %d: must be positive", o.tenantsRate)
	case o.tenantsIdle <= 0:
		return nil, fmt.Errorf("-tenants-idle: %v: must be positive", o.tenantsIdle)
	}
	return o, nil
}

// sections are the measurements -only can pick. "start" is exec → ready and
// the idle publish-only sidecar; "tenants" needs -store redis.
var sections = []string{"start", "publish", "batch", "e2e", "tenants"}

// onlyList is the sections -only chose, in run order; nil for all.
func onlyList(o *options) []string {
	var out []string
	for _, sec := range sections {
		if o.only[sec] {
			out = append(out, sec)
		}
	}
	return out
}

// runs reports whether the section is to be measured.
func (o *options) runs(section string) bool {
	if section == "tenants" && (o.tenants == 0 || o.store != "redis") {
		return false
	}
	return o.only == nil || o.only[section]
}

// storeArgs are the flags that point a sidecar at its store: the Redis at
// redisAddr, or an embedded store in a new directory under dir (each
// sidecar its own: one sidecar per data dir).
func (o *options) storeArgs(dir, redisAddr string) []string {
	if o.store == "embedded" {
		return []string{"--data-dir", filepath.Join(dir, "data-"+strconv.FormatInt(time.Now().UnixNano(), 36))}
	}
	return []string{"--redis-url", "redis://" + redisAddr + "/0"}
}

// intList parses "1,32,256" into positive integers.
func intList(name, s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q: want positive integers separated by commas", name, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// run returns the exit code: 0 with the report printed, 1 if a measurement
// failed, 2 for bad flags, 130 when interrupted.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.noopServer {
		if err := serveNoop(ctx, o.noopSocket, stdout); err != nil {
			fmt.Fprintf(stderr, "sidecar-bench: %v\n", err)
			return 1
		}
		return 0
	}

	rep, err := bench(ctx, o, stderr)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "sidecar-bench: interrupted; every process it started is stopped")
		return 130
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar-bench: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "sidecar-bench: write report: %v\n", err)
		return 1
	}
	return 0
}

// report is the JSON printed on stdout.
type report struct {
	Machine      machine          `json:"machine"`
	Settings     settings         `json:"settings"`
	Headline     headline         `json:"headline"`
	Targets      []targetCheck    `json:"targets"`
	StartToReady startToReady     `json:"startToReady"`
	Idle         map[string]usage `json:"idle"`
	Publish      []*loadResult    `json:"publish"`
	Batch        []*loadResult    `json:"batch"`
	E2E          []*e2eResult     `json:"e2e"`
	Tenants      *tenantsResult   `json:"tenants,omitempty"`
	Plot         string           `json:"plot,omitempty"`
	ElapsedSec   float64          `json:"elapsedSec"`
}

type machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpuModel,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	Go         string `json:"go"`
	Redis      string `json:"redis"`
}

type settings struct {
	Smoke          bool   `json:"smoke"`
	Duration       string `json:"duration"`
	Warmup         string `json:"warmup"`
	EventBytes     int    `json:"eventBytes"`
	BatchSize      int    `json:"batchSize"`
	Clients        []int  `json:"clients"`
	BatchClients   []int  `json:"batchClients"`
	Rates          []int  `json:"rates"`
	AppConcurrency int    `json:"appConcurrency"`
	Store          string `json:"store"`
	Tenants        int    `json:"tenants"`
	TenantsIdle    string `json:"tenantsIdle"`
	TenantsRate    int    `json:"tenantsRate"`
	Only           string `json:"only,omitempty"`
}

// headline holds the ratios the issue asks for; a ratio whose inputs were not
// measured (e.g. -clients without 32) is 0.
type headline struct {
	// Sidecar publish throughput over TCP at 32 clients as a fraction of the
	// no-op server's and of direct go-redis XADD's.
	SidecarVsNoopAt32   float64 `json:"sidecarVsNoopThroughputAt32"`
	SidecarVsDirectAt32 float64 `json:"sidecarVsDirectThroughputAt32"`
	// Sidecar p50 minus no-op p50 at 1 client (TCP), ms.
	P50OverheadAt1Ms float64 `json:"p50OverheadAt1ClientMs"`
	// Sidecar throughput over the Unix socket divided by over TCP, by clients.
	UnixVsTCP map[string]float64 `json:"unixVsTcpThroughput"`
	// CostAt32 is the CPU each process spent per event at 32 clients over
	// TCP, in µs; BestVsNoopAt32 is what it implies for the first ratio (see
	// bestVsNoop).
	CostAt32       cost    `json:"cpuMicrosPerEventAt32"`
	BestVsNoopAt32 float64 `json:"bestPossibleVsNoopAt32"`
}

// cost is CPU time per event, µs: of the no-op server and the load generator
// driving it, of the sidecar, of the load generator and Redis while it
// drives the sidecar, and of Redis under direct go-redis XADD.
type cost struct {
	NoopServer     float64 `json:"noopServer"`
	NoopHarness    float64 `json:"noopHarness"`
	Sidecar        float64 `json:"sidecar"`
	SidecarHarness float64 `json:"sidecarHarness"`
	SidecarRedis   float64 `json:"sidecarRedis"`
	DirectRedis    float64 `json:"directRedis"`
}

// redisPerXADD is the lower nonzero of Redis's two costs per event, 0 if
// neither was measured.
func (c cost) redisPerXADD() float64 {
	if c.DirectRedis > 0 && (c.SidecarRedis == 0 || c.DirectRedis < c.SidecarRedis) {
		return c.DirectRedis
	}
	return c.SidecarRedis
}

// perEvent is the CPU µs process proc of r spent per event, 0 if not measured.
func perEvent(r *loadResult, proc string) float64 {
	if r == nil || r.EventsPerSec == 0 {
		return 0
	}
	return round3(r.Procs[proc].CPUCores / r.EventsPerSec * 1e6)
}

// bestVsNoop bounds the sidecar's fraction of the no-op ceiling when the
// machine's cores are what limits both (the no-op server, the load generator
// and Redis share them): a sidecar that spent no more CPU per event than the
// no-op server still makes Redis append every event, so at best it reaches
// (server + load generator) ÷ (server + load generator + Redis per XADD) of
// the no-op throughput. Redis's cost is the lower of its two measurements.
// 0 if an input was not measured.
func bestVsNoop(c cost) float64 {
	redis := c.redisPerXADD()
	hop := c.NoopServer + c.NoopHarness
	if hop == 0 || redis == 0 {
		return 0
	}
	return round3(hop / (hop + redis))
}

type targetCheck struct {
	Target string `json:"target"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
}

type startToReady struct {
	RunsMs   []float64 `json:"runsMs"`
	MinMs    float64   `json:"minMs"`
	MedianMs float64   `json:"medianMs"`
	MaxMs    float64   `json:"maxMs"`
	// WithAppMs is the end-to-end sidecar's: ready also needs the app's
	// subscriptions.
	WithAppMs float64 `json:"withAppMs"`
}

// Names of the measured targets.
const (
	tNoopTCP     = "noop-tcp"
	tNoopUnix    = "noop-unix"
	tSidecarTCP  = "sidecar-tcp"
	tSidecarUnix = "sidecar-unix"
	tDirect      = "direct-go-redis"
)

// Redis keys the publish measurements fill; dropped after each one.
const (
	sidecarStream = "hyvve:events:{acme}"
	directStream  = "bench:direct:{acme}"
)

// bench runs every measurement in order and builds the report. Whatever
// happens, every process it started is stopped before it returns.
func bench(ctx context.Context, o *options, logw io.Writer) (*report, error) {
	began := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "sidecar-bench: "+format+"\n", args...) }
	rep := &report{
		Settings: settings{Smoke: o.smoke, Duration: o.duration.String(), Warmup: o.warmup.String(),
			EventBytes: o.eventBytes, BatchSize: o.batchSize, Clients: o.clients, BatchClients: o.batchClients,
			Rates: o.rates, AppConcurrency: o.appConcurrency, Store: o.store,
			Tenants: o.tenants, TenantsIdle: o.tenantsIdle.String(), TenantsRate: o.tenantsRate, Only: strings.Join(onlyList(o), ",")},
		Idle: map[string]usage{},
	}

	dir, err := os.MkdirTemp("", "sidecar-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	bin := o.sidecarBin
	if bin == "" {
		logf("building ./cmd/sidecar")
		if bin, err = buildSidecar(ctx, o.goBin, dir); err != nil {
			return nil, err
		}
	}
	redisProc, redisAddr, err := startRedis(ctx, o.redisBin, dir)
	if err != nil {
		return nil, err
	}
	defer redisProc.stop(syscall.SIGKILL, 0)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	noopSock := filepath.Join(dir, "noop.sock")
	noopProc, noopAddr, err := startNoop(ctx, noopSock)
	if err != nil {
		return nil, err
	}
	defer noopProc.stop(syscall.SIGTERM, stopGrace)
	rep.Machine = machineInfo(ctx, rdb)
	logf("redis %s on %s, no-op server on %s, %d CPUs", rep.Machine.Redis, redisAddr, noopAddr, rep.Machine.CPUs)

	// Exec → ready, with the flags of the publish sidecar below.
	sock := filepath.Join(dir, "sidecar.sock")
	if o.runs("start") {
		for range o.starts {
			s, err := startSidecar(ctx, bin, o.storeArgs(dir, redisAddr), sock)
			if err != nil {
				return nil, err
			}
			rep.StartToReady.RunsMs = append(rep.StartToReady.RunsMs, ms(s.toReady))
			if err := s.stop(syscall.SIGTERM, stopGrace); err != nil {
				return nil, err
			}
		}
		runs := slices.Sorted(slices.Values(rep.StartToReady.RunsMs))
		rep.StartToReady.MinMs, rep.StartToReady.MaxMs = runs[0], runs[len(runs)-1]
		rep.StartToReady.MedianMs = runs[len(runs)/2]
		logf("exec → ready: %v ms", rep.StartToReady.RunsMs)
	}

	if o.runs("start") || o.runs("publish") || o.runs("batch") {
		if err := publishSection(ctx, o, rep, bin, dir, sock, redisAddr, redisProc, noopProc, noopAddr, noopSock, rdb, logf); err != nil {
			return nil, err
		}
	}

	if o.runs("e2e") {
		if rep.E2E, err = e2e(ctx, o, rep, bin, dir, redisAddr, redisProc.pid(), logf); err != nil {
			return nil, err
		}
	}

	if o.runs("tenants") {
		if rep.Tenants, err = manyTenants(ctx, o, bin, dir, redisAddr, redisProc.pid(), rdb, logf); err != nil {
			return nil, err
		}
	}

	rep.Headline = headlineOf(rep)
	rep.Targets = targetsOf(rep)
	if o.plot != "" {
		if err := os.MkdirAll(filepath.Dir(o.plot), 0o755); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
		if err := writePlot(o.plot, plotTitle(rep), plotSeries(rep.Publish)); err != nil {
			return nil, err
		}
		rep.Plot = o.plot
		logf("plot written to %s", o.plot)
	}
	rep.ElapsedSec = round3(time.Since(began).Seconds())
	return rep, nil
}

// publishSection starts the publish-only sidecar and measures it idle, then
// publish and batch publish against it and the two baselines, as o asks.
func publishSection(ctx context.Context, o *options, rep *report, bin, dir, sock, redisAddr string, redisProc, noopProc *proc, noopAddr, noopSock string, rdb *redis.Client, logf func(string, ...any)) error {
	sc, err := startSidecar(ctx, bin, o.storeArgs(dir, redisAddr), sock)
	if err != nil {
		return err
	}
	defer sc.stop(syscall.SIGTERM, stopGrace)
	if o.runs("start") {
		rep.Idle["sidecar"] = idleUsage(ctx, sc.pid(), o.idle)
		logf("idle publish-only sidecar: %+v", rep.Idle["sidecar"])
	}

	body := eventBody(o.eventBytes)
	data := eventData(body)
	m := &measurer{o: o, rdb: rdb, redisPid: redisProc.pid(), logf: logf}
	httpTarget := func(name string, p *proc, addr, socket string, body []byte, path string, events int) loadTarget {
		return loadTarget{name: name, events: events, server: p, newOp: func(clients int) (func() op, func()) {
			hc := newHostClient(addr, socket, clients)
			return httpOp(hc, path, body), hc.CloseIdleConnections
		}}
	}
	directTarget := func(n int) loadTarget {
		return loadTarget{name: tDirect, events: n, newOp: func(clients int) (func() op, func()) {
			c := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: clients})
			return directOp(c, directStream, data, n), func() { _ = c.Close() }
		}}
	}

	// Publish, one event per request; the targets alternate at each client
	// count so drift on a shared machine spreads over all of them.
	for _, c := range o.clients {
		if !o.runs("publish") {
			break
		}
		for _, t := range []loadTarget{
			httpTarget(tNoopTCP, noopProc, noopAddr, "", body, "/v1/events", 1),
			httpTarget(tNoopUnix, noopProc, "", noopSock, body, "/v1/events", 1),
			httpTarget(tSidecarTCP, sc.proc, sc.addr, "", body, "/v1/events", 1),
			httpTarget(tSidecarUnix, sc.proc, "", sock, body, "/v1/events", 1),
			directTarget(1),
		} {
			r, err := m.measure(ctx, t, c)
			if err != nil {
				return err
			}
			rep.Publish = append(rep.Publish, r)
		}
	}

	// Batch publish.
	batch := batchBody(body, o.batchSize)
	for _, c := range o.batchClients {
		if !o.runs("batch") {
			break
		}
		for _, t := range []loadTarget{
			httpTarget(tNoopTCP, noopProc, noopAddr, "", batch, "/v1/events/batch", o.batchSize),
			httpTarget(tSidecarTCP, sc.proc, sc.addr, "", batch, "/v1/events/batch", o.batchSize),
			directTarget(o.batchSize),
		} {
			r, err := m.measure(ctx, t, c)
			if err != nil {
				return err
			}
			rep.Batch = append(rep.Batch, r)
		}
	}
	return sc.stop(syscall.SIGTERM, stopGrace)

}

// loadTarget is something closed-loop load is driven against.
type loadTarget struct {
	name   string
	events int   // events per operation
	server *proc // process serving it, nil for direct go-redis
	// newOp returns the per-worker op factory for clients workers and what
	// releases their connections afterwards.
	newOp func(clients int) (func() op, func())
}

type measurer struct {
	o        *options
	rdb      *redis.Client
	redisPid int
	logf     func(string, ...any)
}

// measure runs one closed-loop measurement, samples the processes involved
// during it and drops the streams it filled.
func (m *measurer) measure(ctx context.Context, t loadTarget, clients int) (*loadResult, error) {
	factory, release := t.newOp(clients)
	defer release()
	// Watch from the start: the window's CPU includes the warm-up, whose rate
	// is the same.
	pids, names := []int{m.redisPid, 0}, []string{"redis", "harness"}
	if t.server != nil {
		pids, names = append(pids, t.server.pid()), append(names, "server")
	}
	w := startWatch(pids...)
	h, ok, errs, firstErr, err := closedLoop(ctx, clients, factory, m.o.warmup, m.o.duration)
	use := w.stop()
	if err != nil {
		return nil, err
	}
	if t.server != nil && t.server.exited() {
		return nil, fmt.Errorf("%s at %d clients: the server exited:\n%s", t.name, clients, t.server.out.String())
	}
	r := &loadResult{Target: t.name, Clients: clients, EventsPerOp: t.events, Ops: ok, Errors: errs, FirstError: firstErr,
		OpsPerSec: round3(float64(ok) / m.o.duration.Seconds()), LatencyMs: h.summary(), Procs: map[string]usage{}}
	r.EventsPerSec = round3(r.OpsPerSec * float64(t.events))
	r.MachineBusyCores = w.machineCores()
	ours := 0.0
	for i, n := range names {
		r.Procs[n] = use[i]
		ours += use[i].CPUCores
	}
	r.OtherCores = round3(max(r.MachineBusyCores-ours, 0))
	m.logf("%-16s clients=%-4d events/op=%-4d %9.0f events/s  p50 %7.3f ms  p99 %7.3f ms  errors %d  other load %.2f cores",
		t.name, clients, t.events, r.EventsPerSec, r.LatencyMs.P50, r.LatencyMs.P99, errs, r.OtherCores)
	if ok == 0 {
		return nil, fmt.Errorf("%s at %d clients: no operation succeeded: %s", t.name, clients, firstErr)
	}
	if err := dropStreams(ctx, m.rdb, sidecarStream, directStream); err != nil {
		return nil, err
	}
	return r, nil
}

// idleUsage samples a process for d while nothing is sent to it.
func idleUsage(ctx context.Context, pid int, d time.Duration) usage {
	w := startWatch(pid)
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	return w.stop()[0]
}

// e2e runs the end-to-end measurements: a sidecar with --app-url pointing at
// the harness's receiver publishes and delivers at each fixed rate.
func e2e(ctx context.Context, o *options, rep *report, bin, dir, redisAddr string, redisPid int, logf func(string, ...any)) ([]*e2eResult, error) {
	base := time.Now()
	recv, err := startReceiver(base)
	if err != nil {
		return nil, err
	}
	defer recv.close()
	// Its own key prefix and group: nothing of the publish measurements is
	// read, and its group starts with an empty stream.
	args := []string{"--app-url", recv.url(), "--group", "bench-e2e", "--key-prefix", "benche2e"}
	if o.appConcurrency > 0 {
		args = append(args, "--app-concurrency", strconv.Itoa(o.appConcurrency))
	}
	sc, err := startSidecar(ctx, bin, o.storeArgs(dir, redisAddr), "", args...)
	if err != nil {
		return nil, err
	}
	defer sc.stop(syscall.SIGTERM, stopGrace)
	rep.StartToReady.WithAppMs = ms(sc.toReady)
	rep.Idle["sidecarWithApp"] = idleUsage(ctx, sc.pid(), o.idle)
	logf("exec → ready with --app-url: %.1f ms; idle: %+v", rep.StartToReady.WithAppMs, rep.Idle["sidecarWithApp"])

	hc := newHostClient(sc.addr, "", e2eWorkers)
	defer hc.CloseIdleConnections()

	// One event through the whole path first: the sidecar discovers the new
	// tenant stream within a second, which no rate should pay for.
	recv.reset(0)
	if _, errs, first, _ := paced(ctx, hc, base, 0, 1000, o.eventBytes, time.Millisecond, acme); errs > 0 {
		return nil, fmt.Errorf("end-to-end: first publish failed: %s", first)
	}
	if err := waitReceived(ctx, recv, 1, 10*time.Second); err != nil {
		return nil, fmt.Errorf("end-to-end: the first event never reached the app: %w\nsidecar output:\n%s", err, sc.out.String())
	}

	var out []*e2eResult
	for i, rate := range o.rates {
		run := int64(i + 1)
		recv.reset(0) // warm-up: pushed and answered, not recorded
		paced(ctx, hc, base, 0, rate, o.eventBytes, o.warmup, acme)
		recv.reset(run)
		w := startWatch(sc.pid(), redisPid, 0)
		sent, errs, first, elapsed := paced(ctx, hc, base, run, rate, o.eventBytes, o.duration, acme)
		use := w.stop()
		// Let what is in flight arrive; what does not within the wait counts
		// as missing (and is not in the percentiles).
		_ = waitReceived(ctx, recv, sent, max(2*time.Second, o.duration))
		st := recv.reset(-1)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if sc.exited() {
			return nil, fmt.Errorf("end-to-end at %d/s: the sidecar exited:\n%s", rate, sc.out.String())
		}
		r := &e2eResult{Rate: rate, AchievedRate: round3(float64(sent) / max(elapsed, o.duration).Seconds()),
			Sent: sent, Received: st.received, PublishErrs: errs, FirstError: first, LatencyMs: st.h.summary(),
			Sidecar: use[0], Redis: use[1], Harness: use[2], MachineBusyCores: w.machineCores()}
		r.OtherCores = round3(max(r.MachineBusyCores-use[0].CPUCores-use[1].CPUCores-use[2].CPUCores, 0))
		if st.span > 0 {
			r.DeliveredRate = round3(float64(st.received) / st.span.Seconds())
		}
		out = append(out, r)
		logf("e2e rate=%-6d achieved %6.0f/s delivered %6.0f/s received %d/%d  p50 %.3f ms  p99 %.3f ms  p999 %.3f ms  rss %.1f MB  other load %.2f cores",
			rate, r.AchievedRate, r.DeliveredRate, st.received, sent, r.LatencyMs.P50, r.LatencyMs.P99, r.LatencyMs.P999, r.Sidecar.RSSMaxMB, r.OtherCores)
	}
	if n := recv.bad.Load(); n > 0 {
		return nil, fmt.Errorf("end-to-end: %d pushes had no run or send time in data", n)
	}
	return out, nil
}

func waitReceived(ctx context.Context, recv *receiver, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for recv.count() < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d events received within %v", recv.count(), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// eventData is the data object inside an eventBody.
func eventData(body []byte) string {
	s := string(body)
	return s[strings.Index(s, `"data":`)+len(`"data":`) : len(s)-1]
}

func find(rs []*loadResult, target string, clients int) *loadResult {
	for _, r := range rs {
		if r.Target == target && r.Clients == clients {
			return r
		}
	}
	return nil
}

// tput is the events/s of a publish measurement, 0 if it was not run.
func tput(rs []*loadResult, target string, clients int) float64 {
	if r := find(rs, target, clients); r != nil {
		return r.EventsPerSec
	}
	return 0
}

// ratio is a/b, 0 if either was not measured.
func ratio(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return round3(a / b)
}

func headlineOf(rep *report) headline {
	rs := rep.Publish
	h := headline{
		SidecarVsNoopAt32:   ratio(tput(rs, tSidecarTCP, 32), tput(rs, tNoopTCP, 32)),
		SidecarVsDirectAt32: ratio(tput(rs, tSidecarTCP, 32), tput(rs, tDirect, 32)),
		UnixVsTCP:           map[string]float64{},
	}
	if s, n := find(rs, tSidecarTCP, 1), find(rs, tNoopTCP, 1); s != nil && n != nil {
		h.P50OverheadAt1Ms = round3(s.LatencyMs.P50 - n.LatencyMs.P50)
	}
	for _, c := range rep.Settings.Clients {
		h.UnixVsTCP[strconv.Itoa(c)] = ratio(tput(rs, tSidecarUnix, c), tput(rs, tSidecarTCP, c))
	}
	noop, sc := find(rs, tNoopTCP, 32), find(rs, tSidecarTCP, 32)
	h.CostAt32 = cost{
		NoopServer: perEvent(noop, "server"), NoopHarness: perEvent(noop, "harness"),
		Sidecar: perEvent(sc, "server"), SidecarHarness: perEvent(sc, "harness"), SidecarRedis: perEvent(sc, "redis"),
		DirectRedis: perEvent(find(rs, tDirect, 32), "redis"),
	}
	h.BestVsNoopAt32 = bestVsNoop(h.CostAt32)
	return h
}

// targetsOf checks the targets against what was measured. A target
// whose measurement was not run (other -clients or -rates) is reported as not
// met, with "not measured".
func targetsOf(rep *report) []targetCheck {
	h := rep.Headline
	var ts []targetCheck
	add := func(target string, measured bool, met bool, format string, args ...any) {
		got := "not measured"
		if measured {
			got = fmt.Sprintf(format, args...)
		}
		ts = append(ts, targetCheck{Target: target, Got: got, Met: measured && met})
	}
	bound := ""
	if h.BestVsNoopAt32 > 0 {
		bound = fmt.Sprintf(" (at most %.2f× possible here: Redis spends %.1f µs per XADD on the same cores; the sidecar %.1f µs per event, the no-op server %.1f µs)",
			h.BestVsNoopAt32, h.CostAt32.redisPerXADD(), h.CostAt32.Sidecar, h.CostAt32.NoopServer)
	}
	add("publish throughput at 32 clients ≥ 0.8× the no-op ceiling", h.SidecarVsNoopAt32 > 0,
		h.SidecarVsNoopAt32 >= 0.8, "%.2f×%s", h.SidecarVsNoopAt32, bound)
	s1 := find(rep.Publish, tSidecarTCP, 1)
	add("p50 at 1 client within 0.1 ms of the no-op", s1 != nil, h.P50OverheadAt1Ms <= 0.1,
		"+%.3f ms", h.P50OverheadAt1Ms)

	unixOK := true
	var parts []string
	for _, c := range rep.Settings.Clients {
		if r := h.UnixVsTCP[strconv.Itoa(c)]; r > 0 {
			unixOK = unixOK && r >= 1
			parts = append(parts, fmt.Sprintf("%.2f× at %d", r, c))
		}
	}
	add("unix socket throughput ≥ TCP", len(parts) > 0, unixOK, "%s clients", strings.Join(parts, ", "))

	e5 := findE2E(rep.E2E, 5000)
	add("end-to-end p99 < 10 ms at 5k events/s", e5 != nil, e5 != nil && e5.LatencyMs.P99 < 10 && e5.Received == e5.Sent,
		"%.2f ms (%d of %d received)", p99Of(e5), receivedOf(e5), sentOf(e5))

	idle, idleApp := rep.Idle["sidecar"].RSSMaxMB, rep.Idle["sidecarWithApp"].RSSMaxMB
	add("RSS < 20 MB idle", idle > 0, max(idle, idleApp) < 20,
		"%.1f MB publish-only, %.1f MB with --app-url (private: %.1f and %.1f MB; the rest is the executable's pages)",
		idle, idleApp, rep.Idle["sidecar"].AnonMaxMB, rep.Idle["sidecarWithApp"].AnonMaxMB)
	e20 := findE2E(rep.E2E, 20000)
	add("RSS < 60 MB at 20k events/s", e20 != nil, e20 != nil && e20.Sidecar.RSSMaxMB < 60,
		"%.1f MB (at %.0f events/s achieved)", rssOf(e20), achievedOf(e20))
	st := rep.StartToReady
	add("exec → ready < 200 ms", len(st.RunsMs) > 0, st.MedianMs < 200,
		"median %.1f ms (max %.1f, %.1f with --app-url)", st.MedianMs, st.MaxMs, st.WithAppMs)
	tenantsTargets(rep.Tenants, add)
	return ts
}

func findE2E(rs []*e2eResult, rate int) *e2eResult {
	for _, r := range rs {
		if r.Rate == rate {
			return r
		}
	}
	return nil
}

func p99Of(r *e2eResult) float64 {
	if r == nil {
		return 0
	}
	return r.LatencyMs.P99
}

func receivedOf(r *e2eResult) int64 {
	if r == nil {
		return 0
	}
	return r.Received
}

func sentOf(r *e2eResult) int64 {
	if r == nil {
		return 0
	}
	return r.Sent
}

func rssOf(r *e2eResult) float64 {
	if r == nil {
		return 0
	}
	return r.Sidecar.RSSMaxMB
}

func achievedOf(r *e2eResult) float64 {
	if r == nil {
		return 0
	}
	return r.AchievedRate
}

// plotSeries turns the publish results into the plot's lines.
func plotSeries(rs []*loadResult) []series {
	var out []series
	for _, l := range []struct {
		target, name string
		color        uint32
	}{
		{tSidecarTCP, "sidecar TCP", 0x1f77b4},
		{tSidecarUnix, "sidecar unix", 0x2ca02c},
		{tNoopTCP, "no-op TCP (ceiling)", 0x7f7f7f},
		{tNoopUnix, "no-op unix", 0xff7f0e},
		{tDirect, "direct go-redis XADD", 0xd62728},
	} {
		s := series{name: l.name, color: l.color}
		for _, r := range rs {
			if r.Target == l.target {
				s.clients = append(s.clients, r.Clients)
				s.tput = append(s.tput, r.EventsPerSec)
				s.p99 = append(s.p99, r.LatencyMs.P99)
			}
		}
		if len(s.clients) > 0 {
			out = append(out, s)
		}
	}
	return out
}

func plotTitle(rep *report) string {
	t := fmt.Sprintf("hyvve sidecar publish, %d B events, %d CPUs, %s per point", rep.Settings.EventBytes, rep.Machine.CPUs, rep.Settings.Duration)
	if rep.Settings.Smoke {
		t += " (smoke)"
	}
	return t
}

func machineInfo(ctx context.Context, rdb *redis.Client) machine {
	m := machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if v := infoField(strings.ReplaceAll(string(b), "\t", ""), "model name"); v != "" {
			m.CPUModel = strings.TrimSpace(v)
		}
	}
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		m.Redis = infoField(info, "redis_version")
	}
	return m
}
