package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
)

// publishTimeout bounds a Publish whose ctx has no deadline, so that a
// server that never answers cannot hold the caller forever.
const publishTimeout = 10 * time.Second

// Publish implements relay.Publisher. It blocks until the server acknowledged
// every request or ctx ends; res[i] is then filled for reqs[i] (len(res) must
// equal len(reqs)). Safe for concurrent use.
//
// Every request is sent at once with an asynchronous publish and the acks are
// awaited afterwards: a batch costs one round trip, not one per event.
// Concurrent calls share the Store's connection and the JetStream context's
// one reply subscription (acks are matched by reply subject), so no goroutine
// is started per call or event; when the context's limit of acks in flight
// is reached, a publish waits for a free slot (backpressure) as long as ctx
// allows. Without a deadline in ctx, Publish gives up after publishTimeout.
//
// With an IdempotencyKey the message carries Nats-Msg-Id "<tenant>:<key>": the
// events stream keeps the first message for a key within its duplicate window
// and acknowledges a later one as a duplicate of the first, which is read
// back for its ids. A request whose ack did not arrive in time fails with
// relay.ErrUnavailable; it may still be written, as with every broker, and an
// Idempotency-Key makes its retry safe.
func (s *Store) Publish(ctx context.Context, reqs []relay.PublishRequest, res []relay.PublishResult) {
	if err := s.waitReady(ctx); err != nil {
		failAll(res, err)
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}

	var buf [16]jetstream.PubAckFuture
	futs := buf[:0]
	if len(reqs) > len(buf) {
		futs = make([]jetstream.PubAckFuture, 0, len(reqs))
	}
	for i, r := range reqs {
		// The tenant becomes a subject token: '.', '*', '>' or a space in it
		// would write elsewhere (the local API has validated it already).
		if err := event.ValidateTenantID(r.Event.TenantID); err != nil {
			res[i] = relay.PublishResult{Err: err}
			futs = append(futs, nil)
			continue
		}
		subject := s.names.subject(r.Event.TenantID)
		m := newMsg(subject, r.Event)
		if r.IdempotencyKey != "" {
			m.Header[jetstream.MsgIDHeader] = []string{r.Event.TenantID + ":" + r.IdempotencyKey}
		}
		f, err := s.publishAsync(ctx, m)
		res[i] = relay.PublishResult{Stream: subject}
		if err != nil {
			res[i].Err = fmt.Errorf("publish %s: %w", subject, classify(err))
		}
		futs = append(futs, f) // nil after an error
	}

	var written int64
	var dups []int
	for i, f := range futs {
		if f == nil {
			continue
		}
		r := reqs[i]
		out := relay.PublishResult{Stream: res[i].Stream, EventID: r.Event.ID, CorrelationID: r.Event.CorrelationID}
		ack, err := awaitAck(ctx, f)
		switch {
		case err != nil:
			s.lost(err)
			out.Err = fmt.Errorf("publish %s: %w", out.Stream, classify(err))
		case ack.Duplicate:
			out.StreamID = strconv.FormatUint(ack.Sequence, 10)
			out.Duplicate = true
			dups = append(dups, i)
		default:
			out.StreamID = strconv.FormatUint(ack.Sequence, 10)
			written++
		}
		res[i] = out
	}
	s.published.Add(written)

	for _, i := range dups {
		s.readFirst(ctx, &res[i])
	}
}

// publishAsync sends m without waiting for its ack. When the acks in flight
// are at the JetStream context's limit (4000, shared by all callers) it
// waits for a free slot until ctx ends (the first try waits at most the
// library's default stall wait, 200 ms).
func (s *Store) publishAsync(ctx context.Context, m *nats.Msg) (jetstream.PubAckFuture, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.js.PublishMsgAsync(m)
	for errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		deadline, _ := ctx.Deadline() // Publish always sets one
		wait := time.Until(deadline)
		if wait <= 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		f, err = s.js.PublishMsgAsync(m, jetstream.WithStallWait(wait))
	}
	return f, err
}

// awaitAck waits for the server's answer to one asynchronous publish. An
// answer that has already arrived wins over an ended ctx.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	ok, fail := f.Ok(), f.Err()
	select {
	case ack := <-ok:
		return ack, nil
	case err := <-fail:
		return nil, err
	default:
	}
	select {
	case ack := <-ok:
		return ack, nil
	case err := <-fail:
		return nil, err
	case <-ctx.Done():
		return nil, fmt.Errorf("no acknowledgement: %w", ctx.Err())
	}
}

// readFirst fills the ids of a duplicate's result from the first message
// published with its idempotency key, whose sequence the duplicate's ack
// named (out.StreamID).
func (s *Store) readFirst(ctx context.Context, out *relay.PublishResult) {
	seq, _ := strconv.ParseUint(out.StreamID, 10, 64)
	m, err := s.events.GetMsg(ctx, seq)
	if err != nil {
		out.Err = fmt.Errorf("idempotent publish %s: read the first message %d: %w", out.Stream, seq, classify(err))
		return
	}
	out.EventID, out.CorrelationID = headerValue(m.Header, "id"), headerValue(m.Header, "correlationId")
}

// headerValue is the first value of header k, read as written (not
// canonicalised).
func headerValue(h nats.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func failAll(res []relay.PublishResult, err error) {
	for i := range res {
		res[i] = relay.PublishResult{Err: err}
	}
}
