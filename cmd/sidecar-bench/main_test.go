package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*options) string
	}{
		{name: "defaults", check: func(o *options) string {
			if o.duration != 5*time.Second || len(o.clients) != 3 || o.clients[1] != 32 || o.batchSize != 100 || o.eventBytes != 1024 {
				return "want 5s, clients 1,32,256, batch 100, 1024 B"
			}
			return ""
		}},
		{name: "smoke shortens everything", args: []string{"-smoke", "-duration", "1m"}, check: func(o *options) string {
			if o.duration != 300*time.Millisecond || o.starts != 2 || o.tenants != 100 || o.tenantsIdle != 300*time.Millisecond {
				return "want 300ms, 2 starts, 100 tenants idle for 300ms"
			}
			return ""
		}},
		{name: "only some sections", args: []string{"-only", "tenants,e2e"}, check: func(o *options) string {
			if !o.runs("tenants") || !o.runs("e2e") || o.runs("publish") || o.runs("start") {
				return "want tenants and e2e only"
			}
			return ""
		}},
		{name: "no tenants skips them", args: []string{"-tenants", "0"}, check: func(o *options) string {
			if o.runs("tenants") || !o.runs("publish") {
				return "want every section but tenants"
			}
			return ""
		}},
		{name: "tenants need the Redis store", args: []string{"-store", "embedded"}, check: func(o *options) string {
			if o.runs("tenants") {
				return "want tenants skipped"
			}
			return ""
		}},
		{name: "unknown section", args: []string{"-only", "publish,nope"}, wantErr: "-only"},
		{name: "negative tenants", args: []string{"-tenants", "-1"}, wantErr: "-tenants"},
		{name: "bad client list", args: []string{"-clients", "1,x"}, wantErr: "-clients"},
		{name: "zero clients", args: []string{"-clients", "0"}, wantErr: "-clients"},
		{name: "batch over the sidecar's limit", args: []string{"-batch-size", "1001"}, wantErr: "-batch-size"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want one naming %s", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if msg := tt.check(o); msg != "" {
				t.Errorf("parseFlags(%q) = %+v: %s", tt.args, o, msg)
			}
		})
	}
}

func TestTargets_are_judged_from_the_measurements(t *testing.T) {
	pub := func(target string, clients int, evps, p50 float64) *loadResult {
		return &loadResult{Target: target, Clients: clients, EventsPerSec: evps, LatencyMs: latencyMs{P50: p50}}
	}
	rep := &report{
		Settings: settings{Clients: []int{1, 32}},
		Publish: []*loadResult{
			pub(tNoopTCP, 1, 20000, 0.040), pub(tSidecarTCP, 1, 5000, 0.120), pub(tSidecarUnix, 1, 5200, 0.110),
			pub(tNoopTCP, 32, 30000, 0.8), pub(tSidecarTCP, 32, 27000, 1.0), pub(tSidecarUnix, 32, 26000, 1.1),
			pub(tDirect, 32, 20000, 1.2),
		},
		E2E: []*e2eResult{
			{Rate: 5000, Sent: 100, Received: 100, LatencyMs: latencyMs{P99: 3}},
			{Rate: 20000, Sent: 100, Received: 90, Sidecar: usage{RSSMaxMB: 70}},
		},
		Idle:         map[string]usage{"sidecar": {RSSMaxMB: 14}, "sidecarWithApp": {RSSMaxMB: 15}},
		StartToReady: startToReady{RunsMs: []float64{40, 50, 300}, MedianMs: 50, MaxMs: 300},
		Tenants: &tenantsResult{Tenants: 10_000, IdleSidecar: usage{CPUCores: 0.012}, Sent: 250, Received: 250,
			LatencyMs: latencyMs{P99: 62}},
	}
	rep.Headline = headlineOf(rep)
	if got, want := rep.Headline.SidecarVsNoopAt32, 0.9; got != want {
		t.Errorf("sidecar/no-op at 32 = %v, want %v", got, want)
	}
	if got, want := rep.Headline.SidecarVsDirectAt32, 1.35; got != want {
		t.Errorf("sidecar/direct at 32 = %v, want %v", got, want)
	}
	if got, want := rep.Headline.P50OverheadAt1Ms, 0.08; got != want {
		t.Errorf("p50 overhead at 1 = %v, want %v", got, want)
	}
	want := map[string]bool{
		"publish throughput at 32 clients ≥ 0.8× the no-op ceiling": true,
		"p50 at 1 client within 0.1 ms of the no-op":                true,
		"unix socket throughput ≥ TCP":                              false, // 0.96× at 32
		"end-to-end p99 < 10 ms at 5k events/s":                     true,
		"RSS < 20 MB idle":                                          true,
		"RSS < 60 MB at 20k events/s":                               false,
		"exec → ready < 200 ms":                                     true, // the median
		"with 10,000 tenant streams: idle CPU < 5% of a core":       true,
		"with 10,000 tenant streams: new-event p99 < 50 ms":         false,
	}
	ts := targetsOf(rep)
	if len(ts) != len(want) {
		t.Fatalf("got %d targets, want %d", len(ts), len(want))
	}
	for _, tc := range ts {
		w, ok := want[tc.Target]
		if !ok {
			t.Errorf("unexpected target %q", tc.Target)
			continue
		}
		if tc.Met != w {
			t.Errorf("target %q (got %s): met = %v, want %v", tc.Target, tc.Got, tc.Met, w)
		}
	}
}

func TestTenantTargets_need_10000_streams(t *testing.T) {
	tests := []struct {
		name     string
		tenants  *tenantsResult
		measured bool
		met      bool
	}{
		{"not run", nil, false, false},
		{"10,000 streams within both", &tenantsResult{Tenants: 10_000, IdleSidecar: usage{CPUCores: 0.04}, Sent: 9, Received: 9, LatencyMs: latencyMs{P99: 49}}, true, true},
		{"fewer streams", &tenantsResult{Tenants: 100, IdleSidecar: usage{CPUCores: 0.01}, Sent: 9, Received: 9, LatencyMs: latencyMs{P99: 2}}, true, false},
		{"an event missing", &tenantsResult{Tenants: 10_000, IdleSidecar: usage{CPUCores: 0.06}, Sent: 9, Received: 8, LatencyMs: latencyMs{P99: 2}}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []targetCheck
			tenantsTargets(tt.tenants, func(target string, measured, met bool, format string, args ...any) {
				got = append(got, targetCheck{Target: target, Met: measured && met, Got: fmt.Sprint(measured)})
			})
			if len(got) != 2 {
				t.Fatalf("got %d targets, want 2", len(got))
			}
			for _, tc := range got {
				if tc.Got != fmt.Sprint(tt.measured) || tc.Met != tt.met {
					t.Errorf("%s: measured %s, met %v; want %v, %v", tc.Target, tc.Got, tc.Met, tt.measured, tt.met)
				}
			}
		})
	}
}

func TestTargets_without_measurements_are_not_met(t *testing.T) {
	rep := &report{Settings: settings{Clients: []int{4}}, Idle: map[string]usage{}}
	rep.Headline = headlineOf(rep)
	for _, tc := range targetsOf(rep) {
		if tc.Met || tc.Got != "not measured" {
			t.Errorf("target %q: met %v, got %q; want not met, \"not measured\"", tc.Target, tc.Met, tc.Got)
		}
	}
}

func TestHeadline_CPU_budget_bounds_the_ratio(t *testing.T) {
	with := func(target string, evps float64, procs map[string]usage) *loadResult {
		return &loadResult{Target: target, Clients: 32, EventsPerSec: evps, Procs: procs}
	}
	rep := &report{
		Settings: settings{Clients: []int{32}},
		Publish: []*loadResult{
			// The no-op server and the load generator: 20 µs each per request.
			with(tNoopTCP, 40000, map[string]usage{"server": {CPUCores: 0.8}, "harness": {CPUCores: 0.8}}),
			// The sidecar: 60 µs; Redis 25 µs per event under it.
			with(tSidecarTCP, 10000, map[string]usage{"server": {CPUCores: 0.6}, "harness": {CPUCores: 0.3}, "redis": {CPUCores: 0.25}}),
			// Direct go-redis: Redis 20 µs per XADD, the lower of the two.
			with(tDirect, 20000, map[string]usage{"harness": {CPUCores: 0.6}, "redis": {CPUCores: 0.4}}),
		},
	}
	rep.Headline = headlineOf(rep)
	want := cost{NoopServer: 20, NoopHarness: 20, Sidecar: 60, SidecarHarness: 30, SidecarRedis: 25, DirectRedis: 20}
	if got := rep.Headline.CostAt32; got != want {
		t.Errorf("cost at 32 = %+v, want %+v", got, want)
	}
	// (20+20) / (20+20+20): even a sidecar as cheap as the no-op server
	// leaves Redis's 20 µs to the same cores.
	if got, want := rep.Headline.BestVsNoopAt32, 0.667; got != want {
		t.Errorf("best possible vs no-op = %v, want %v", got, want)
	}
	got := targetsOf(rep)[0].Got
	if want := "0.25× (at most 0.67× possible here: Redis spends 20.0 µs per XADD"; !strings.HasPrefix(got, want) {
		t.Errorf("throughput target got %q, want it to start with %q", got, want)
	}

	// Without Redis's figures the bound is not claimed.
	rep.Publish = rep.Publish[:1]
	rep.Headline = headlineOf(rep)
	if got := rep.Headline.BestVsNoopAt32; got != 0 {
		t.Errorf("best possible without Redis measured = %v, want 0", got)
	}
}
