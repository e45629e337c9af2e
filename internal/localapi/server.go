// Package localapi owns the HTTP API an app uses to talk to its sidecar
// (SPEC §2): publishing events, health, readiness and metrics, and the admin
// API behind its own token (SPEC §7: stats, dead letters, replays) and the
// dashboard page that calls it, served with fasthttp on a TCP address and
// optionally a Unix socket.
//
// It knows nothing of the broker: it hands validated events to a Publisher
// and maps the errors it gets back to statuses in one place (errorFor).
package localapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/hyvve/sidecar/internal/metrics"
	"github.com/hyvve/sidecar/internal/relay"
)

// Publisher is what the local API needs from the broker side.
type Publisher interface {
	// Publish writes reqs and fills res (same length); see relay.Publisher.
	Publish(ctx context.Context, reqs []relay.PublishRequest, res []relay.PublishResult)
}

// Options configure the local API.
type Options struct {
	Listen string // TCP host:port
	Socket string // Unix socket path; empty = none

	APIToken      string   // when set, every /v1/ call but /v1/admin/ needs "Authorization: Bearer <token>"
	Tenants       []string // allow-list; empty = any tenant
	DefaultTenant string
	Source        string
	MaxEventBytes int

	// PublishTimeout bounds a publish end to end (default 5 s): a broker that
	// does not answer in time gives 503, never a hang.
	PublishTimeout time.Duration
	// Ready reports why the sidecar is not ready (nil = ready).
	Ready func(ctx context.Context) error

	// AdminToken is the bearer token of /v1/admin/ (the APIToken does not
	// open it); when empty, every admin request is refused.
	AdminToken string
	// DeadLetters serves /v1/admin/dlq; nil = those routes answer 404.
	DeadLetters DeadLetters
	// Replays serves /v1/admin/replays; nil = those routes answer 404.
	Replays Replays
	// Stats serves /v1/admin/stats, with this sidecar's own throughput from
	// Rates (nil = zeros); nil Stats = the route answers 404.
	Stats Stats
	Rates *metrics.Rates

	// Schemas validates the data of core platform events (nil = no schema
	// check); with StrictTypes, types it does not know are refused.
	Schemas     Schemas
	StrictTypes bool

	Metrics *metrics.Metrics
	Logger  *slog.Logger

	// Connection limits; zero means the Default* value (README, "Limits").
	// ReadTimeout bounds reading a whole request, headers and body, from
	// its first byte (on a new connection: from the accept, so a client
	// that connects and sends nothing is closed after it too).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration
	// MaxConns caps the open connections of each listener; one more is
	// answered 503 and closed. Default: DefaultMaxConns, or a quarter of
	// the process's open-file limit when that is lower.
	MaxConns int
	// MaxHeaderBytes caps the request line and headers (431 above).
	MaxHeaderBytes int
}

// Limits of the batch endpoint.
const (
	MaxBatchEvents   = 1000
	minMaxBatchBytes = 16 << 20
)

// Defaults of the connection limits; README "Limits" explains the choices.
const (
	// DefaultReadTimeout: over loopback even a 16 MiB batch arrives in well
	// under a second; 10 s leaves room for a client paused by its garbage
	// collector and cuts a client that sends its request slowly
	// (slowloris) or not at all.
	DefaultReadTimeout = 10 * time.Second
	// DefaultWriteTimeout: answers are small but for dead-letter pages,
	// which a dashboard behind a slow kubectl port-forward may fetch.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout is longer than the idle timeout of the usual
	// client pools (Go 90 s, Node 5 s), so the client closes an idle
	// connection first: a server-side close racing a POST fails a request
	// the client may not retry.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConns is far above what a busy app opens, low enough that
	// idle or slow clients cannot use up file descriptors and memory.
	DefaultMaxConns = 4096
	// DefaultMaxHeaderBytes is Node's default limit; it leaves room for the
	// cookies a browser sends to localhost with the dashboard's requests.
	DefaultMaxHeaderBytes = 16 << 10
)

// Server is the local API. New binds the listeners; Run serves them.
type Server struct {
	o       Options
	pub     Publisher
	log     *slog.Logger
	srv     *fasthttp.Server
	tcp     net.Listener
	unix    net.Listener
	tenants map[string]struct{} // --tenants; nil = any tenant
	metrics fasthttp.RequestHandler
	// maxBatchBytes is the largest batch body; a larger body over the
	// limit of its route is still read (and discarded) up to this size
	// before the 413, so the client reads the answer (see requestBody).
	maxBatchBytes int

	closeOnce sync.Once
}

// New validates the options and binds the TCP listener and, when configured,
// the Unix socket (mode 0660; a stale socket file left by a killed sidecar is
// replaced, a live one is an error).
func New(o Options, pub Publisher) (*Server, error) {
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.Ready == nil {
		o.Ready = func(context.Context) error { return nil }
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = defaultMaxConns()
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	s := &Server{o: o, pub: pub, log: o.Logger, maxBatchBytes: max(minMaxBatchBytes, o.MaxEventBytes)}
	if len(o.Tenants) > 0 {
		s.tenants = make(map[string]struct{}, len(o.Tenants))
		for _, t := range o.Tenants {
			s.tenants[t] = struct{}{}
		}
		if o.Stats != nil {
			s.o.Stats = allowedStats{Stats: o.Stats, allowed: s.tenantAllowed, count: len(s.tenants)}
		}
	}
	s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
	s.srv = &fasthttp.Server{
		Handler:      s.handle,
		ErrorHandler: s.handleParseError,
		Name:         "hyvve-sidecar",
		// Bodies reach the handlers as streams, so a body takes memory as
		// its bytes arrive, not as its Content-Length announces: a slow
		// client cannot reserve 16 MiB with one header. Handlers read a body
		// with requestBody only; ctx.PostBody would read a stream whole,
		// without a limit.
		StreamRequestBody:            true,
		MaxRequestBodySize:           s.maxBatchBytes,
		DisablePreParseMultipartForm: true, // no route takes multipart; never spool it to disk
		ReadBufferSize:               o.MaxHeaderBytes,
		ReadTimeout:                  o.ReadTimeout,
		WriteTimeout:                 o.WriteTimeout,
		IdleTimeout:                  o.IdleTimeout,
		// The listeners cap the connections (capListener: over the cap, the
		// API's JSON 503). Concurrency, per listener, is only a backstop
		// above that, for connections the server has not closed yet. No
		// MaxConnsPerIP: every TCP client is 127.0.0.1.
		Concurrency: 2 * o.MaxConns,
		// An idle keep-alive connection gives its read and write buffers back.
		ReduceMemoryUsage: true,
		// fasthttp's error logs then never quote the request, whose headers
		// may carry the API or admin token.
		SecureErrorLogMessage: true,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		Logger:                fasthttpLogger{o.Logger},
	}

	var err error
	tcp, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", o.Listen, err)
	}
	s.tcp = newCapListener(tcp, o.MaxConns, o.Metrics.ConnectionsRefused, s.log)
	if o.Socket != "" {
		unix, err := listenUnix(o.Socket)
		if err != nil {
			s.tcp.Close()
			return nil, fmt.Errorf("--socket %s: %w", o.Socket, err)
		}
		s.unix = newCapListener(unix, o.MaxConns, o.Metrics.ConnectionsRefused, s.log)
	}
	return s, nil
}

func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, errors.New("exists and is not a socket")
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errors.New("another process is serving this socket")
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Addr is the bound TCP address.
func (s *Server) Addr() string { return s.tcp.Addr().String() }

// Run serves until ctx ends, then stops accepting, lets requests in progress
// finish (up to 10 s), and closes the listeners (removing the socket file).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	n := 0
	for _, ln := range []net.Listener{s.tcp, s.unix} {
		if ln == nil {
			continue
		}
		n++
		go func(ln net.Listener) { errc <- s.srv.Serve(ln) }(ln)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		n--
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := s.srv.ShutdownWithContext(sctx)
	for ; n > 0; n-- {
		<-errc
	}
	s.Close()
	if serveErr != nil {
		return fmt.Errorf("local api: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("local api shutdown: %w", err)
	}
	return nil
}

// Close closes the listeners (removing the socket file). Safe to call twice.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		if err := s.tcp.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		if s.unix != nil {
			if err := s.unix.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
			if err := os.Remove(s.o.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/v1/events":
		if s.allow(ctx, "POST") && s.authorized(ctx) {
			s.handlePublish(ctx)
		}
	case "/v1/events/batch":
		if s.allow(ctx, "POST") && s.authorized(ctx) {
			s.handleBatch(ctx)
		}
	case "/healthz":
		if s.allow(ctx, "GET") {
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"status":"ok"}`)
		}
	case "/readyz":
		if s.allow(ctx, "GET") {
			s.handleReady(ctx)
		}
	case "/metrics":
		if s.allow(ctx, "GET") {
			// The net/http adaptor reads a request body whole, however
			// large; a GET needs none (fasthttp drains or drops it).
			_ = ctx.Request.CloseBodyStream()
			s.metrics(ctx)
		}
	default:
		if string(path) == "/v1/admin" || strings.HasPrefix(string(path), adminPrefix) {
			s.handleAdmin(ctx)
			return
		}
		if string(path) == "/admin" || strings.HasPrefix(string(path), dashboardPrefix) {
			s.handleDashboard(ctx)
			return
		}
		if len(path) >= 4 && string(path[:4]) == "/v1/" && !s.authorized(ctx) {
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "", fmt.Sprintf("no such endpoint: %s %s", ctx.Method(), path))
	}
}

// allow answers 405 unless the method is m (HEAD is allowed with GET).
func (s *Server) allow(ctx *fasthttp.RequestCtx, m string) bool {
	got := string(ctx.Method())
	if got == m || (m == "GET" && got == "HEAD") {
		return true
	}
	ctx.Response.Header.Set("Allow", m)
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "", fmt.Sprintf("%s needs %s, got %s", ctx.Path(), m, got))
	return false
}

func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if s.o.APIToken == "" {
		return true
	}
	h := ctx.Request.Header.Peek("Authorization")
	const p = "Bearer "
	if len(h) > len(p) && string(h[:len(p)]) == p &&
		subtle.ConstantTimeCompare(h[len(p):], []byte(s.o.APIToken)) == 1 {
		return true
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="hyvve-sidecar"`)
	writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "Authorization", "missing or wrong API token: send Authorization: Bearer <--api-token>")
	return false
}

func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.o.Ready(rctx); err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "not_ready", "", err.Error())
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ready"}`)
}

// handleParseError answers requests fasthttp could not read, in the SPEC's
// error format; fasthttp closes the connection after it.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.As(err, &small):
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "",
			fmt.Sprintf("request line and headers are larger than %d bytes", s.o.MaxHeaderBytes))
	case errors.As(err, &nerr) && nerr.Timeout():
		writeError(ctx, fasthttp.StatusRequestTimeout, "request_timeout", "",
			fmt.Sprintf("the request did not arrive within %s", s.o.ReadTimeout))
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "too_large", "",
			fmt.Sprintf("request body larger than %d bytes", s.srv.MaxRequestBodySize))
	default:
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "", "malformed HTTP request: "+err.Error())
	}
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
