package main

import (
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name, stat string
		want       time.Duration
		wantErr    bool
	}{
		{"plain", "1234 (sidecar) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 8 0 100 0 0",
			3800 * time.Millisecond, false},
		{"command with spaces and parentheses", "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0",
			100 * time.Millisecond, false},
		{"truncated", "42 (x) R 1 2 3", 0, true},
		{"no command", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatCPU error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStatCPU = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStatusMem(t *testing.T) {
	tests := []struct {
		name, status string
		want         mem
		wantErr      bool
	}{
		{"present", "Name:\tsidecar\nVmPeak:\t  900000 kB\nVmRSS:\t   14236 kB\nRssAnon:\t 5000 kB\nRssFile:\t 9236 kB\n", mem{rss: 14236 << 10, anon: 5000 << 10}, false},
		{"no RssAnon (old kernel)", "VmRSS:\t   14236 kB\n", mem{rss: 14236 << 10}, false},
		{"absent (zombie)", "Name:\tsidecar\nState:\tZ (zombie)\n", mem{}, true},
		{"malformed", "VmRSS:\t  many kB\n", mem{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusMem([]byte(tt.status))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatusMem error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStatusMem = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWatch_reports_own_cpu_while_busy(t *testing.T) {
	w := startWatch(0)
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	got := w.stop()[0]
	// One goroutine spun the whole window; 100 Hz ticks make it coarse.
	if got.CPUCores < 0.5 {
		t.Errorf("cpuCores of a busy loop = %v, want ≥ 0.5", got.CPUCores)
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, stat string
		want       time.Duration
		wantErr    bool
	}{
		// user nice system idle iowait irq softirq steal: idle and iowait are not busy.
		{"busy excludes idle and iowait", "cpu  100 10 50 9000 40 5 3 2 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 1700 * time.Millisecond, false},
		{"not the cpu line", "intr 1 2 3\n", 0, true},
		{"short", "cpu 1 2 3\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseProcStat error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseProcStat = %v, want %v", got, tt.want)
			}
		})
	}
}
