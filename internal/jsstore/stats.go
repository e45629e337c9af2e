package jsstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/localapi"
)

// Stats bounds and timings.
const (
	defaultStatsLimit = 100  // tenants per page when the query names none (as redisstore)
	maxStatsLimit     = 1000 // most tenants per page (as redisstore)
	statsMinutes      = 60   // PublishedPerMinute covers the last hour

	// statsFlushInterval is how often runBackground adds s.published to the
	// stats bucket; statsFlushTimeout bounds one flush, finalFlushTimeout
	// the last one, after ctx ended.
	statsFlushInterval = time.Second
	statsFlushTimeout  = 5 * time.Second
	finalFlushTimeout  = time.Second

	// maxCASAttempts bounds the compare-and-set loop of one flush; past it,
	// the count waits for the next flush.
	maxCASAttempts = 16
)

// runBackground flushes the published count to the stats bucket every
// statsFlushInterval until ctx ends, then once more (best effort, within
// finalFlushTimeout). It blocks until ctx ends and always returns nil: a
// failed flush keeps the count for the next one.
func (s *Store) runBackground(ctx context.Context) error {
	t := time.NewTicker(statsFlushInterval)
	defer t.Stop()
	failing := false // log a failure once, not every second
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
			defer cancel()
			if err := s.flushPublished(fctx, time.Now()); err != nil {
				s.log.Warn("could not save the last published-events count to the stats bucket", "error", err)
			}
			return nil
		case now := <-t.C:
			fctx, cancel := context.WithTimeout(ctx, statsFlushTimeout)
			err := s.flushPublished(fctx, now)
			cancel()
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				s.log.Warn("could not save the published-events count to the stats bucket; keeping it for the next try",
					"error", err)
				failing = true
			case err == nil && failing:
				s.log.Info("saving the published-events count to the stats bucket again")
				failing = false
			}
		}
	}
}

// flushPublished moves s.published into the counter of now's minute. On
// failure the count is put back for the next flush (a flush whose answer
// was lost may so be counted twice: these are statistics). Events are
// counted in the minute of the flush, up to statsFlushInterval late.
func (s *Store) flushPublished(ctx context.Context, now time.Time) error {
	n := s.published.Swap(0)
	if n == 0 {
		return nil
	}
	if err := s.addPublished(ctx, now, n); err != nil {
		s.published.Add(n)
		return err
	}
	return nil
}

// statsKey is the stats bucket key of now's minute: "pub.<unix minute>".
func statsKey(now time.Time) string {
	return "pub." + strconv.FormatInt(now.Unix()/60, 10)
}

// addPublished adds n to the counter of now's minute. Several sidecars may
// share the bucket (--nats-url), so the counter is read and then written
// only if nobody wrote it since (compare-and-set on the key's revision),
// starting over after a lost race, at most maxCASAttempts times.
func (s *Store) addPublished(ctx context.Context, now time.Time, n int64) error {
	key := statsKey(now)
	for range maxCASAttempts {
		e, err := s.stats.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.stats.Create(ctx, key, strconv.AppendInt(nil, n, 10))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another sidecar created it first
			}
		case err == nil:
			// A value that is not a number (written by hand) starts over.
			cur, _ := strconv.ParseInt(string(e.Value()), 10, 64)
			_, err = s.stats.Update(ctx, key, strconv.AppendInt(nil, cur+n, 10), e.Revision())
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue // another sidecar wrote it since our read
			}
		}
		if err != nil {
			return fmt.Errorf("kv %s %s: %w", s.names.statsBucket(), key, classify(err))
		}
		return nil
	}
	return fmt.Errorf("kv %s %s: lost the compare-and-set race %d times in a row", s.names.statsBucket(), key, maxCASAttempts)
}

// BrokerStats returns one page of tenants (the subjects of the events and
// dead-letter streams, sorted, after cursor), every consumer group on the
// events stream, and the cluster-wide published count per minute of the
// last hour. limit ≤ 0 means 100; more than 1000 is cut to 1000. A
// malformed cursor gives an *event.Error naming "cursor".
//
// A tenant is listed while its events or dead letters are kept. JetStream
// keeps one consumer per group for every tenant, so TenantStats.Groups is
// empty and the groups are in BrokerStats.Groups, where:
//   - Consumers is the number of pull requests waiting on the consumer: the
//     sidecars of the group that are idle, waiting for events (a sidecar
//     busy with a full batch is not counted). JetStream keeps no list of
//     the sidecars that share a durable consumer.
//   - Pending is delivered and not acknowledged (NumAckPending): in flight
//     to an app or waiting for a retry.
//   - Lag is the events not yet delivered (NumPending); LastDeliveredID
//     is the stream sequence last delivered.
//
// Cost: two stream infos (every tenant's subject), one consumer listing
// and 60 key reads (concurrent). It blocks until the store is ready or ctx
// ends (relay.ErrUnavailable). Safe for concurrent use.
func (s *Store) BrokerStats(ctx context.Context, limit int, cursor string) (localapi.BrokerStats, error) {
	return s.brokerStats(ctx, limit, cursor, time.Now())
}

func (s *Store) brokerStats(ctx context.Context, limit int, cursor string, now time.Time) (localapi.BrokerStats, error) {
	if limit <= 0 {
		limit = defaultStatsLimit
	}
	limit = min(limit, maxStatsLimit)
	if cursor != "" {
		if err := event.ValidateTenantID(cursor); err != nil {
			return localapi.BrokerStats{}, &event.Error{Code: event.CodeInvalidField, Field: "cursor",
				Message: fmt.Sprintf("cursor %.64q is not one this API returned", cursor)}
		}
	}
	if err := s.waitReady(ctx); err != nil {
		return localapi.BrokerStats{}, err
	}
	all, err := s.tenantStats(ctx)
	if err != nil {
		return localapi.BrokerStats{}, err
	}
	out := localapi.BrokerStats{TenantCount: len(all)}
	start, _ := slices.BinarySearchFunc(all, cursor, func(t localapi.TenantStats, c string) int {
		return cmp.Compare(t.Tenant, c)
	})
	if cursor != "" && start < len(all) && all[start].Tenant == cursor {
		start++ // the cursor is the last tenant of the previous page
	}
	out.Tenants = all[start:min(start+limit, len(all))]
	if start+limit < len(all) {
		out.NextCursor = out.Tenants[len(out.Tenants)-1].Tenant
	}
	if out.Groups, err = s.groupStats(ctx); err != nil {
		return localapi.BrokerStats{}, err
	}
	if out.PublishedPerMinute, err = s.publishedPerMinute(ctx, now); err != nil {
		return localapi.BrokerStats{}, err
	}
	return out, nil
}

// tenantStats returns every tenant with events or dead letters, sorted,
// with their message counts (Groups empty, not nil).
func (s *Store) tenantStats(ctx context.Context) ([]localapi.TenantStats, error) {
	events, err := s.subjectCounts(ctx, s.events, s.names.allEvents(), s.names.subject)
	if err != nil {
		return nil, err
	}
	dlq, err := s.subjectCounts(ctx, s.dlq, s.names.allDLQ(), s.names.dlqSubject)
	if err != nil {
		return nil, err
	}
	out := make([]localapi.TenantStats, 0, len(events)+len(dlq))
	for t, n := range events {
		out = append(out, localapi.TenantStats{Tenant: t, StreamLength: n, DLQLength: dlq[t], Groups: []localapi.GroupStats{}})
	}
	for t, n := range dlq {
		if _, ok := events[t]; !ok {
			out = append(out, localapi.TenantStats{Tenant: t, DLQLength: n, Groups: []localapi.GroupStats{}})
		}
	}
	slices.SortFunc(out, func(a, b localapi.TenantStats) int { return cmp.Compare(a.Tenant, b.Tenant) })
	return out, nil
}

// subjectCounts returns the message count per tenant of a stream whose
// subjects are subject(tenant); subjects that are not (written by another
// client) are left out.
func (s *Store) subjectCounts(ctx context.Context, st jetstream.Stream, filter string,
	subject func(string) string) (map[string]int64, error) {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream info %s: %w", filter, classify(err))
	}
	out := make(map[string]int64, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		t := s.names.tenantOf(subj)
		if subject(t) != subj || event.ValidateTenantID(t) != nil {
			continue
		}
		out[t] = int64(n)
	}
	return out, nil
}

// groupStats returns every consumer group's durable consumer on the events
// stream (those with the group in their metadata), sorted by group.
func (s *Store) groupStats(ctx context.Context) ([]localapi.GroupStats, error) {
	l := s.events.ListConsumers(ctx)
	out := []localapi.GroupStats{}
	// The lister's goroutine blocks until every info is read: drain it.
	for ci := range l.Info() {
		g := ci.Config.Metadata[groupMetadataKey]
		if g == "" {
			continue
		}
		out = append(out, localapi.GroupStats{
			Group:           g,
			Consumers:       int64(ci.NumWaiting),
			Pending:         int64(ci.NumAckPending),
			Lag:             int64(ci.NumPending),
			LastDeliveredID: strconv.FormatUint(ci.Delivered.Stream, 10),
		})
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", s.names.eventsStream(), classify(err))
	}
	slices.SortFunc(out, func(a, b localapi.GroupStats) int { return cmp.Compare(a.Group, b.Group) })
	return out, nil
}

// publishedPerMinute reads the last statsMinutes counters, oldest first;
// the last is now's (partial) minute. The reads run concurrently.
func (s *Store) publishedPerMinute(ctx context.Context, now time.Time) ([]localapi.MinuteCount, error) {
	first := now.UTC().Truncate(time.Minute).Add(-(statsMinutes - 1) * time.Minute)
	out := make([]localapi.MinuteCount, statsMinutes)
	errs := make([]error, statsMinutes)
	var wg sync.WaitGroup
	for i := range out {
		out[i].Minute = first.Add(time.Duration(i) * time.Minute)
		wg.Go(func() {
			key := statsKey(out[i].Minute)
			e, err := s.stats.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
			case err != nil:
				errs[i] = fmt.Errorf("kv %s %s: %w", s.names.statsBucket(), key, classify(err))
			default:
				out[i].Count, _ = strconv.ParseInt(string(e.Value()), 10, 64)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
