package jsstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// statsTTL keeps each per-minute counter of the stats bucket past the hour
// BrokerStats reads (like redisstore's publishedTTL).
const statsTTL = 2 * time.Hour

// defaultRecordTTL is how long a replay record lives without --retention.
const defaultRecordTTL = 720 * time.Hour

// replayRecordTTL is how long a replay job record outlives its last write:
// --retention, like the events it replayed (redisstore's recordTTL). It is
// the replays bucket's TTL: JetStream ages a KV entry from its last write.
func (s *Store) replayRecordTTL() time.Duration {
	if s.opts.Retention > 0 {
		return s.opts.Retention
	}
	return defaultRecordTTL
}

// setupBuckets creates or updates the replays and stats buckets and keeps
// them in s.replays and s.stats. Setup calls it (again on every attempt)
// before the store becomes ready; nothing reads the fields before that.
func (s *Store) setupBuckets(ctx context.Context, h *handles) error {
	replays, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.names.replaysBucket(),
		Description: "HYVVE replay jobs: job id → record",
		History:     1,
		TTL:         s.replayRecordTTL(),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", s.names.replaysBucket(), err)
	}
	stats, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.names.statsBucket(),
		Description: "HYVVE events published per minute (pub.<unix minute>), all sidecars",
		History:     1,
		TTL:         statsTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", s.names.statsBucket(), err)
	}
	h.replays, h.stats = replays, stats
	return nil
}
