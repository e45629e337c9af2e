// Package tracing owns the sidecar's OpenTelemetry tracing (SPEC §8): the
// tracer provider built from the standard OTEL_* environment (OTLP over
// http/protobuf), the conversion between the traceparent/tracestate pair
// stored with an event and a span context, and the attributes of the
// sidecar's spans (OpenTelemetry messaging semantic conventions).
//
// Tracing is off unless the environment asks for it. Off, New starts no
// exporter and no goroutine and Tracer returns nil: the local API and the
// dispatcher then create no span and pass the app's traceparent through
// unchanged.
//
// The spans themselves are made where the work happens: the PRODUCER span of
// a publish in localapi, the CONSUMER span of a delivery attempt and the
// dead-letter span in relay.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the sidecar's spans.
const ScopeName = "github.com/hyvve/sidecar"

// Provider is the process's tracer provider. Create it with New and call
// Shutdown once the spans' producers have stopped. Safe for concurrent use.
type Provider struct {
	tp     *sdktrace.TracerProvider // nil when tracing is off
	tracer trace.Tracer
	cfg    Config

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the provider cfg describes: when cfg.Enabled, an OTLP/HTTP
// exporter to cfg.Endpoint behind a batch span processor (one background
// goroutine), with the resource service.name=cfg.ServiceName and
// service.version=version. It connects to nothing yet: a collector that is
// down costs dropped spans, never a failed start or a blocked publish.
//
// Because the OpenTelemetry SDK reports export failures only through its
// process-wide error handler, an enabled New points that handler at log
// (warn level, key "error"). A nil log discards.
func New(ctx context.Context, cfg Config, version string, log *slog.Logger) (*Provider, error) {
	if !cfg.Enabled {
		return &Provider{cfg: cfg}, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter to %s: %w", cfg.Endpoint, err)
	}
	attrs := append([]attribute.KeyValue{semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version)}, cfg.Resource...)
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL), resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	sampler := cfg.Sampler
	if sampler == nil {
		sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: spans not exported", "endpoint", cfg.Endpoint, "error", err)
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	return &Provider{tp: tp, tracer: tp.Tracer(ScopeName, trace.WithInstrumentationVersion(version)), cfg: cfg}, nil
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p != nil && p.tp != nil }

// Tracer returns the sidecar's tracer, or nil when tracing is off (callers
// then skip span creation altogether).
func (p *Provider) Tracer() trace.Tracer {
	if !p.Enabled() {
		return nil
	}
	return p.tracer
}

// Config returns the configuration the provider was built from.
func (p *Provider) Config() Config { return p.cfg }

// Shutdown ends every span pipeline: it exports the spans still queued
// (flush) and stops the batch goroutine. It blocks until that is done or ctx
// ends; pass a context with a deadline. Safe to call more than once (later
// calls return the first result) and on a provider that is off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	p.shutdownOnce.Do(func() {
		if err := p.tp.Shutdown(ctx); err != nil {
			p.shutdownErr = fmt.Errorf("tracing: flush to %s: %w", p.cfg.Endpoint, err)
		}
	})
	return p.shutdownErr
}
