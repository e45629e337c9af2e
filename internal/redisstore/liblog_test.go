package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// go-redis's plain-text lines become JSON records at debug level.
func TestLibLogger_writes_JSON_at_debug_level(t *testing.T) {
	var buf bytes.Buffer
	l := libLogger{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Printf(context.Background(), "redis: %s:%d: failed to dial", "pool.go", 770)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "redis: pool.go:770: failed to dial" || rec["component"] != "go-redis" {
		t.Errorf("got %v, want level DEBUG, the formatted message and component go-redis", rec)
	}

	buf.Reset()
	quiet := libLogger{slog.New(slog.NewJSONHandler(&buf, nil))} // info level
	quiet.Printf(context.Background(), "redis: failed to dial")
	if buf.Len() != 0 {
		t.Errorf("at info level: got %q, want nothing", buf.String())
	}
}
