package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultServiceName is the service.name of the sidecar's spans when
// OTEL_SERVICE_NAME (and service.name in OTEL_RESOURCE_ATTRIBUTES) is unset.
const DefaultServiceName = "hyvve-sidecar"

// Config is the tracing configuration read from the standard OTEL_*
// environment variables. The zero value is tracing off.
type Config struct {
	// Enabled is false unless an OTLP endpoint is set or OTEL_TRACES_EXPORTER
	// is "otlp"; when false, nothing else here is used.
	Enabled bool
	// ServiceName is the resource's service.name.
	ServiceName string
	// Endpoint is the full OTLP/HTTP traces URL, e.g.
	// "http://127.0.0.1:4318/v1/traces".
	Endpoint string
	// Sampler decides which traces are recorded; parentbased_always_on by
	// default, so the app's sampling decision in traceparent is followed.
	Sampler sdktrace.Sampler
	// Resource holds the attributes of OTEL_RESOURCE_ATTRIBUTES (service.name
	// excluded: that is ServiceName).
	Resource []attribute.KeyValue
}

// The variables FromEnv reads. The OTLP exporter itself also reads
// OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
// _CLIENT_CERTIFICATE and _CLIENT_KEY, and the batch span processor
// OTEL_BSP_*; those need no decision here.
const (
	envSDKDisabled      = "OTEL_SDK_DISABLED"
	envExporter         = "OTEL_TRACES_EXPORTER"
	envEndpoint         = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint   = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol         = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol   = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envServiceName      = "OTEL_SERVICE_NAME"
	envResource         = "OTEL_RESOURCE_ATTRIBUTES"
	envSampler          = "OTEL_TRACES_SAMPLER"
	envSamplerArg       = "OTEL_TRACES_SAMPLER_ARG"
	defaultHTTPEndpoint = "http://localhost:4318"
	tracesPath          = "/v1/traces"
)

// FromEnv reads the tracing configuration through getenv (os.Getenv in the
// binary). Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, or OTEL_TRACES_EXPORTER is
// "otlp" (then the endpoint defaults to http://localhost:4318); it is off
// when OTEL_TRACES_EXPORTER is "none" or OTEL_SDK_DISABLED is "true".
// Only OTLP over http/protobuf is built in: the protocol "grpc", another
// exporter, an endpoint that is not an http(s) URL or an unknown sampler is
// an error naming the variable.
func FromEnv(getenv func(string) string) (Config, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if strings.EqualFold(env(envSDKDisabled), "true") {
		return Config{}, nil
	}
	tracesEndpoint, endpoint := env(envTracesEndpoint), env(envEndpoint)
	switch exp := env(envExporter); exp {
	case "none":
		return Config{}, nil
	case "", "otlp":
		if exp == "" && tracesEndpoint == "" && endpoint == "" {
			return Config{}, nil
		}
	default:
		return Config{}, fmt.Errorf("%s: %q: not supported: this sidecar exports traces with otlp only (or none)", envExporter, exp)
	}

	c := Config{Enabled: true}
	protoVar, proto := envTracesProtocol, env(envTracesProtocol)
	if proto == "" {
		protoVar, proto = envProtocol, env(envProtocol)
	}
	switch proto {
	case "", "http/protobuf":
	case "grpc":
		return Config{}, fmt.Errorf("%s: %q: not supported: this sidecar sends OTLP over http/protobuf only; "+
			"unset it (or set http/protobuf) and point the endpoint at the collector's OTLP/HTTP port (usually 4318)", protoVar, proto)
	default:
		return Config{}, fmt.Errorf("%s: %q: not supported: use http/protobuf", protoVar, proto)
	}

	var err error
	switch {
	case tracesEndpoint != "":
		// The signal-specific endpoint is used as it is.
		c.Endpoint, err = checkEndpoint(envTracesEndpoint, tracesEndpoint)
	case endpoint != "":
		// The base endpoint gets /v1/traces appended (OTLP exporter spec).
		c.Endpoint, err = checkEndpoint(envEndpoint, strings.TrimSuffix(endpoint, "/")+tracesPath)
	default:
		c.Endpoint = defaultHTTPEndpoint + tracesPath
	}
	if err != nil {
		return Config{}, err
	}

	if c.Resource, c.ServiceName, err = parseResource(env(envResource)); err != nil {
		return Config{}, err
	}
	if s := env(envServiceName); s != "" {
		c.ServiceName = s
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.Sampler, err = parseSampler(env(envSampler), env(envSamplerArg)); err != nil {
		return Config{}, err
	}
	return c, nil
}

func checkEndpoint(name, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %q: %w", name, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: %q: must be an http:// or https:// URL such as http://127.0.0.1:4318", name, raw)
	}
	return u.String(), nil
}

// parseResource reads OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value
// pairs, values percent-encoded. service.name is returned apart.
func parseResource(s string) ([]attribute.KeyValue, string, error) {
	if s == "" {
		return nil, "", nil
	}
	var attrs []attribute.KeyValue
	service := ""
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, "", fmt.Errorf("%s: %q: want key=value pairs separated by commas", envResource, pair)
		}
		v, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %q: %w", envResource, pair, err)
		}
		if k == "service.name" {
			service = v
			continue
		}
		attrs = append(attrs, attribute.String(k, v))
	}
	return attrs, service, nil
}

// parseSampler maps OTEL_TRACES_SAMPLER and its argument onto a Sampler.
func parseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("%s: %q: want a ratio from 0 to 1 for %s=%s", envSamplerArg, arg, envSampler, name)
		}
		return f, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		f, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(f), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f)), nil
	default:
		return nil, errors.New(envSampler + ": " + strconv.Quote(name) + ": unknown sampler; use always_on, always_off, traceidratio, " +
			"parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio")
	}
}
