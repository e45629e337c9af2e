package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// execPipe runs pipe and returns Exec's error. go-redis does not put every
// error on the pipeline's commands: one met while preparing the connection
// (a wrong password answered to AUTH, NOPERM on SELECT) fails Exec while
// every command reports no error and an empty value — a publish would then
// look written. When Exec failed and no command carries an error, each
// command gets Exec's error, so code that reads per-command errors sees it.
func execPipe(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return err // the commands carry their own errors
		}
	}
	for _, c := range cmds {
		c.SetErr(err)
	}
	return err
}
