package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hyvve/sidecar/internal/appclient"
	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/metrics"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/subscription"
	"github.com/hyvve/sidecar/internal/tracing"
)

// App is the sidecar's view of its app: where events are pushed and where the
// app declares its subscriptions. *appclient.Client implements it.
type App interface {
	Push(ctx context.Context, d *appclient.Delivery) (appclient.Result, error)
	Subscriptions(ctx context.Context) ([]subscription.Subscription, bool, error)
}

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	Group string
	// Static subscriptions (from the config file) come before the app's own
	// in declaration order.
	Static []subscription.Subscription
	// Concurrency bounds pushes in flight and therefore events held in memory.
	Concurrency int
	// Retry is the retry schedule; its state lives in the broker.
	Retry retry.Policy
	// CloudEvents makes pushes structured CloudEvents 1.0
	// (--push-format cloudevents) instead of the native event JSON.
	CloudEvents bool
	// RefreshInterval is how often the app's subscriptions are fetched again
	// (default 30 s); LoadRetry how often a failed first load is retried
	// (default 1 s).
	RefreshInterval time.Duration
	LoadRetry       time.Duration
	// DrainTimeout bounds how long Run waits for in-flight pushes after its
	// context ends; pushes still running then are cancelled and their entries
	// stay pending in the broker, to be delivered again.
	DrainTimeout time.Duration
	// Tracer, when set, makes a CONSUMER span per delivery attempt (child of
	// the trace context stored with the entry; its traceparent is what the
	// app receives) and a span per dead-lettering (SPEC §8). Nil: no spans,
	// and the stored traceparent is passed to the app unchanged.
	Tracer trace.Tracer
}

// Dispatcher moves events from a Subscriber to the App. Create it with
// NewDispatcher and start it with Run.
type Dispatcher struct {
	cfg     DispatcherConfig
	sub     Inbox
	app     App
	log     *slog.Logger
	metrics *metrics.Metrics

	router  atomic.Pointer[subscription.Router]
	loadErr atomic.Pointer[error] // last failed load before the first success
	// readFail is set while reading events fails: the latest error and when
	// the failures began; nil once a read succeeds (see Ready).
	readFail atomic.Pointer[readFailure]

	// acks, set by readLoop before its first delivery, queues acknowledgements
	// for ackLoop; nil (deliver called outside readLoop) acks synchronously.
	acks chan *Message
}

// readFailure is a run of failed reads: the latest error, and since when.
type readFailure struct {
	err   error
	since time.Time
}

// readFailGrace is how long reading events may fail before the sidecar says
// it is not ready: longer than a blip (a read retried at once), shorter than
// a probe's patience. A Redis user without permission to read the stream
// is ready by every other check but delivers nothing.
const readFailGrace = 2 * time.Second

const (
	// ackQueue bounds the acknowledgements waiting for ackLoop. Each holds
	// only the entry's identity (no event), so the bound is a few tens of KB.
	ackQueue = 1024
	// maxAckBatch bounds the XACKs sent in one pipeline.
	maxAckBatch = 256
)

// NewDispatcher returns a Dispatcher; it validates the static subscriptions.
func NewDispatcher(cfg DispatcherConfig, sub Inbox, app App, m *metrics.Metrics, log *slog.Logger) (*Dispatcher, error) {
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("dispatcher: concurrency must be at least 1, got %d", cfg.Concurrency)
	}
	if len(cfg.Retry.Schedule) == 0 {
		return nil, errors.New("dispatcher: no retry schedule")
	}
	if _, err := subscription.NewRouter(cfg.Static); err != nil {
		return nil, fmt.Errorf("subscriptions in config: %w", err)
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	if cfg.LoadRetry <= 0 {
		cfg.LoadRetry = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.New()
	}
	d := &Dispatcher{cfg: cfg, sub: sub, app: app, log: log, metrics: m}
	notYet := errors.New("subscriptions not loaded yet")
	d.loadErr.Store(&notYet)
	return d, nil
}

// Ready returns nil once the subscriptions are loaded and while reading
// events works (it may have failed for less than readFailGrace), else why
// not. Safe for concurrent use.
func (d *Dispatcher) Ready() error {
	if d.router.Load() == nil {
		return *d.loadErr.Load()
	}
	if f := d.readFail.Load(); f != nil && time.Since(f.since) >= readFailGrace {
		return fmt.Errorf("reading events fails: %w", f.err)
	}
	return nil
}

// readFailed records a failed read; readWorked ends a run of them.
func (d *Dispatcher) readFailed(err error) {
	since := time.Now()
	if f := d.readFail.Load(); f != nil {
		since = f.since
	}
	d.readFail.Store(&readFailure{err: err, since: since})
}

func (d *Dispatcher) readWorked() {
	if d.readFail.Load() != nil {
		d.readFail.Store(nil)
	}
}

// Run loads the subscriptions (retrying until the app answers), then reads and
// delivers events until ctx ends. It then stops reading, waits up to
// DrainTimeout for pushes in flight, and returns nil. No event is read before
// the subscriptions are loaded.
func (d *Dispatcher) Run(ctx context.Context) error {
	for {
		err := d.loadSubscriptions(ctx)
		if err == nil {
			break
		}
		d.loadErr.Store(&err)
		d.log.Warn("subscriptions not loaded; retrying", "error", err, "retry_in", d.cfg.LoadRetry.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.cfg.LoadRetry):
		}
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.refreshLoop(ctx)
	}()
	d.readLoop(ctx)
	wg.Wait()
	return nil
}

func (d *Dispatcher) loadSubscriptions(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	subs, found, err := d.app.Subscriptions(lctx)
	if err != nil {
		return fmt.Errorf("subscriptions not loaded: %w", err)
	}
	all := make([]subscription.Subscription, 0, len(d.cfg.Static)+len(subs))
	all = append(all, d.cfg.Static...)
	all = append(all, subs...)
	r, err := subscription.NewRouter(all)
	if err != nil {
		return fmt.Errorf("subscriptions not loaded: %w", err)
	}
	prev := d.router.Swap(r)
	if prev == nil || !sameSubscriptions(prev.Subscriptions(), all) {
		d.log.Info("subscriptions loaded", "count", len(all), "from_app", len(subs), "app_declares", found, "subscriptions", all)
	}
	return nil
}

func sameSubscriptions(a, b []subscription.Subscription) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// refreshLoop fetches the app's subscriptions every RefreshInterval. A failed
// refresh keeps the previous subscriptions: routing never goes empty because
// the app was briefly unreachable.
func (d *Dispatcher) refreshLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.loadSubscriptions(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("subscription refresh failed; keeping the previous ones", "error", err)
			}
		}
	}
}

// readLoop is the backpressure loop. A slot of the semaphore is one push in
// flight; the loop asks the broker only for as many messages as there are free
// slots, so a slow app stops reading instead of growing memory. On ctx end it
// stops reading and waits for in-flight pushes (bounded by DrainTimeout).
func (d *Dispatcher) readLoop(ctx context.Context) {
	// Pushes run on a context that outlives ctx by DrainTimeout, so that a
	// SIGTERM lets them finish instead of failing them at once.
	pushCtx, cancelPushes := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPushes()

	slots := make(chan struct{}, d.cfg.Concurrency)
	var inflight sync.WaitGroup
	// A push's slot is released as soon as the app has answered; its XACK
	// joins those of concurrent deliveries in ackLoop's next pipeline. An
	// entry whose ack is lost (crash, Redis error) stays pending and is
	// delivered again: at-least-once holds.
	d.acks = make(chan *Message, ackQueue)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		d.ackLoop(ctx, d.acks)
	}()
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)

	for ctx.Err() == nil {
		// Take one slot (blocking), then every other free one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := 1
	grab:
		for n < d.cfg.Concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break grab
			}
		}

		msgs, err := d.sub.Fetch(ctx, n)
		for i := len(msgs); i < n; i++ {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d.metrics.BrokerErrors.WithLabelValues("fetch").Inc()
			d.readFailed(err)
			wait := backoff.next()
			d.log.Warn("reading events failed", "group", d.cfg.Group, "error", err, "retry_in", wait.String())
			sleep(ctx, wait)
			continue
		}
		backoff.reset()
		d.readWorked()
		for _, m := range msgs {
			inflight.Add(1)
			go func(m *Message) {
				defer func() { <-slots; inflight.Done() }()
				d.deliver(pushCtx, m)
			}(m)
		}
	}

	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.DrainTimeout):
		d.log.Warn("shutdown timeout: handing back pushes still in flight; they stay pending and will be delivered again",
			"group", d.cfg.Group, "drain_timeout", d.cfg.DrainTimeout.String())
		cancelPushes()
		<-done
	}
	// Every delivery has queued its ack: flush them before returning.
	close(d.acks)
	<-acked
}

// ackLoop acknowledges queued messages until acks is closed and drained: it
// takes one, then every other one already queued (up to maxAckBatch), and
// sends them in one pipeline. At low load an ack costs one round trip with
// no added delay; under load concurrent deliveries share round trips.
func (d *Dispatcher) ackLoop(ctx context.Context, acks <-chan *Message) {
	batch := make([]*Message, 0, maxAckBatch)
	for m := range acks {
		batch = append(batch[:0], m)
	more:
		for len(batch) < maxAckBatch {
			select {
			case m, ok := <-acks:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		// Bookkeeping in the broker must happen even during shutdown.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := d.sub.Ack(actx, batch...)
		cancel()
		if err != nil {
			// The entries stay pending and will be delivered again.
			d.metrics.BrokerErrors.WithLabelValues("ack").Inc()
			d.log.Warn("ack failed; the events will be delivered again",
				append(d.msgAttrs(actx, batch[0], "", 0, err), "events", len(batch))...)
		}
	}
}

// deliver pushes one message to the subscription its type routes to and
// settles it by the app's answer (SPEC §3): 2xx acknowledges; a 4xx other
// than 408/429 dead-letters at once; anything else is retried on the schedule
// and dead-lettered after the last attempt. Messages that target another
// group or match no subscription are acknowledged without a push.
func (d *Dispatcher) deliver(ctx context.Context, m *Message) {
	// Bookkeeping in the broker must happen even when the push itself was
	// cancelled by shutdown.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()

	if m.Err != nil {
		d.deadLetter(bctx, m, m.Attempt, "undecodable entry: "+m.Err.Error(), "undecodable")
		return
	}
	if d.cfg.Tracer != nil {
		// Spans of work done without a push (dead-lettering an entry whose
		// holder died) are children of the publish.
		bctx = tracing.ContextWithRemote(bctx, m.Event.TraceParent, m.Event.TraceState)
	}
	if m.Attempt > d.cfg.Retry.MaxAttempts() {
		// Its holder died during the last attempt: that attempt failed too.
		last := m.LastError
		if last == "" {
			last = fmt.Sprintf("attempt %d did not finish: the sidecar holding it stopped", m.Attempt-1)
		}
		d.deadLetter(bctx, m, m.Attempt-1, last, "exhausted")
		return
	}
	ev := m.Event
	sub, ok := d.route(ev.Type)
	if !ok || (ev.TargetGroup != "" && ev.TargetGroup != d.cfg.Group) {
		d.metrics.Deliveries.WithLabelValues("skipped").Inc()
		d.ack(bctx, m)
		return
	}

	var span trace.Span
	traceParent, traceState := ev.TraceParent, ev.TraceState
	if d.cfg.Tracer != nil {
		ctx, span = d.startAttempt(ctx, m, sub.Path)
		defer span.End()
		// The bookkeeping below (dead-lettering) is part of this attempt.
		bctx = trace.ContextWithSpan(bctx, span)
		traceParent, traceState = tracing.Headers(span.SpanContext())
	}

	buf := make([]byte, 0, 384+len(ev.Data))
	body, contentType := ev.AppendJSON(buf), ""
	if d.cfg.CloudEvents {
		body, contentType = ev.AppendCloudEvent(buf), event.CloudEventsMediaType
	}
	dl := appclient.Delivery{
		Path:          sub.Path,
		EventID:       ev.ID,
		EventType:     ev.Type,
		TenantID:      ev.TenantID,
		CorrelationID: ev.CorrelationID,
		TraceParent:   traceParent,
		TraceState:    traceState,
		Attempt:       m.Attempt,
		Replay:        ev.Replay,
		Body:          body,
		ContentType:   contentType,
	}
	d.metrics.InFlight.Inc()
	start := time.Now()
	res, err := d.app.Push(ctx, &dl)
	d.metrics.InFlight.Dec()
	d.metrics.DeliveryDuration.Observe(time.Since(start).Seconds())

	switch retry.Classify(res.Status, err) {
	case retry.Ack:
		d.metrics.Deliveries.WithLabelValues("ok").Inc()
		endAttempt(span, tracing.OutcomeAck, res.Status, nil)
		d.ack(bctx, m)
		return
	case retry.Reject:
		d.metrics.Deliveries.WithLabelValues("app_error").Inc()
		reason := fmt.Sprintf("app rejected the event: %d %s", res.Status, res.Body)
		endAttempt(span, tracing.OutcomeDeadLetter, res.Status, errors.New(reason))
		d.deadLetter(bctx, m, m.Attempt, reason, "rejected")
		return
	}
	var lastErr string
	if err != nil {
		d.metrics.Deliveries.WithLabelValues("unreachable").Inc()
		lastErr = err.Error()
	} else {
		d.metrics.Deliveries.WithLabelValues("app_error").Inc()
		lastErr = fmt.Sprintf("app answered %d %s", res.Status, res.Body)
	}
	wait, again := d.cfg.Retry.Next(m.Attempt, res.Status, res.RetryAfter)
	if !again {
		endAttempt(span, tracing.OutcomeDeadLetter, res.Status, errors.New(lastErr))
		d.deadLetter(bctx, m, m.Attempt, lastErr, "exhausted")
		return
	}
	next := time.Now().Add(wait)
	endAttempt(span, tracing.OutcomeRetry, res.Status, errors.New(lastErr))
	if span != nil {
		span.SetAttributes(tracing.NextAttemptAtKey.String(next.UTC().Format(time.RFC3339Nano)))
	}
	if rerr := d.sub.Retry(bctx, m, next, lastErr); rerr != nil {
		// The entry stays pending all the same; it is retried one step after
		// it was read instead of after it failed.
		d.metrics.BrokerErrors.WithLabelValues("retry").Inc()
		d.log.Warn("recording the failed attempt failed", d.msgAttrs(bctx, m, sub.Path, 0, rerr)...)
	}
	d.metrics.Retries.Inc()
	d.log.Warn("push failed; will retry",
		append(d.msgAttrs(bctx, m, sub.Path, res.Status, errors.New(lastErr)), "next_attempt_at", next.UTC().Format(time.RFC3339Nano))...)
}

// startAttempt starts the CONSUMER span of one delivery attempt of m. Its
// parent is the trace context stored with the entry (the publisher's
// PRODUCER span), so the attempts of one event are siblings. An event that
// was re-published by the sidecar (a retried dead letter, a replay: it names
// a target group or is a replay) starts a new trace instead, linked to the
// stored context: a delivery hours or days later does not extend the
// original trace.
func (d *Dispatcher) startAttempt(ctx context.Context, m *Message, path string) (context.Context, trace.Span) {
	ev := m.Event
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracing.Attributes(tracing.OpProcess, ev, m.Stream)...),
		trace.WithAttributes(
			semconv.MessagingConsumerGroupName(d.cfg.Group),
			tracing.AttemptKey.Int(m.Attempt),
			tracing.PathKey.String(path),
		),
	}
	if ev.Replay || ev.TargetGroup != "" {
		if sc := tracing.SpanContext(ev.TraceParent, ev.TraceState); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{Attributes: []attribute.KeyValue{tracing.LinkKey.String(relinkReason(ev.Replay))}, SpanContext: sc}))
		}
		opts = append(opts, trace.WithNewRoot())
	} else {
		ctx = tracing.ContextWithRemote(ctx, ev.TraceParent, ev.TraceState)
	}
	return d.cfg.Tracer.Start(ctx, tracing.SpanName(tracing.OpProcess, m.Stream), opts...)
}

func relinkReason(replay bool) string {
	if replay {
		return "replay"
	}
	return "dead_letter_retry"
}

// endAttempt records an attempt's outcome on its span (nil: tracing off):
// the app's HTTP status when it answered, and an error status unless the
// event was acknowledged.
func endAttempt(span trace.Span, outcome string, status int, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(tracing.OutcomeKey.String(outcome))
	if status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if err != nil {
		errType := "app_error"
		if status == 0 {
			errType = "unreachable"
		} else if status >= 400 && status < 600 {
			errType = strconv.Itoa(status)
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, err.Error())
	}
}

// deadLetter moves m to the dead letters; a failure to do so leaves it
// pending, to be tried again by the reclaim of any consumer.
//
// With a tracer it is a span of its own (messaging operation "settle"),
// child of the attempt that failed last or, without a push, of the
// publish.
func (d *Dispatcher) deadLetter(ctx context.Context, m *Message, attempts int, lastErr, reason string) {
	var span trace.Span
	if d.cfg.Tracer != nil {
		ctx, span = d.cfg.Tracer.Start(ctx, tracing.SpanName(tracing.OpDeadLetter, m.Stream),
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(tracing.Attributes(tracing.OpDeadLetter, m.Event, m.Stream)...),
			trace.WithAttributes(
				semconv.MessagingConsumerGroupName(d.cfg.Group),
				tracing.DeadLetterReasonKey.String(reason),
				tracing.AttemptsKey.Int(attempts),
			))
		defer span.End()
	}
	moved, err := d.sub.DeadLetter(ctx, m, attempts, lastErr)
	switch {
	case err != nil:
		d.metrics.BrokerErrors.WithLabelValues("dead_letter").Inc()
		d.log.Error("dead-lettering failed; the entry stays pending", d.msgAttrs(ctx, m, "", 0, err)...)
		if span != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	case moved:
		d.metrics.DeadLetters.WithLabelValues(reason).Inc()
		d.log.Error("event dead-lettered", append(d.msgAttrs(ctx, m, "", 0, errors.New(lastErr)), "reason", reason, "attempts", attempts)...)
	}
}

func (d *Dispatcher) route(typ string) (subscription.Subscription, bool) {
	r := d.router.Load()
	if r == nil {
		return subscription.Subscription{}, false
	}
	return r.Route(typ)
}

// ack acknowledges m: through ackLoop when readLoop runs (blocking only
// while the bounded queue is full), else at once.
func (d *Dispatcher) ack(ctx context.Context, m *Message) {
	if d.acks != nil {
		// Only what Ack needs: the event's data is not held in the queue.
		d.acks <- &Message{Tenant: m.Tenant, Stream: m.Stream, StreamID: m.StreamID, Attempt: m.Attempt, Ref: m.Ref}
		return
	}
	if err := d.sub.Ack(ctx, m); err != nil {
		// The entry stays pending and will be delivered again: at-least-once.
		d.metrics.BrokerErrors.WithLabelValues("ack").Inc()
		d.log.Warn("ack failed; the event will be delivered again", d.msgAttrs(ctx, m, "", 0, err)...)
	}
}

// msgAttrs are the log attributes of a message, also of one that is not an
// event (undecodable). trace_id is that of the span ctx carries (the
// delivery attempt) when tracing is on, else that of the stored traceparent.
func (d *Dispatcher) msgAttrs(ctx context.Context, m *Message, path string, status int, err error) []any {
	a := []any{"tenant", m.Tenant, "group", d.cfg.Group, "attempt", m.Attempt, "stream_id", m.StreamID}
	if m.Event != nil {
		a = append(a, "event_id", m.Event.ID, "type", m.Event.Type, "correlation_id", m.Event.CorrelationID)
		if id := tracing.LogTraceID(ctx, m.Event.TraceParent); id != "" {
			a = append(a, "trace_id", id)
		}
	}
	if path != "" {
		a = append(a, "path", path)
	}
	if status != 0 {
		a = append(a, "status", status)
	}
	return append(a, "error", err)
}

// backoff doubles a wait from min to max; reset starts over.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
