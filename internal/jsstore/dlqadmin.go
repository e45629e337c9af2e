package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/subscription"
)

// The admin API on dead letters (SPEC §7). A dead letter's id is its
// sequence in the dead-letter stream, in decimal.

// Bounds of one ListDeadLetters call (the page sizes are relay's).
const (
	// maxDLQScan is the most sequences one call reads (GetMsg), matching
	// the filters or not, deleted or not.
	maxDLQScan = 512
	// allTenants is the cursor scope of a listing of every tenant.
	allTenants = "*"
)

// ListDeadLetters returns one page of dead letters, newest first (by
// dead-letter sequence). With an empty (or "*") q.Tenant it lists every
// tenant's dead letters in one sequence, newest first across tenants (the
// Redis store lists them one tenant after the other). q.Type is a
// subscription pattern matched against the event type.
//
// It reads the stream one sequence at a time downwards from the newest
// dead letter in scope (a tenant's, or any), at most maxDLQScan sequences
// per call, so a page may hold fewer than q.Limit items, even none, while
// NextCursor is set: a filter that matches little, or one tenant's dead
// letters among many others', never makes a call slow. Continue with
// NextCursor until it is empty.
//
// Malformed tenant, type or cursor give an *event.Error naming the field
// ("tenantId", "type", "cursor"). It blocks until the store is ready or ctx
// ends (relay.ErrUnavailable). Safe for concurrent use.
func (s *Store) ListDeadLetters(ctx context.Context, q relay.DLQQuery) (relay.DLQPage, error) {
	if err := q.Normalize(); err != nil {
		return relay.DLQPage{}, err
	}
	cur, err := parseCursor(q.Cursor)
	if err != nil {
		return relay.DLQPage{}, err
	}
	scope, subject := allTenants, s.names.allDLQ()
	if q.Tenant != "" {
		scope, subject = q.Tenant, s.names.dlqSubject(q.Tenant)
	}
	if cur != nil && cur.scope != scope {
		return relay.DLQPage{}, relay.BadCursor("it belongs to a listing of another tenant")
	}
	limit := q.Limit
	if err := s.waitReady(ctx); err != nil {
		return relay.DLQPage{}, err
	}

	page := relay.DLQPage{Items: []relay.DeadLetter{}}
	// The scope's newest and oldest dead letters bound the walk: no read is
	// spent above the newest, and the walk ends at the oldest.
	newest, err := s.dlq.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return page, nil
	}
	if err != nil {
		return relay.DLQPage{}, fmt.Errorf("last dead letter on %s: %w", subject, classify(err))
	}
	oldest, err := s.dlq.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return page, nil // deleted in between
	}
	if err != nil {
		return relay.DLQPage{}, fmt.Errorf("first dead letter on %s: %w", subject, classify(err))
	}
	lo := oldest.Sequence
	// before is the lowest sequence read so far: every sequence from it up
	// has been looked at (the cursor carries it).
	before := newest.Sequence + 1
	if cur != nil {
		before = min(before, cur.before)
	}
	for scanned := 0; before > lo; {
		if len(page.Items) == limit || scanned == maxDLQScan {
			// lo, the oldest in scope, is still to come: there is more.
			page.NextCursor = encodeCursor(scope, before)
			return page, nil
		}
		seq := before - 1
		scanned++
		m, err := s.dlq.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			before = seq // deleted (retried, or expired)
			continue
		}
		if err != nil {
			return relay.DLQPage{}, fmt.Errorf("dead letter %d on %s: %w", seq, s.names.dlqStream(), classify(err))
		}
		before = seq
		tenant := s.names.tenantOf(m.Subject)
		if m.Subject != s.names.dlqSubject(tenant) || (q.Tenant != "" && tenant != q.Tenant) ||
			event.ValidateTenantID(tenant) != nil {
			continue // another tenant's, or not written by a sidecar
		}
		if q.Type != "" && !subscription.Match(q.Type, headerValue(m.Header, "type")) {
			continue
		}
		page.Items = append(page.Items, decodeDeadLetter(tenant, m))
	}
	return page, nil
}

// cursor is a decoded ListDeadLetters cursor: continue in scope (a tenant,
// or allTenants) with the sequences below before.
type cursor struct {
	scope  string
	before uint64
}

// encodeCursor is the opaque cursor (relay.EncodeCursor) of scope and before.
func encodeCursor(scope string, before uint64) string {
	return relay.EncodeCursor(scope, strconv.FormatUint(before, 10))
}

func parseCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	scope, before, err := relay.DecodeCursor(s)
	if err != nil {
		return nil, err
	}
	n, ok := parseSeq(before)
	if !ok || (scope != allTenants && event.ValidateTenantID(scope) != nil) {
		return nil, relay.BadCursor("malformed")
	}
	return &cursor{scope: scope, before: n}, nil
}

// parseSeq parses a stream sequence: decimal digits only (no sign, no
// spaces), 1 to 2^64-1.
func parseSeq(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// checkEntry validates a tenant and a dead-letter id and returns the id's
// sequence.
func checkEntry(tenant, id string) (uint64, error) {
	if err := event.ValidateTenantID(tenant); err != nil {
		return 0, err
	}
	seq, ok := parseSeq(id)
	if !ok {
		return 0, &event.Error{Code: event.CodeInvalidField, Field: "entryId",
			Message: fmt.Sprintf("entry id %.64q is not a dead-letter sequence number such as 42", id)}
	}
	return seq, nil
}

// decodeDeadLetter reads one dead-letter message. A message whose event
// cannot be decoded (dead-lettered because it was undecodable, or written by
// hand) has a nil Event; fields it lacks are zero.
func decodeDeadLetter(tenant string, m *jetstream.RawStreamMsg) relay.DeadLetter {
	dl := relay.DeadLetter{
		Tenant:           tenant,
		ID:               strconv.FormatUint(m.Sequence, 10),
		OriginalStreamID: headerValue(m.Header, dlqHeaderOriginalStreamID),
		Group:            headerValue(m.Header, dlqHeaderGroup),
		LastError:        headerValue(m.Header, dlqHeaderLastError),
	}
	dl.Attempts, _ = strconv.Atoi(headerValue(m.Header, dlqHeaderAttempts))
	dl.FailedAt, _ = time.Parse(time.RFC3339Nano, headerValue(m.Header, dlqHeaderFailedAt))
	if ev, err := decodeEvent(m.Header, m.Data); err == nil {
		dl.Event = ev
	}
	return dl
}

// getDeadLetter reads the dead letter seq of tenant; relay.ErrNotFound
// when there is none (or it is another tenant's).
func (s *Store) getDeadLetter(ctx context.Context, tenant string, seq uint64) (*jetstream.RawStreamMsg, error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	m, err := s.dlq.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != s.names.dlqSubject(tenant)) {
		return nil, fmt.Errorf("dead letter %d of tenant %s: %w", seq, tenant, relay.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d on %s: %w", seq, s.names.dlqStream(), classify(err))
	}
	return m, nil
}

// GetDeadLetter returns one dead letter of the tenant; relay.ErrNotFound when
// it does not exist. Safe for concurrent use.
func (s *Store) GetDeadLetter(ctx context.Context, tenant, id string) (*relay.DeadLetter, error) {
	seq, err := checkEntry(tenant, id)
	if err != nil {
		return nil, err
	}
	m, err := s.getDeadLetter(ctx, tenant, seq)
	if err != nil {
		return nil, err
	}
	dl := decodeDeadLetter(tenant, m)
	return &dl, nil
}

// RetryDeadLetter re-publishes the dead letter's event to its tenant's
// subject for the group that failed it only (targetGroup = that group; the
// event id and every other attribute unchanged) and removes the dead
// letter. It returns the new message; relay.ErrNotFound when the dead
// letter does not exist (or a concurrent retry or delete took it first),
// and relay.ErrNotRetryable when it holds no event that can be re-published.
//
// JetStream cannot write one stream and delete from another atomically:
// the publish carries Nats-Msg-Id "dlqretry:<tenant>:<dead-letter id>:<its
// store time in ns>", so of concurrent retries (or a retry repeated after a
// failure between the two steps) the events stream stores one, within its
// duplicate window (min(24h, --retention)).
// The one whose publish was stored deletes the dead letter; the others get
// a duplicate answer, delete it too (it is already gone or about to be)
// and report relay.ErrNotFound. When the delete fails after the publish
// was stored, the error says so and a repeated call removes the dead
// letter without publishing again. Safe for concurrent use.
func (s *Store) RetryDeadLetter(ctx context.Context, tenant, id string) (relay.PublishResult, error) {
	seq, err := checkEntry(tenant, id)
	if err != nil {
		return relay.PublishResult{}, err
	}
	m, err := s.getDeadLetter(ctx, tenant, seq)
	if err != nil {
		return relay.PublishResult{}, err
	}
	dl := decodeDeadLetter(tenant, m)
	ev, err := relay.RetryEvent(&dl)
	if err != nil {
		return relay.PublishResult{}, err
	}
	subject := s.names.subject(tenant)
	msg := newMsg(subject, ev)
	// The dead letter's store time makes the id unique even if the stream
	// was recreated (sequences restart) within the duplicate window.
	msg.Header[jetstream.MsgIDHeader] = []string{"dlqretry:" + tenant + ":" + id + ":" + strconv.FormatInt(m.Time.UnixNano(), 10)}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(s.names.eventsStream()))
	if err != nil {
		return relay.PublishResult{}, fmt.Errorf("retry dead letter %s of tenant %s: publish to %s: %w", id, tenant, subject, classify(err))
	}
	if !ack.Duplicate {
		s.published.Add(1)
	}
	if err := s.deleteDeadLetter(ctx, tenant, seq); err != nil && !errors.Is(err, relay.ErrNotFound) {
		if ack.Duplicate {
			return relay.PublishResult{}, err
		}
		return relay.PublishResult{}, fmt.Errorf("retry dead letter %s of tenant %s: re-published as %d, "+
			"but not removed (retry again to remove it): %w", id, tenant, ack.Sequence, err)
	}
	if ack.Duplicate {
		return relay.PublishResult{}, fmt.Errorf("dead letter %s of tenant %s: %w", id, tenant, relay.ErrNotFound)
	}
	return relay.PublishResult{Stream: subject, StreamID: strconv.FormatUint(ack.Sequence, 10),
		EventID: ev.ID, CorrelationID: ev.CorrelationID}, nil
}

// DeleteDeadLetter removes one dead letter; relay.ErrNotFound when it does not
// exist. Safe for concurrent use.
func (s *Store) DeleteDeadLetter(ctx context.Context, tenant, id string) error {
	seq, err := checkEntry(tenant, id)
	if err != nil {
		return err
	}
	if _, err := s.getDeadLetter(ctx, tenant, seq); err != nil {
		return err
	}
	return s.deleteDeadLetter(ctx, tenant, seq)
}

// deleteDeadLetter deletes the dead letter seq, known to be tenant's;
// relay.ErrNotFound when it is gone already.
func (s *Store) deleteDeadLetter(ctx context.Context, tenant string, seq uint64) error {
	err := s.dlq.DeleteMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		// The server says why only in text: look whether it is gone.
		if _, gerr := s.dlq.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("dead letter %d of tenant %s: %w", seq, tenant, relay.ErrNotFound)
		}
	}
	if err != nil {
		return fmt.Errorf("delete dead letter %d on %s: %w", seq, s.names.dlqStream(), classify(err))
	}
	return nil
}
