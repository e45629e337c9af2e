package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestEventBody_is_valid_json_of_the_asked_size(t *testing.T) {
	for _, size := range []int{128, 1024, 4096} {
		b := eventBody(size)
		if len(b) != size {
			t.Errorf("len(eventBody(%d)) = %d, want %d", size, len(b), size)
		}
		var ev struct {
			Type     string          `json:"type"`
			TenantID string          `json:"tenantId"`
			Data     json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("eventBody(%d) is not JSON: %v", size, err)
		}
		if ev.Type != "bench.event" || ev.TenantID != "acme" {
			t.Errorf("eventBody type, tenant = %q, %q, want bench.event, acme", ev.Type, ev.TenantID)
		}
		if got := eventData(b); got != string(ev.Data) {
			t.Errorf("eventData = %.40q…, want the data object %.40q…", got, ev.Data)
		}
	}
}

func TestBatchBody_holds_n_events(t *testing.T) {
	for _, n := range []int{1, 100} {
		var b struct{ Events []json.RawMessage }
		if err := json.Unmarshal(batchBody(eventBody(256), n), &b); err != nil {
			t.Fatalf("batchBody(%d) is not JSON: %v", n, err)
		}
		if len(b.Events) != n {
			t.Errorf("batchBody(%d) holds %d events, want %d", n, len(b.Events), n)
		}
	}
}

func TestE2EBody_carries_tenant_run_and_send_time(t *testing.T) {
	b := e2eBody(nil, "t00042", 3, 123456789*time.Nanosecond, 1024)
	if len(b) != 1024 {
		t.Errorf("len = %d, want 1024", len(b))
	}
	var ev struct{ TenantID string }
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	if ev.TenantID != "t00042" {
		t.Errorf("tenantId = %q, want t00042", ev.TenantID)
	}
	run, ok := intField(b, `"run":`)
	if !ok || run != 3 {
		t.Errorf("run = %d, %v, want 3, true", run, ok)
	}
	sent, ok := intField(b, `"sent":`)
	if !ok || sent != 123456789 {
		t.Errorf("sent = %d, %v, want 123456789, true", sent, ok)
	}
	if _, ok := intField([]byte(`{"data":{}}`), `"sent":`); ok {
		t.Errorf("intField of a body without the key: ok = true, want false")
	}
}

func TestClosedLoop_counts_only_the_measured_window(t *testing.T) {
	var calls atomic.Int64
	newOp := func() op {
		return func(context.Context) error {
			n := calls.Add(1)
			time.Sleep(time.Millisecond)
			if n%10 == 0 {
				return errors.New("every tenth fails")
			}
			return nil
		}
	}
	h, ok, errs, first, err := closedLoop(context.Background(), 4, newOp, 50*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ok == 0 || errs == 0 || first != "every tenth fails" {
		t.Errorf("ok, errors, first = %d, %d, %q; want both > 0 and the op's error", ok, errs, first)
	}
	if total := uint64(calls.Load()); ok+errs >= total {
		t.Errorf("counted %d of %d calls, want fewer: the warm-up's are not counted", ok+errs, total)
	}
	if h.n != ok {
		t.Errorf("histogram holds %d samples, want %d (the successes)", h.n, ok)
	}
	if p50 := h.quantile(0.5); p50 < time.Millisecond {
		t.Errorf("p50 = %v, want ≥ 1ms (each op sleeps 1ms)", p50)
	}
}

func TestClosedLoop_stops_when_ctx_ends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	newOp := func() op { return func(context.Context) error { time.Sleep(time.Millisecond); return nil } }
	_, _, _, _, err := closedLoop(ctx, 2, newOp, 0, time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %v, want soon after ctx ended", d)
	}
}
