// Package appclient owns the sidecar's HTTP client towards its own app
// (SPEC §3): pushing one event to a subscription's path, and fetching the
// subscriptions the app declares at GET /hyvve/subscriptions. The app is
// reached over TCP ("http://host:port") or a Unix socket
// ("unix:///path/to.sock"), on pooled keep-alive connections.
//
// A Client is safe for concurrent use. Every call blocks until the app
// answers, the per-request timeout passes or the caller's context ends.
package appclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/subscription"
)

const (
	// MaxAnswerBody is how much of an answer's body Result.Body keeps: the
	// dead-letter reason of SPEC §3.
	MaxAnswerBody = 1 << 10
	// maxReadBody bounds the answer body read into memory. A larger answer
	// still counts (its status is known), but its body is not read and its
	// connection is closed instead of reused. It is also the limit on the
	// subscription list.
	maxReadBody = 1 << 20
	// idleConnTimeout closes pooled connections idle this long: shorter
	// than the keep-alive timeout of common app servers (Node and uvicorn
	// 5 s), so we seldom send on a connection the app has just closed.
	idleConnTimeout = 3 * time.Second
	// readBufferSize bounds the answer's header block.
	readBufferSize = 8 << 10

	subscriptionsPath = "/hyvve/subscriptions"
	userAgent         = "hyvve-sidecar"
)

// Errors wrapped by the errors of Push and Subscriptions. Besides these, an
// error may wrap a syscall.Errno (e.g. syscall.ECONNREFUSED),
// context.Canceled or context.DeadlineExceeded.
var (
	// ErrTimeout: no answer within Options.Timeout or before the context's
	// deadline.
	ErrTimeout = errors.New("timeout")
	// ErrConnClosed: the app closed the connection without answering.
	ErrConnClosed = errors.New("connection closed before the answer")
	// ErrBadAnswer: what the app sent back is not a valid HTTP answer.
	ErrBadAnswer = errors.New("malformed HTTP answer")
	// ErrBadStatus: Subscriptions got a status other than 2xx or 404.
	ErrBadStatus = errors.New("unexpected status")
	// ErrBadSubscriptions: the subscription list is not valid.
	ErrBadSubscriptions = errors.New("invalid subscription list")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("app client closed")
)

// Options configure a Client.
type Options struct {
	URL      string        // "http://host:port[/base]" or "unix:///path/to.sock"
	Token    string        // sent as X-Hyvve-Token when non-empty
	Timeout  time.Duration // per request, > 0
	MaxConns int           // = app concurrency (+ a few for the subscription fetch), > 0
}

// Delivery is one push. Empty string fields send no header.
type Delivery struct {
	Path          string // the subscription's path: "/" then no spaces, '?' or '#'
	EventID       string // X-Event-Id
	EventType     string // X-Event-Type
	TenantID      string // X-Tenant-Id
	CorrelationID string // X-Correlation-Id
	TraceParent   string // traceparent
	TraceState    string // tracestate
	Attempt       int    // X-Delivery-Attempt, sent as is: 1 for the first attempt
	Replay        bool   // X-Replay: true
	Body          []byte // the event JSON; must not change until Push returns
	ContentType   string // of Body; empty means application/json
}

// Result is the app's answer to a push. Body holds at most the first
// MaxAnswerBody bytes of the answer's body (a copy, owned by the caller).
// RetryAfter comes from a Retry-After header (seconds or HTTP date), 0 when
// absent, invalid or in the past.
type Result struct {
	Status     int
	Body       []byte
	RetryAfter time.Duration
}

// Client is the sidecar's HTTP client towards its app. It is safe for
// concurrent use; at most Options.MaxConns requests run at once, further
// ones wait for a free connection within their timeout.
type Client struct {
	hc       *fasthttp.HostClient
	url      string // Options.URL without trailing "/", for messages
	host     string // Host header
	basePath string // path prefix of an http URL, "" for none
	network  string // "tcp" or "unix"
	addr     string // host:port or socket path to dial
	token    string
	timeout  time.Duration
	maxConns int
	closed   atomic.Bool
}

// New validates o and returns a Client. It does not connect: the app may
// start after the sidecar.
func New(o Options) (*Client, error) {
	c := &Client{
		url:      strings.TrimRight(o.URL, "/"),
		token:    o.Token,
		timeout:  o.Timeout,
		maxConns: o.MaxConns,
	}
	addr, err := c.parseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("app URL %q: %w", o.URL, err)
	}
	switch {
	case o.Timeout <= 0:
		return nil, fmt.Errorf("app timeout %s: must be > 0", o.Timeout)
	case o.MaxConns <= 0:
		return nil, fmt.Errorf("app max connections %d: must be > 0", o.MaxConns)
	}
	for i := 0; i < len(o.Token); i++ {
		if b := o.Token[i]; b < 0x20 || b == 0x7f {
			return nil, errors.New("app token: contains a control character")
		}
	}
	c.addr = addr
	c.hc = &fasthttp.HostClient{
		// HostClient splits Addr at commas (a list of hosts) and a socket
		// path may hold one, so it gets a placeholder; c.dial knows the
		// real address.
		Addr:                "app",
		DialTimeout:         c.dial,
		MaxConns:            o.MaxConns,
		MaxConnWaitTimeout:  o.Timeout,
		MaxIdleConnDuration: idleConnTimeout,
		ReadBufferSize:      readBufferSize,
		// The most recently used connection is the least likely to have
		// been closed by the app while idle.
		ConnPoolStrategy: fasthttp.LIFO,
	}
	return c, nil
}

// parseURL sets the network, Host header and base path of c from raw and
// returns the address to dial.
func (c *Client) parseURL(raw string) (addr string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http", "unix":
	case "https":
		return "", errors.New("https is not supported (the app is local): use http:// or unix://")
	default:
		return "", fmt.Errorf("scheme %q: must be http or unix", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("must be http://host:port or unix:///path/to.sock, without user, query or fragment")
	}
	if u.Scheme == "unix" {
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return "", errors.New("a socket URL needs an absolute path: unix:///path/to.sock")
		}
		c.network, c.host = "unix", "localhost"
		return u.Path, nil
	}
	if u.Hostname() == "" {
		return "", errors.New("no host")
	}
	c.network, c.host = "tcp", u.Host
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if base := strings.TrimRight(u.EscapedPath(), "/"); base != "" {
		if err := subscription.ValidatePath(base); err != nil {
			return "", fmt.Errorf("base path: %w", err)
		}
		c.basePath = base
	}
	return addr, nil
}

// dial is the HostClient's dialer. It wraps every connection in a conn.
func (c *Client) dial(_ string, timeout time.Duration) (net.Conn, error) {
	nc, err := net.DialTimeout(c.network, c.addr, timeout)
	if err != nil {
		return nil, err
	}
	return newConn(nc), nil
}

// Push POSTs d.Body to the app at d.Path with the delivery headers of SPEC
// §3 and returns the app's answer, whatever its status. It blocks until the
// app answers, Options.Timeout passes or ctx ends, whichever comes first
// (waiting for a free connection and dialing honor the timeout and ctx's
// deadline, not a cancellation of ctx). A non-nil error means no HTTP
// answer, e.g. "push to unix:///x.sock/events/a: dial: connection refused".
func (c *Client) Push(ctx context.Context, d *Delivery) (Result, error) {
	if c.closed.Load() {
		return Result{}, fmt.Errorf("push to %s%s: %w", c.url, d.Path, ErrClosed)
	}
	if err := subscription.ValidatePath(d.Path); err != nil {
		return Result{}, fmt.Errorf("push to %s%s: %w", c.url, d.Path, err)
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)

	c.prepare(req, fasthttp.MethodPost, d.Path)
	h := &req.Header
	if d.ContentType != "" {
		h.SetContentType(d.ContentType)
	} else {
		h.SetContentType("application/json")
	}
	setIfNotEmpty(h, "X-Event-Id", d.EventID)
	setIfNotEmpty(h, "X-Event-Type", d.EventType)
	setIfNotEmpty(h, "X-Tenant-Id", d.TenantID)
	setIfNotEmpty(h, "X-Correlation-Id", d.CorrelationID)
	var num [20]byte
	h.SetBytesV("X-Delivery-Attempt", strconv.AppendInt(num[:0], int64(d.Attempt), 10))
	setIfNotEmpty(h, "Traceparent", d.TraceParent)
	setIfNotEmpty(h, "Tracestate", d.TraceState)
	if d.Replay {
		h.Set("X-Replay", "true")
	}
	req.SetBodyRaw(d.Body)

	if _, err := c.roundTrip(ctx, req, resp); err != nil {
		return Result{}, fmt.Errorf("push to %s%s: %w", c.url, d.Path, err)
	}
	res := Result{Status: resp.StatusCode()}
	if v := resp.Header.Peek("Retry-After"); len(v) > 0 {
		res.RetryAfter = parseRetryAfter(v, time.Now())
	}
	// A body bigger than maxReadBody was not read: Body() is empty or a
	// prefix, and a prefix is all we keep anyway.
	if body := resp.Body(); len(body) > 0 {
		res.Body = append([]byte(nil), body[:min(len(body), MaxAnswerBody)]...)
	}
	return res, nil
}

// Subscriptions GETs {URL}/hyvve/subscriptions. A 2xx answer with a JSON
// array of {"pattern","path"} objects gives (subs, true, nil); the list is
// validated like the config's (subscription.NewRouter), so a bad entry is
// an error that names it. 404 gives (nil, false, nil): the app declares
// none. Any other status, a body over 1 MiB or no answer is an error. It
// blocks like Push.
func (c *Client) Subscriptions(ctx context.Context) ([]subscription.Subscription, bool, error) {
	target := c.url + subscriptionsPath
	if c.closed.Load() {
		return nil, false, fmt.Errorf("get %s: %w", target, ErrClosed)
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)

	c.prepare(req, fasthttp.MethodGet, subscriptionsPath)
	req.Header.Set("Accept", "application/json")
	tooLarge, err := c.roundTrip(ctx, req, resp)
	if err != nil {
		return nil, false, fmt.Errorf("get %s: %w", target, err)
	}
	status, body := resp.StatusCode(), resp.Body()
	switch {
	case status == fasthttp.StatusNotFound:
		return nil, false, nil
	case status < 200 || status > 299:
		return nil, false, fmt.Errorf("get %s: %w %d: %q", target, ErrBadStatus, status, body[:min(len(body), 256)])
	case tooLarge:
		return nil, false, fmt.Errorf("get %s: %w: body larger than %d bytes", target, ErrBadSubscriptions, maxReadBody)
	}
	// A JSON null or object would decode without error into a slice or
	// fail obscurely; say what is expected instead.
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); !bytes.HasPrefix(trimmed, []byte("[")) {
		return nil, false, fmt.Errorf("get %s: %w: want a JSON array of {\"pattern\",\"path\"}, got %q", target, ErrBadSubscriptions, body[:min(len(body), 64)])
	}
	var subs []subscription.Subscription
	if err := json.Unmarshal(body, &subs); err != nil {
		return nil, false, fmt.Errorf("get %s: %w: %w", target, ErrBadSubscriptions, err)
	}
	if _, err := subscription.NewRouter(subs); err != nil {
		return nil, false, fmt.Errorf("get %s: %w: %w", target, ErrBadSubscriptions, err)
	}
	return subs, true, nil
}

// Close closes idle connections; a request in flight keeps its connection
// until it ends, which then is closed too. Later calls fail with
// ErrClosed. Close is safe to call more than once and always returns nil.
func (c *Client) Close() error {
	c.closed.Store(true)
	c.hc.CloseIdleConnections()
	return nil
}

// prepare sets the request line and the headers common to every request.
func (c *Client) prepare(req *fasthttp.Request, method, path string) {
	req.Header.SetMethod(method)
	if c.basePath == "" {
		req.SetRequestURI(path)
	} else {
		var buf [2 * subscription.MaxPathLen]byte
		req.SetRequestURIBytes(append(append(buf[:0], c.basePath...), path...))
	}
	req.Header.SetHost(c.host)
	req.Header.SetUserAgent(userAgent)
	if c.token != "" {
		req.Header.Set("X-Hyvve-Token", c.token)
	}
}

func setIfNotEmpty(h *fasthttp.RequestHeader, key, value string) {
	if value != "" {
		h.Set(key, value)
	}
}

// roundTrip sends req on a pooled connection and reads the answer into
// resp. tooLarge reports an answer whose body exceeded maxReadBody: its
// status and headers are valid, its body was not read. A non-nil error
// names the step that failed ("dial", "send", "read", ...).
//
// We drive the HostClient's pool ourselves instead of calling
// HostClient.Do, because fasthttp knows no context: with the connection in
// hand, a cancelled ctx aborts the blocked read or write by moving the
// connection's deadline into the past.
func (c *Client) roundTrip(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) (tooLarge bool, err error) {
	deadline := time.Now().Add(c.timeout)
	ctxDeadline, ok := ctx.Deadline()
	byCtx := ok && ctxDeadline.Before(deadline)
	if byCtx {
		deadline = ctxDeadline
	}
	// A keep-alive connection may have been closed by the app while it sat
	// in the pool; that shows only when it is used. Such a failure (nothing
	// received, no timeout) is retried on another connection, up to
	// maxConns times so that a pool of dead connections (app restarted)
	// drains to a fresh dial.
	for stale := 0; ; stale++ {
		if err := ctx.Err(); err != nil {
			return false, c.failure(ctx, "send", err, nil, byCtx)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return false, c.failure(ctx, "send", fasthttp.ErrTimeout, nil, byCtx)
		}
		cc, err := c.hc.AcquireConn(remaining, false)
		if err != nil {
			step := "dial"
			if errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, fasthttp.ErrTimeout) {
				step, err = "wait for a free connection", fasthttp.ErrTimeout
			}
			return false, c.failure(ctx, step, err, nil, byCtx)
		}
		conn := cc.Conn().(*conn) //nolint:forcetypeassert // c.dial makes every connection
		reused := !cc.LastUseTime().IsZero()
		conn.nread, conn.readErr = 0, nil

		step := "send"
		err = conn.SetDeadline(deadline)
		var stop func() bool
		if err == nil && ctx.Done() != nil {
			stop = context.AfterFunc(ctx, conn.abortFn)
		}
		if err == nil {
			bw := c.hc.AcquireWriter(conn)
			err = req.Write(bw)
			if err == nil {
				err = bw.Flush()
			}
			c.hc.ReleaseWriter(bw)
		}
		if err == nil {
			step = "read"
			br := c.hc.AcquireReader(conn)
			err = resp.ReadLimitBody(br, maxReadBody)
			c.hc.ReleaseReader(br)
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				tooLarge, err = true, nil
			}
		}
		aborted := stop != nil && !stop()
		nread, readErr := conn.nread, conn.readErr
		if err != nil || aborted || tooLarge || resp.ConnectionClose() || req.ConnectionClose() {
			c.hc.CloseConn(cc)
		} else {
			c.hc.ReleaseConn(cc)
			if c.closed.Load() {
				// Close ran while we held the connection.
				c.hc.CloseIdleConnections()
			}
		}
		if err == nil {
			return tooLarge, nil
		}
		if reused && nread == 0 && !aborted && !isTimeout(err) && stale < c.maxConns {
			continue
		}
		return false, c.failure(ctx, step, err, readErr, byCtx)
	}
}

// failure turns what went wrong in step into an error that says which:
// timeout, cancellation, refused, reset, closed or a malformed answer.
// readErr is the connection's last read error, which fasthttp folds into
// io.EOF; byCtx reports that the deadline was ctx's rather than ours.
func (c *Client) failure(ctx context.Context, step string, err, readErr error, byCtx bool) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s: %w", step, context.Canceled)
	}
	if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		if byCtx {
			return fmt.Errorf("%s: %w (%w)", step, ErrTimeout, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %w after %s", step, ErrTimeout, c.timeout)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if readErr == nil || errors.Is(readErr, io.EOF) {
			return fmt.Errorf("%s: %w", step, ErrConnClosed)
		}
		err = readErr
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("%s: %w", step, errno)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("%s: %w", step, err)
	}
	// What remains comes from parsing the answer.
	return fmt.Errorf("%s: %w: %v", step, ErrBadAnswer, err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// parseRetryAfter parses a Retry-After value: delay-seconds or an HTTP
// date, relative to now. Invalid values and dates in the past give 0.
func parseRetryAfter(v []byte, now time.Time) time.Duration {
	s := strings.TrimSpace(string(v))
	if s == "" {
		return 0
	}
	if s[0] >= '0' && s[0] <= '9' {
		secs, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(s) // the three HTTP date formats
	if err != nil || !t.After(now) {
		return 0
	}
	return t.Sub(now)
}

// conn is a connection to the app. It remembers what fasthttp hides: how
// many bytes of an answer arrived and why the last read failed (fasthttp
// reports any failure on the first byte as io.EOF).
type conn struct {
	net.Conn
	// nread and readErr belong to the goroutine that holds the connection.
	nread   int
	readErr error
	// abortFn unblocks a pending read or write from any goroutine; made
	// once per connection so that a push does not allocate it.
	abortFn func()
}

func newConn(nc net.Conn) *conn {
	c := &conn{Conn: nc}
	c.abortFn = c.abort
	return c
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.nread += n
	if err != nil {
		c.readErr = err
	}
	return n, err
}

// abort moves the deadline into the past; net.Conn allows that from any
// goroutine.
func (c *conn) abort() {
	_ = c.Conn.SetDeadline(time.Unix(1, 0))
}
