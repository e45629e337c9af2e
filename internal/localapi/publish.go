package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/schema"
	"github.com/hyvve/sidecar/internal/tracing"
)

// Schemas validates event data against the JSON Schemas of the core platform
// events. *schema.Validator implements it.
type Schemas interface {
	// Validate returns nil, or a *schema.Error naming the first failing field,
	// for a core type; nil for any other type.
	Validate(eventType string, data []byte) error
	// Known reports whether the type has a schema.
	Known(eventType string) bool
}

// bodyFormat is how a published event is encoded.
type bodyFormat int

const (
	formatNative           bodyFormat = iota // application/json: the HYVVE event
	formatCloudEvent                         // application/cloudevents+json: structured CloudEvent
	formatCloudEventBinary                   // ce-* headers, body = data
)

// apiError is an error with the status and SPEC error body it maps to.
type apiError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// errorFor maps every error the publish path can meet to a status and code,
// in one place.
func errorFor(err error) *apiError {
	var ae *apiError
	var ee *event.Error
	var se *schema.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &se):
		return &apiError{Status: fasthttp.StatusUnprocessableEntity, Code: "schema_violation", Field: se.Pointer, Message: se.Message}
	case errors.As(err, &ee):
		return &apiError{Status: fasthttp.StatusBadRequest, Code: ee.Code, Field: ee.Field, Message: ee.Message}
	case errors.Is(err, relay.ErrUnavailable):
		return &apiError{Status: fasthttp.StatusServiceUnavailable, Code: "broker_unavailable", Message: err.Error()}
	default:
		return &apiError{Status: fasthttp.StatusInternalServerError, Code: "internal", Message: err.Error()}
	}
}

func (s *Server) handlePublish(ctx *fasthttp.RequestCtx) {
	format, ok := s.publishFormat(ctx)
	if !ok {
		return
	}
	body, err := s.requestBody(ctx, s.o.MaxEventBytes)
	if err != nil {
		var big *bodyTooLarge
		if errors.As(err, &big) {
			err = &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "event_too_large",
				Message: big.describe("event") + " (--max-event-bytes)"}
		}
		s.reject(ctx, err)
		return
	}
	key, err := idempotencyKey(ctx)
	if err != nil {
		s.reject(ctx, err)
		return
	}
	req := relay.PublishRequest{IdempotencyKey: key}
	if req.Event, err = s.prepare(ctx, body, format); err != nil {
		s.reject(ctx, err)
		return
	}
	var res [1]relay.PublishResult
	s.publish(ctx, []relay.PublishRequest{req}, res[:])
	if res[0].Err != nil {
		s.fail(ctx, res[0].Err)
		return
	}
	if res[0].Duplicate {
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
	}
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendResult(nil, &res[0], req.Event.TenantID))
}

// batchBody is the body of POST /v1/events/batch.
type batchBody struct {
	Events []json.RawMessage `json:"events"`
}

func (s *Server) handleBatch(ctx *fasthttp.RequestCtx) {
	if !s.jsonBody(ctx) {
		return
	}
	body, err := s.requestBody(ctx, s.maxBatchBytes)
	if err != nil {
		var big *bodyTooLarge
		if errors.As(err, &big) {
			err = &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "too_large", Message: big.describe("batch")}
		}
		s.reject(ctx, err)
		return
	}
	var b batchBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.reject(ctx, &apiError{Status: fasthttp.StatusBadRequest, Code: "invalid_json", Field: "events",
			Message: `batch body must be {"events":[…]}: ` + err.Error()})
		return
	}
	switch {
	case len(b.Events) == 0:
		s.reject(ctx, &apiError{Status: fasthttp.StatusBadRequest, Code: "missing_field", Field: "events", Message: "events must hold at least one event"})
		return
	case len(b.Events) > MaxBatchEvents:
		s.reject(ctx, &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "too_many_events", Field: "events",
			Message: fmt.Sprintf("%d events in one batch; the limit is %d", len(b.Events), MaxBatchEvents)})
		return
	}
	key, err := idempotencyKey(ctx)
	if err != nil {
		s.reject(ctx, err)
		return
	}

	// Invalid events get their error; the valid ones are published together.
	errs := make([]*apiError, len(b.Events))
	reqs := make([]relay.PublishRequest, 0, len(b.Events))
	index := make([]int, 0, len(b.Events))
	for i, raw := range b.Events {
		if len(raw) > s.o.MaxEventBytes {
			errs[i] = &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "event_too_large",
				Message: fmt.Sprintf("event is %d bytes; the limit is %d (--max-event-bytes)", len(raw), s.o.MaxEventBytes)}
			continue
		}
		ev, err := s.prepare(ctx, raw, formatNative)
		if err != nil {
			errs[i] = errorFor(err)
			continue
		}
		r := relay.PublishRequest{Event: ev}
		if key != "" {
			// One key per event of the batch, so a retried batch is safe.
			r.IdempotencyKey = key + "#" + strconv.Itoa(i)
		}
		reqs = append(reqs, r)
		index = append(index, i)
	}
	res := make([]relay.PublishResult, len(reqs))
	if len(reqs) > 0 {
		s.publish(ctx, reqs, res)
	}
	unavailable := 0
	for j, r := range res {
		if r.Err != nil {
			errs[index[j]] = errorFor(r.Err)
			if errors.Is(r.Err, relay.ErrUnavailable) {
				unavailable++
			}
		}
	}
	if len(reqs) > 0 && unavailable == len(reqs) {
		s.fail(ctx, res[0].Err)
		return
	}

	out := append(make([]byte, 0, 128*len(b.Events)), `{"results":[`...)
	j := 0
	for i := range b.Events {
		if i > 0 {
			out = append(out, ',')
		}
		if errs[i] != nil {
			out = appendErrorItem(out, errs[i])
		} else {
			out = appendResult(out, &res[j], reqs[j].Event.TenantID)
		}
		if j < len(index) && index[j] == i {
			j++
		}
	}
	out = append(out, "]}"...)
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

// prepare decodes one event, fills what the sidecar supplies and validates it:
// the rules of SPEC §1, then the JSON Schema of a core event (§6). The event
// it returns shares no memory with the request.
func (s *Server) prepare(ctx *fasthttp.RequestCtx, raw []byte, format bodyFormat) (*event.Event, error) {
	ev, err := s.check(ctx, raw, format)
	if err != nil && format != formatNative {
		// A CloudEvent's errors name its attributes: "time", not "timestamp".
		var ee *event.Error
		if errors.As(err, &ee) {
			mapped := *ee
			mapped.Field = event.CloudEventAttribute(ee.Field)
			return nil, &mapped
		}
	}
	return ev, err
}

func (s *Server) check(ctx *fasthttp.RequestCtx, raw []byte, format bodyFormat) (*event.Event, error) {
	var ev *event.Event
	var err error
	switch format {
	case formatCloudEvent:
		ev, err = event.DecodeCloudEvent(raw)
	case formatCloudEventBinary:
		ev, err = event.DecodeCloudEventBinary(func(name string) string { return string(ctx.Request.Header.Peek(name)) }, raw)
	default:
		ev, err = event.Decode(raw)
	}
	if err != nil {
		return nil, err
	}
	// The decoders copy what they keep (Data too), so the event outlives the
	// request: a publish abandoned on timeout may be written after fasthttp
	// has reused the body buffer.
	h := &ctx.Request.Header
	ev.Fill(event.Defaults{
		HeaderTenantID:      string(h.Peek("X-Tenant-Id")),
		HeaderCorrelationID: string(h.Peek("X-Correlation-Id")),
		HeaderUserID:        string(h.Peek("X-User-Id")),
		Tenant:              s.o.DefaultTenant,
		Source:              s.o.Source,
	})
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	if s.o.Schemas != nil {
		if s.o.StrictTypes && !s.o.Schemas.Known(ev.Type) {
			return nil, &apiError{Status: fasthttp.StatusUnprocessableEntity, Code: "unknown_type", Field: "type",
				Message: fmt.Sprintf("type %q has no schema and this sidecar runs with --strict-types", ev.Type)}
		}
		if err := s.o.Schemas.Validate(ev.Type, ev.Data); err != nil {
			return nil, err
		}
	}
	if !s.tenantAllowed(ev.TenantID) {
		return nil, tenantNotAllowed(ev.TenantID)
	}
	if tp := h.Peek("traceparent"); len(tp) > 0 && validTraceParent(tp) {
		ev.TraceParent = string(tp)
		if ts := h.Peek("tracestate"); len(ts) > 0 && len(ts) <= 512 && printable(ts) {
			ev.TraceState = string(ts)
		}
	}
	if n := encodedSize(ev); n > s.o.MaxEventBytes {
		return nil, &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "event_too_large",
			Message: fmt.Sprintf("event is %d bytes with the fields the sidecar fills; the limit is %d (--max-event-bytes)", n, s.o.MaxEventBytes)}
	}
	return ev, nil
}

// encodedSize is an upper bound of the event's JSON size, exact enough for the
// size limit without encoding it.
func encodedSize(ev *event.Event) int {
	n := 128 + len(ev.Data)
	for _, f := range []string{ev.ID, ev.Type, ev.Source, ev.Timestamp, ev.CorrelationID, ev.TenantID, ev.UserID, ev.Version} {
		n += len(f)
	}
	return n
}

func (s *Server) publish(ctx *fasthttp.RequestCtx, reqs []relay.PublishRequest, res []relay.PublishResult) {
	pctx, cancel := context.WithTimeout(context.Background(), s.o.PublishTimeout)
	defer cancel()
	start := time.Now()
	s.pub.Publish(pctx, reqs, res)
	s.o.Metrics.PublishDuration.Observe(time.Since(start).Seconds())
	debug := s.log.Enabled(pctx, slog.LevelDebug)
	failed, firstFailed := 0, -1
	for i := range res {
		switch {
		case res[i].Err == nil && res[i].Duplicate:
			s.o.Metrics.Published.WithLabelValues("duplicate").Inc()
		case res[i].Err == nil:
			s.o.Metrics.Published.WithLabelValues("ok").Inc()
		case errors.Is(res[i].Err, relay.ErrUnavailable):
			s.o.Metrics.Published.WithLabelValues("unavailable").Inc()
		default:
			s.o.Metrics.Published.WithLabelValues("error").Inc()
		}
		switch {
		case res[i].Err != nil:
			if failed++; firstFailed < 0 {
				firstFailed = i
			}
		case debug:
			s.log.Debug("event published", append(publishAttrs(reqs[i].Event),
				"stream", res[i].Stream, "stream_id", res[i].StreamID, "duplicate", res[i].Duplicate)...)
		}
	}
	// One line per call, not per event: a batch of 1000 against a broker
	// that is down is one failure.
	if failed > 0 {
		a := append(publishAttrs(reqs[firstFailed].Event), "error", res[firstFailed].Err)
		if len(reqs) > 1 {
			a = append(a, "failed_in_batch", failed, "batch_size", len(reqs))
		}
		s.log.Warn("publish failed", a...)
	}
}

// publishAttrs are the log attributes of an event being published.
func publishAttrs(ev *event.Event) []any {
	a := []any{"event_id", ev.ID, "type", ev.Type, "tenant", ev.TenantID, "correlation_id", ev.CorrelationID}
	if id := tracing.TraceID(ev.TraceParent); id != "" {
		a = append(a, "trace_id", id)
	}
	return a
}

// TracedPublisher returns pub with a PRODUCER span per published event
// (SPEC §8). The span is a child of the trace context the app sent
// (traceparent/tracestate, which prepare put on the event; a root without
// one), and its own context replaces that on the event before it is
// written, so the consumers' delivery spans become its children. Span
// attributes follow the messaging semantic conventions (operation "send").
// With a nil tracer (tracing off) it returns pub itself: the app's
// traceparent is stored as it came, at no cost.
func TracedPublisher(pub Publisher, tracer trace.Tracer) Publisher {
	if tracer == nil {
		return pub
	}
	return &tracedPublisher{pub: pub, tracer: tracer}
}

type tracedPublisher struct {
	pub    Publisher
	tracer trace.Tracer
}

// Publish starts one span per request, publishes them all, and ends each span
// with its result. Safe for concurrent use if the wrapped Publisher is.
func (p *tracedPublisher) Publish(ctx context.Context, reqs []relay.PublishRequest, res []relay.PublishResult) {
	var one [1]trace.Span
	spans := one[:0]
	if len(reqs) > 1 {
		spans = make([]trace.Span, 0, len(reqs))
	}
	for _, r := range reqs {
		ev := r.Event
		// Name and attributes are completed once the stream is known (after
		// the write), in one call, and not at all on a span the sampler
		// dropped.
		_, span := p.tracer.Start(tracing.ContextWithRemote(ctx, ev.TraceParent, ev.TraceState), tracing.OpSend,
			trace.WithSpanKind(trace.SpanKindProducer))
		ev.TraceParent, ev.TraceState = tracing.Headers(span.SpanContext())
		spans = append(spans, span)
	}
	p.pub.Publish(ctx, reqs, res)
	for i, span := range spans {
		r := &res[i]
		if !span.IsRecording() {
			span.End()
			continue
		}
		attrs := tracing.Attributes(tracing.OpSend, reqs[i].Event, r.Stream)
		if r.Stream != "" {
			span.SetName(tracing.SpanName(tracing.OpSend, r.Stream))
		}
		if r.Duplicate {
			// Nothing was written: consumers follow the first publish's trace.
			attrs = append(attrs, tracing.DuplicateKey.Bool(true))
		}
		if r.Err != nil {
			errType := "broker_error"
			if errors.Is(r.Err, relay.ErrUnavailable) {
				errType = "broker_unavailable"
			}
			attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
			span.SetStatus(codes.Error, r.Err.Error())
		}
		span.SetAttributes(attrs...)
		span.End()
	}
}

// publishFormat tells how a single publish is encoded: binary CloudEvent
// (a ce-specversion header), structured CloudEvent, or the native event; it
// answers 415 for anything else.
func (s *Server) publishFormat(ctx *fasthttp.RequestCtx) (bodyFormat, bool) {
	if len(ctx.Request.Header.Peek("ce-specversion")) > 0 {
		return formatCloudEventBinary, true
	}
	ct := string(ctx.Request.Header.ContentType())
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == event.CloudEventsMediaType {
		return formatCloudEvent, true
	}
	return formatNative, s.jsonBody(ctx)
}

// jsonBody answers 415 unless the request says its body is JSON.
func (s *Server) jsonBody(ctx *fasthttp.RequestCtx) bool {
	ct := string(ctx.Request.Header.ContentType())
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return true
	}
	s.reject(ctx, &apiError{Status: fasthttp.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "Content-Type",
		Message: fmt.Sprintf("Content-Type must be application/json (or, for one event, application/cloudevents+json), got %q (with curl, add -H 'Content-Type: application/json')", ct)})
	return false
}

func idempotencyKey(ctx *fasthttp.RequestCtx) (string, error) {
	k := ctx.Request.Header.Peek("Idempotency-Key")
	if len(k) == 0 {
		return "", nil
	}
	if len(k) > 200 || !visible(k) {
		return "", &apiError{Status: fasthttp.StatusBadRequest, Code: "invalid_field", Field: "Idempotency-Key",
			Message: "Idempotency-Key must be 1–200 printable ASCII characters without spaces"}
	}
	return string(k), nil
}

// reject answers a request the sidecar refused before publishing.
func (s *Server) reject(ctx *fasthttp.RequestCtx, err error) {
	s.o.Metrics.Published.WithLabelValues("rejected").Inc()
	e := errorFor(err)
	writeError(ctx, e.Status, e.Code, e.Field, e.Message)
}

// fail answers a publish the broker did not take (publish has logged it).
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	e := errorFor(err)
	if e.Status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	writeError(ctx, e.Status, e.Code, e.Field, e.Message)
}

// validTraceParent checks the W3C traceparent shape: version-traceid-parentid-flags
// in lower-case hex, with non-zero ids.
func validTraceParent(b []byte) bool {
	if len(b) < 55 || b[2] != '-' || b[35] != '-' || b[52] != '-' || (len(b) > 55 && b[55] != '-') {
		return false
	}
	if string(b[:2]) == "ff" || !hex(b[:2]) || !hex(b[3:35]) || !hex(b[36:52]) || !hex(b[53:55]) {
		return false
	}
	return !allZero(b[3:35]) && !allZero(b[36:52]) && printable(b)
}

func hex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func visible(b []byte) bool {
	for _, c := range b {
		if c <= 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
