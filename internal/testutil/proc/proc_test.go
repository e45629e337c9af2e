package proc

import (
	"strings"
	"testing"
	"time"
)

func TestRunner_runs_kills_and_keeps_the_output_across_runs(t *testing.T) {
	var r Runner
	if r.Running() {
		t.Fatal("Running before Start: got true, want false")
	}
	exited, err := r.Start("/bin/sh", []string{"-c", "echo first; exec sleep 30"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.Out.String(), "first") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !r.Running() {
		t.Fatal("Running after Start: got false, want true")
	}
	if err := r.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	default:
		t.Fatal("exited is open after Kill returned")
	}
	if r.Running() {
		t.Error("Running after Kill: got true, want false")
	}
	if err := r.Kill(time.Second); err != nil {
		t.Errorf("Kill with nothing running: got %v, want nil", err)
	}

	n := r.Out.Len()
	exited, err = r.Start("/bin/sh", []string{"-c", "echo second"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("a process that exits by itself: exited not closed")
	}
	if got := r.Out.Since(n); got != "second\n" {
		t.Errorf("output of the second run: got %q, want %q", got, "second\n")
	}
	if got := r.Out.String(); got != "first\nsecond\n" {
		t.Errorf("output of both runs: got %q, want %q", got, "first\nsecond\n")
	}
	if r.Running() {
		t.Error("Running after the process exited: got true, want false")
	}
	if err := r.Kill(time.Second); err != nil {
		t.Errorf("Kill of a process that exited by itself: got %v, want nil", err)
	}
}

func TestRunner_Start_reports_a_missing_binary(t *testing.T) {
	var r Runner
	if _, err := r.Start("/nonexistent/redis-server", nil, t.TempDir()); err == nil || !strings.Contains(err.Error(), "start redis-server") {
		t.Errorf("got %v, want an error naming the binary", err)
	}
}
