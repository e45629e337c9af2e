package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/relay"
)

// fetchWait is how long Fetch waits for messages when none are ready.
const fetchWait = 250 * time.Millisecond

// Headers a dead letter carries beyond the original message's (SPEC §4);
// the same names as the Redis store's dead-letter fields.
const (
	dlqHeaderOriginalStreamID = "originalStreamId"
	dlqHeaderGroup            = "group"
	dlqHeaderAttempts         = "attempts"
	dlqHeaderLastError        = "lastError"
	dlqHeaderFailedAt         = "failedAt"
)

// maxLastError bounds the lastError header of a dead letter, in bytes.
const maxLastError = 2048

// Fetch implements relay.Subscriber: up to limit messages of this sidecar's
// consumer group. It takes what is ready without waiting; when nothing is,
// it waits up to fetchWait (less when ctx ends sooner) for the first message
// and returns it at once. It never holds a message back to fill a batch: a
// held message's ack wait (the first retry step, 200 ms in tests) would pass
// and the server would hand it out again. It returns (nil, nil) when none
// came. Safe for use by one goroutine at a time.
//
// A message's Attempt is its delivery count: redeliveries after a Retry
// (NakWithDelay) or after the ack wait (the holder died) count up. LastError
// is always empty: JetStream does not keep why an attempt failed.
func (s *Store) Fetch(ctx context.Context, limit int) ([]*relay.Message, error) {
	if s.opts.Group == "" {
		return nil, errors.New("jsstore: Fetch on a store without a consumer group")
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fetch: %w", classify(err))
	}
	if !s.nc.IsConnected() {
		// A pull request would wait in the reconnect buffer and come back
		// empty; the caller should know the broker is away.
		return nil, fmt.Errorf("fetch: %w: not connected to NATS (%v)", relay.ErrUnavailable, s.nc.Status())
	}
	out, err := s.pull(ctx, func() (jetstream.MessageBatch, error) { return s.cons.FetchNoWait(max(1, limit)) })
	if err != nil || len(out) > 0 {
		return out, err
	}
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	return s.pull(ctx, func() (jetstream.MessageBatch, error) { return s.cons.Fetch(1, jetstream.FetchContext(fctx)) })
}

// pull runs one pull request and collects its messages. The server ending a
// request without messages (no messages, request timeout, other requests
// pending) is not an error.
func (s *Store) pull(ctx context.Context, fetch func() (jetstream.MessageBatch, error)) ([]*relay.Message, error) {
	batch, err := fetch()
	if err != nil {
		s.lost(err)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("fetch: %w", classify(err))
	}
	// The channel is closed when the pull request is done. Messages that
	// arrive after that are not lost: they are delivered again after the
	// ack wait.
	var out []*relay.Message
	for msg := range batch.Messages() {
		out = append(out, s.message(msg))
	}
	if len(out) > 0 {
		return out, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("fetch: %w", classify(ctx.Err()))
	}
	// The wait's deadline may pass before the server's "request expired"
	// answer arrives: that is just an empty fetch.
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, jetstream.ErrNoMessages) && !isRequestEnded(err) {
		s.lost(err)
		return nil, fmt.Errorf("fetch: %w", classify(err))
	}
	return nil, nil
}

// isRequestEnded reports the server's answers that end a pull request
// without messages and without a fault: 408 (the request expired, or other
// requests of the group were pending first) and a leadership change.
func isRequestEnded(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrConsumerLeadershipChanged)
}

// message turns a delivered JetStream message into a relay.Message. One that
// is not an event (missing attributes, data not an object, its tenantId not
// that of its subject) has Err set and no Event.
func (s *Store) message(msg jetstream.Msg) *relay.Message {
	subject := msg.Subject()
	m := &relay.Message{Stream: subject, Tenant: s.names.tenantOf(subject), Attempt: 1, Ref: msg}
	md, err := msg.Metadata()
	if err != nil {
		m.Err = fmt.Errorf("message on %s: %w", subject, err)
		return m
	}
	m.StreamID = strconv.FormatUint(md.Sequence.Stream, 10)
	m.Attempt = int(md.NumDelivered)
	ev, err := decodeEvent(msg.Headers(), msg.Data())
	switch {
	case err != nil:
		m.Err = err
	case ev.TenantID != m.Tenant:
		// Only a client other than the sidecar can write this: delivering it
		// would hand one tenant's stream an event of another.
		m.Err = fmt.Errorf("message on %s holds an event of tenant %q", subject, ev.TenantID)
	default:
		m.Event = ev
	}
	return m
}

// jsMsg is the JetStream message behind m.
func jsMsg(m *relay.Message) (jetstream.Msg, error) {
	jm, ok := m.Ref.(jetstream.Msg)
	if !ok || jm == nil {
		return nil, fmt.Errorf("jsstore: message %s %s was not fetched from JetStream (Ref is %T)", m.Stream, m.StreamID, m.Ref)
	}
	return jm, nil
}

// Ack implements relay.Subscriber. Each ack is sent without waiting for the
// server's confirmation: an ack that is lost (the connection broke) leaves the
// message pending, and it is delivered again after the ack wait
// (at-least-once). It returns the first error. Safe for concurrent use.
func (s *Store) Ack(ctx context.Context, msgs ...*relay.Message) error {
	var first error
	for _, m := range msgs {
		jm, err := jsMsg(m)
		if err == nil {
			err = jm.Ack()
		}
		if err != nil && first == nil {
			first = fmt.Errorf("ack %s %s: %w", m.Stream, m.StreamID, classify(err))
		}
	}
	return first
}

// Retry implements relay.Failures: a negative acknowledgement with a delay
// until notBefore (none when it has passed), so the group's next delivery of
// the message, to any of its consumers, happens no sooner. The server keeps
// the delay with the consumer's state, so it survives a restart. lastError
// is not kept (JetStream has no place for it). Safe for concurrent use.
func (s *Store) Retry(ctx context.Context, m *relay.Message, notBefore time.Time, lastError string) error {
	jm, err := jsMsg(m)
	if err == nil {
		err = jm.NakWithDelay(max(0, time.Until(notBefore)))
	}
	if err != nil {
		return fmt.Errorf("record failed attempt %s %s: %w", m.Stream, m.StreamID, classify(err))
	}
	return nil
}

// DeadLetter implements relay.Failures: it writes the message to its
// tenant's dead-letter subject (awaiting the stream's ack), then acknowledges
// the original and waits for the server to confirm. Safe for concurrent use.
//
// JetStream cannot do both in one atomic step, so a crash in between leaves
// the original pending: it is delivered again and dead-lettered again, and
// the dead letter's Nats-Msg-Id "dl:<group>:<sequence>" makes the stream keep
// the first copy only. The server's answer to an ack is the same whether or
// not the message was still pending, so DeadLetter reports false (and writes
// nothing) when the group's ack floor shows the message acknowledged, and
// false when the dead-letter stream already held it (written by an earlier
// attempt, or by another consumer that got the same message after the ack
// wait); otherwise true.
func (s *Store) DeadLetter(ctx context.Context, m *relay.Message, attempts int, lastError string) (bool, error) {
	if s.cons == nil {
		return false, errors.New("jsstore: DeadLetter on a store without a consumer group")
	}
	jm, err := jsMsg(m)
	if err != nil {
		return false, err
	}
	md, err := jm.Metadata()
	if err != nil {
		return false, fmt.Errorf("dead-letter %s: %w", m.Stream, err)
	}
	seq := md.Sequence.Stream
	info, err := s.cons.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("dead-letter %s %d: consumer info: %w", m.Stream, seq, classify(err))
	}
	if seq <= info.AckFloor.Stream {
		return false, nil
	}
	written, err := s.writeDeadLetter(ctx, m, jm, seq, attempts, lastError)
	if err != nil {
		return false, err
	}
	if err := jm.DoubleAck(ctx); err != nil {
		return false, fmt.Errorf("dead-letter %s %d: ack: %w", m.Stream, seq, classify(err))
	}
	return written, nil
}

// writeDeadLetter writes the dead letter of jm (stream sequence seq) and
// reports whether it was new (not a duplicate of one written before).
func (s *Store) writeDeadLetter(ctx context.Context, m *relay.Message, jm jetstream.Msg, seq uint64, attempts int, lastError string) (bool, error) {
	orig := jm.Headers()
	h := make(nats.Header, len(orig)+6)
	for k, v := range orig {
		// The original's own JetStream headers (its Nats-Msg-Id, expected
		// stream …) would steer the dead letter's publish.
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			continue
		}
		h[k] = v
	}
	sseq := strconv.FormatUint(seq, 10)
	h[dlqHeaderOriginalStreamID] = []string{sseq}
	h[dlqHeaderGroup] = []string{s.opts.Group}
	h[dlqHeaderAttempts] = []string{strconv.Itoa(attempts)}
	h[dlqHeaderLastError] = []string{headerSafe(lastError, maxLastError)}
	h[dlqHeaderFailedAt] = []string{time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	h[jetstream.MsgIDHeader] = []string{"dl:" + s.opts.Group + ":" + sseq}
	subject := s.names.dlqSubject(m.Tenant)
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: jm.Data()})
	if err != nil {
		return false, fmt.Errorf("dead-letter %s %d to %s: %w", m.Stream, seq, subject, classify(err))
	}
	return !ack.Duplicate, nil
}

// headerSafe is s cut to at most n bytes (at a character boundary) with every
// control character (CR and LF included) replaced by a space: a NATS header
// value cannot hold line breaks.
func headerSafe(s string, n int) string {
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}
