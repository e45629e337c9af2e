package redisstore

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// A pipeline whose connection could not be prepared (wrong password) must
// fail every command, not leave them looking successful with empty values.
func TestExecPipe_puts_a_connection_error_on_every_command(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client(t).Do(ctx, "ACL", "SETUSER", "app", "on", ">right", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "wrong"})
	defer c.Close()
	pipe := c.Pipeline()
	add := pipe.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []any{"k", "v"}})
	n := pipe.Incr(ctx, "n")
	err := execPipe(ctx, pipe)
	if err == nil {
		t.Fatal("execPipe with a wrong password: got nil, want an error")
	}
	if add.Err() == nil || n.Err() == nil {
		t.Errorf("commands after a failed connection: XADD %q, %v; INCR %d, %v; want both to carry the error",
			add.Val(), add.Err(), n.Val(), n.Err())
	}

	// Errors of the commands themselves stay theirs.
	ok := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "right"})
	defer ok.Close()
	if err := ok.Set(ctx, "str", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pipe = ok.Pipeline()
	bad := pipe.XAdd(ctx, &redis.XAddArgs{Stream: "str", Values: []any{"k", "v"}}) // WRONGTYPE
	good := pipe.Incr(ctx, "n")
	if err := execPipe(ctx, pipe); err == nil || bad.Err() == nil || good.Err() != nil || good.Val() != 1 {
		t.Errorf("mixed pipeline: exec %v, XADD %v, INCR %d %v; want the WRONGTYPE on XADD only and INCR = 1",
			err, bad.Err(), good.Val(), good.Err())
	}
}
