package redisstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// RouteLibraryLog sends the go-redis client's own log lines (dial failures,
// twice a second while Redis is down; pool notices) to log at debug level,
// as JSON like every other line, instead of plain text on stderr. The store
// reports broker errors itself (/readyz, warnings). go-redis keeps one
// process-wide logger: call this once, at start.
func RouteLibraryLog(log *slog.Logger) { redis.SetLogger(libLogger{log}) }

type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
