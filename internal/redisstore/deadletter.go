package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
)

// Fields a dead-letter entry carries beyond the original event's (SPEC §4).
const (
	fieldOriginalStreamID = "originalStreamId"
	fieldGroup            = "group"
	fieldAttempts         = "attempts"
	fieldLastError        = "lastError"
	fieldFailedAt         = "failedAt"
)

// deadLetterScript moves one pending entry to the tenant's dead-letter stream
// and acknowledges it, atomically; it also drops the entry's retry state. An
// entry the group no longer holds pending (acked, or dead-lettered by another
// consumer a moment ago) is left alone, so racing consumers write one dead
// letter, not two. All keys share the tenant's hash slot.
//
// KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] retry-state hash;
// ARGV[1] group, ARGV[2] entry id, ARGV[3] MINID of the dead-letter stream,
// ARGV[4] retry-state field, ARGV[5..] dead-letter entry fields and values.
var deadLetterScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', unpack(ARGV, 5))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[4])
return 1
`)

// DeadLetter writes m to its tenant's dead-letter stream with why it failed
// and acknowledges it, in one atomic step. It reports false when the entry was
// no longer pending for the group (nothing written).
func (s *Store) DeadLetter(ctx context.Context, m *relay.Message, attempts int, lastError string) (bool, error) {
	tenant := m.Tenant
	args := make([]any, 0, 40)
	args = append(args, s.opts.Group, m.StreamID, minID(time.Now(), s.opts.DLQRetention), s.retryField(m.StreamID))
	if m.Event != nil {
		args = m.Event.AppendValues(args)
	} else {
		// An entry that could not be decoded keeps what can be said of it.
		args = append(args, "undecodable", "true")
	}
	args = append(args,
		fieldOriginalStreamID, m.StreamID,
		fieldGroup, s.opts.Group,
		fieldAttempts, strconv.Itoa(attempts),
		fieldLastError, truncate(lastError, 2048),
		fieldFailedAt, time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	)
	keys := []string{s.keys.stream(tenant), s.keys.dlq(tenant), s.keys.retry(tenant)}
	n, err := deadLetterScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("dead-letter %s %s: %w", keys[0], m.StreamID, classify(err))
	}
	return n == 1, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// retryField is the field of the retry-state hash for one of this group's entries.
func (s *Store) retryField(streamID string) string { return s.opts.Group + " " + streamID }
