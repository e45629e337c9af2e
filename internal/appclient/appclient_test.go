package appclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/subscription"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's idle-connection cleaner sleeps up to idleConnTimeout
		// and then exits by itself once the client has no connections.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		// The fasthttp server of BenchmarkPush's fake app: a process-wide
		// date updater, and its worker pool's cleaner, which exits after
		// its next tick.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

var networks = []string{"tcp", "unix"}

// startApp serves h as the fake app over network ("tcp" or "unix") until
// the test ends and returns the app URL to give the client. configure, if
// any, runs before the server starts.
func startApp(t testing.TB, network string, h http.Handler, configure ...func(*http.Server)) (appURL string, srv *httptest.Server) {
	t.Helper()
	srv = httptest.NewUnstartedServer(h)
	appURL = "http://" + srv.Listener.Addr().String()
	if network == "unix" {
		srv.Listener.Close()
		path := socketPath(t)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = l
		appURL = "unix://" + path
	}
	for _, f := range configure {
		f(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return appURL, srv
}

// socketPath returns a path for a Unix socket in a temporary directory,
// short enough for the 108-byte limit of socket paths.
func socketPath(t testing.TB) string {
	dir := t.TempDir()
	if len(dir) > 80 {
		var err error
		if dir, err = os.MkdirTemp("", "appclient"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "app.sock")
}

func newClient(t testing.TB, o Options) *Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxConns == 0 {
		o.MaxConns = 4
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received is what the fake app saw of one request.
type received struct {
	method, uri, host string
	header            http.Header
	body              []byte
}

// recorder is a fake app answering 204 that hands every request to the test.
func recorder(t testing.TB) (http.Handler, <-chan received) {
	ch := make(chan received, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("app: reading body: %v", err)
		}
		ch <- received{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}), ch
}

func TestPush_sends_delivery_headers_and_body(t *testing.T) {
	body := []byte(`{"id":"0193a","type":"approval.granted","tenantId":"acme","data":{"k":"v \u00e9"}}`)
	tests := []struct {
		name       string
		token      string
		delivery   Delivery
		wantHeader map[string]string // "" means absent
	}{
		{
			name:  "every field",
			token: "s3cret",
			delivery: Delivery{
				Path: "/events/approval", EventID: "0193a", EventType: "approval.granted", TenantID: "acme",
				CorrelationID: "corr-1", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				TraceState: "vendor=x", Attempt: 3, Replay: true, Body: body,
			},
			wantHeader: map[string]string{
				"Content-Type": "application/json", "X-Event-Id": "0193a", "X-Event-Type": "approval.granted",
				"X-Tenant-Id": "acme", "X-Correlation-Id": "corr-1", "X-Delivery-Attempt": "3",
				"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Tracestate": "vendor=x",
				"X-Replay": "true", "X-Hyvve-Token": "s3cret", "Content-Length": fmt.Sprint(len(body)),
			},
		},
		{
			name: "no trace, no replay, no token",
			delivery: Delivery{
				Path: "/e", EventID: "id-2", EventType: "user.joined", TenantID: "t1", CorrelationID: "c2",
				Attempt: 1, Body: body,
			},
			wantHeader: map[string]string{
				"Content-Type": "application/json", "X-Event-Id": "id-2", "X-Event-Type": "user.joined",
				"X-Tenant-Id": "t1", "X-Correlation-Id": "c2", "X-Delivery-Attempt": "1",
				"Traceparent": "", "Tracestate": "", "X-Replay": "", "X-Hyvve-Token": "",
			},
		},
	}
	for _, network := range networks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				h, reqs := recorder(t)
				appURL, srv := startApp(t, network, h)
				c := newClient(t, Options{URL: appURL, Token: tt.token})

				res, err := c.Push(context.Background(), &tt.delivery)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != http.StatusNoContent {
					t.Errorf("got status %d, want 204", res.Status)
				}
				got := <-reqs
				wantHost := strings.TrimPrefix(srv.URL, "http://")
				if network == "unix" {
					wantHost = "localhost"
				}
				if got.method != http.MethodPost || got.uri != tt.delivery.Path || got.host != wantHost {
					t.Errorf("got %s %s Host %q, want POST %s Host %q", got.method, got.uri, got.host, tt.delivery.Path, wantHost)
				}
				for k, want := range tt.wantHeader {
					if vals := got.header.Values(k); want == "" && len(vals) != 0 {
						t.Errorf("header %s: got %q, want none", k, vals)
					} else if want != "" && !slices.Equal(vals, []string{want}) {
						t.Errorf("header %s: got %q, want [%q]", k, vals, want)
					}
				}
				if !bytes.Equal(got.body, tt.delivery.Body) {
					t.Errorf("got body %q, want %q", got.body, tt.delivery.Body)
				}
			})
		}
	}
}

func TestPush_to_a_socket_path_with_a_comma(t *testing.T) {
	dir := filepath.Join(filepath.Dir(socketPath(t)), "a,b")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, Options{URL: "unix://" + path})
	if res, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1}); err != nil || res.Status != http.StatusOK {
		t.Errorf("got %d, %v; want 200, nil", res.Status, err)
	}
}

func TestPush_prefixes_the_base_path_of_the_URL(t *testing.T) {
	h, reqs := recorder(t)
	appURL, _ := startApp(t, "tcp", h)
	c := newClient(t, Options{URL: appURL + "/hooks/"})
	if _, err := c.Push(context.Background(), &Delivery{Path: "/events/a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if got := (<-reqs).uri; got != "/hooks/events/a" {
		t.Errorf("got request URI %q, want /hooks/events/a", got)
	}
}

func TestPush_returns_the_answer(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000/16+1)[:5000]
	huge := bytes.Repeat([]byte("x"), 3<<20)
	inFuture := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	inPast := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name           string
		status         int
		header         map[string]string
		body           []byte
		chunked        bool
		wantBody       []byte
		wantRetryAfter [2]time.Duration // inclusive range
	}{
		{name: "204 no body", status: 204},
		{name: "200 with body", status: 200, body: []byte("ok"), wantBody: []byte("ok")},
		{name: "503 retry after seconds", status: 503, header: map[string]string{"Retry-After": "7"}, wantRetryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "429 retry after date", status: 429, header: map[string]string{"Retry-After": inFuture}, wantRetryAfter: [2]time.Duration{85 * time.Second, 90 * time.Second}},
		{name: "503 retry after date in the past", status: 503, header: map[string]string{"Retry-After": inPast}},
		{name: "503 retry after garbage", status: 503, header: map[string]string{"Retry-After": "soon"}},
		{name: "503 retry after negative", status: 503, header: map[string]string{"Retry-After": "-5"}},
		{name: "400 long body is cut to 1 KiB", status: 400, body: big, wantBody: big[:MaxAnswerBody]},
		{name: "422 long chunked body is cut to 1 KiB", status: 422, body: big, chunked: true, wantBody: big[:MaxAnswerBody]},
		{name: "200 with a 3 MiB body", status: 200, body: huge},
		{name: "500 with a 3 MiB chunked body", status: 500, body: huge, chunked: true},
	}
	for _, network := range networks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				appURL, _ := startApp(t, network, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					if !tt.chunked && tt.body != nil {
						w.Header().Set("Content-Length", fmt.Sprint(len(tt.body)))
					}
					w.WriteHeader(tt.status)
					if tt.chunked {
						w.(http.Flusher).Flush() // no Content-Length: chunked
					}
					w.Write(tt.body)
				}))
				c := newClient(t, Options{URL: appURL})
				// twice: the second push runs on a reused connection, or
				// on a new one when the first answer was too big to read
				for i := range 2 {
					res, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1, Body: []byte(`{}`)})
					if err != nil {
						t.Fatalf("push %d: %v", i+1, err)
					}
					if res.Status != tt.status {
						t.Errorf("push %d: got status %d, want %d", i+1, res.Status, tt.status)
					}
					if len(res.Body) > MaxAnswerBody {
						t.Errorf("push %d: got %d body bytes, want at most %d", i+1, len(res.Body), MaxAnswerBody)
					}
					if tt.wantBody != nil && !bytes.Equal(res.Body, tt.wantBody) {
						t.Errorf("push %d: got body %.40q (%d bytes), want %.40q (%d bytes)", i+1, res.Body, len(res.Body), tt.wantBody, len(tt.wantBody))
					}
					if tt.body == nil && res.Body != nil {
						t.Errorf("push %d: got body %q, want nil", i+1, res.Body)
					}
					if r := tt.wantRetryAfter; res.RetryAfter < r[0] || res.RetryAfter > r[1] {
						t.Errorf("push %d: got RetryAfter %s, want between %s and %s", i+1, res.RetryAfter, r[0], r[1])
					}
				}
			})
		}
	}
}

func TestPush_Result_Body_is_a_copy(t *testing.T) {
	var n atomic.Int32
	appURL, _ := startApp(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "answer-%d", n.Add(1))
	}))
	c := newClient(t, Options{URL: appURL})
	first, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // reuse fasthttp's pooled buffers
		if _, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if string(first.Body) != "answer-1" {
		t.Errorf("first result's body changed to %q, want answer-1", first.Body)
	}
}

func TestPush_reuses_connections(t *testing.T) {
	h, reqs := recorder(t)
	var conns atomic.Int32
	appURL, _ := startApp(t, "tcp", h, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	c := newClient(t, Options{URL: appURL})
	for range 10 {
		if _, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		<-reqs
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("got %d connections for 10 sequential pushes, want 1", got)
	}
}

func TestPush_retries_a_connection_the_app_closed_while_idle(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			h, reqs := recorder(t)
			appURL, srv := startApp(t, network, h)
			c := newClient(t, Options{URL: appURL})
			d := &Delivery{Path: "/e", Attempt: 1, Body: []byte(`{}`)}
			if _, err := c.Push(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			<-reqs
			// As an app's keep-alive timeout does: close the idle connection.
			srv.CloseClientConnections()
			time.Sleep(50 * time.Millisecond) // let the FIN arrive
			res, err := c.Push(context.Background(), d)
			if err != nil {
				t.Fatalf("push on a connection the app closed: got %v, want a retry on a new connection", err)
			}
			if res.Status != http.StatusNoContent {
				t.Errorf("got status %d, want 204", res.Status)
			}
			<-reqs
			select {
			case r := <-reqs:
				t.Errorf("app got a third request %s %s, want two", r.method, r.uri)
			default:
			}
		})
	}
}

// slowApp answers only when the request's connection goes away.
var slowApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
})

func TestPush_times_out(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			appURL, _ := startApp(t, network, slowApp)
			const timeout = 200 * time.Millisecond
			c := newClient(t, Options{URL: appURL, Timeout: timeout})
			start := time.Now()
			_, err := c.Push(context.Background(), &Delivery{Path: "/events/a", Attempt: 1})
			elapsed := time.Since(start)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("got error %v, want ErrTimeout", err)
			}
			if want := "push to " + appURL + "/events/a: read: timeout after 200ms"; err.Error() != want {
				t.Errorf("got error %q, want %q", err, want)
			}
			if elapsed < timeout || elapsed > timeout+time.Second {
				t.Errorf("returned after %s, want about %s", elapsed, timeout)
			}
		})
	}
}

func TestPush_honors_the_context(t *testing.T) {
	tests := []struct {
		name     string
		ctx      func() (context.Context, context.CancelFunc)
		wantIs   []error
		wantText string
	}{
		{
			name: "cancel during a slow push",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(150*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantIs:   []error{context.Canceled},
			wantText: "read: context canceled",
		},
		{
			name: "deadline shorter than the timeout",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 150*time.Millisecond)
			},
			wantIs:   []error{ErrTimeout, context.DeadlineExceeded},
			wantText: "read: timeout (context deadline exceeded)",
		},
	}
	for _, network := range networks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				var slow atomic.Bool
				slow.Store(true)
				appURL, _ := startApp(t, network, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if slow.Load() {
						slowApp(w, r)
						return
					}
					w.WriteHeader(http.StatusOK)
				}))
				c := newClient(t, Options{URL: appURL, Timeout: 10 * time.Second, MaxConns: 1})
				ctx, cancel := tt.ctx()
				defer cancel()
				start := time.Now()
				_, err := c.Push(ctx, &Delivery{Path: "/e", Attempt: 1})
				if elapsed := time.Since(start); elapsed > 2*time.Second {
					t.Errorf("returned after %s, want soon after the context ended", elapsed)
				}
				for _, want := range tt.wantIs {
					if !errors.Is(err, want) {
						t.Errorf("got error %v, want it to wrap %v", err, want)
					}
				}
				if err == nil || !strings.HasSuffix(err.Error(), tt.wantText) {
					t.Errorf("got error %v, want it to end in %q", err, tt.wantText)
				}
				// The aborted connection must not go back to the pool.
				slow.Store(false)
				res, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 2})
				if err != nil || res.Status != http.StatusOK {
					t.Errorf("next push: got %d, %v; want 200, nil", res.Status, err)
				}
			})
		}
	}
}

func TestPush_with_a_context_already_done_sends_nothing(t *testing.T) {
	h, reqs := recorder(t)
	appURL, _ := startApp(t, "tcp", h)
	c := newClient(t, Options{URL: appURL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Push(ctx, &Delivery{Path: "/e", Attempt: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", err)
	}
	select {
	case r := <-reqs:
		t.Errorf("app got %s %s, want nothing", r.method, r.uri)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestPush_reports_why_there_is_no_answer(t *testing.T) {
	refusedTCP := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		return "http://" + l.Addr().String()
	}
	refusedUnix := func(t *testing.T) string {
		path := socketPath(t)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false) // a socket file nobody listens on
		l.Close()
		return "unix://" + path
	}
	missingUnix := func(t *testing.T) string { return "unix://" + socketPath(t) }
	// rawApp answers every connection with answer after reading the request head.
	rawApp := func(answer func(net.Conn)) func(t *testing.T) string {
		return func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			t.Cleanup(func() { l.Close(); wg.Wait() })
			wg.Go(func() {
				for {
					nc, err := l.Accept()
					if err != nil {
						return
					}
					buf := make([]byte, 4096)
					nc.Read(buf)
					answer(nc)
					nc.Close()
				}
			})
			return "http://" + l.Addr().String()
		}
	}
	tests := []struct {
		name     string
		app      func(t *testing.T) string
		wantIs   error
		wantText string // after "push to <url>/events/a: "
	}{
		{"tcp refused", refusedTCP, syscall.ECONNREFUSED, "dial: connection refused"},
		{"unix refused", refusedUnix, syscall.ECONNREFUSED, "dial: connection refused"},
		{"unix socket missing", missingUnix, syscall.ENOENT, "dial: no such file or directory"},
		{"closed without answer", rawApp(func(net.Conn) {}), ErrConnClosed, "read: connection closed before the answer"},
		{"reset", rawApp(func(nc net.Conn) { nc.(*net.TCPConn).SetLinger(0) }), syscall.ECONNRESET, "read: connection reset by peer"},
		{"not HTTP", rawApp(func(nc net.Conn) { io.WriteString(nc, "hello there\r\n\r\n") }), ErrBadAnswer, "read: malformed HTTP answer: "},
		{"truncated body", rawApp(func(nc net.Conn) {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
		}), ErrConnClosed, "read: connection closed before the answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appURL := tt.app(t)
			c := newClient(t, Options{URL: appURL})
			res, err := c.Push(context.Background(), &Delivery{Path: "/events/a", Attempt: 1})
			if err == nil {
				t.Fatalf("got %+v, nil; want an error", res)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("got error %v, want it to wrap %v", err, tt.wantIs)
			}
			if want := "push to " + appURL + "/events/a: " + tt.wantText; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got error %q, want %q", err, want)
			}
		})
	}
}

func TestPush_bounds_concurrency_to_MaxConns(t *testing.T) {
	var inFlight, peak atomic.Int32
	appURL, _ := startApp(t, "unix", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(5 * time.Millisecond)
	}))
	const maxConns = 3
	c := newClient(t, Options{URL: appURL, MaxConns: maxConns})
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if res, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1}); err != nil || res.Status != 200 {
				t.Errorf("got %d, %v; want 200, nil", res.Status, err)
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got > maxConns {
		t.Errorf("app saw %d requests at once, want at most %d", got, maxConns)
	}
}

func TestPush_rejects_an_invalid_path(t *testing.T) {
	h, reqs := recorder(t)
	appURL, _ := startApp(t, "tcp", h)
	c := newClient(t, Options{URL: appURL})
	for _, path := range []string{"", "events", "/a b", "/a\r\nX-Evil: 1"} {
		if _, err := c.Push(context.Background(), &Delivery{Path: path}); !errors.Is(err, subscription.ErrInvalidPath) {
			t.Errorf("path %q: got error %v, want ErrInvalidPath", path, err)
		}
	}
	select {
	case r := <-reqs:
		t.Errorf("app got %s %q, want nothing", r.method, r.uri)
	default:
	}
}

func TestClose(t *testing.T) {
	h, _ := recorder(t)
	appURL, _ := startApp(t, "tcp", h)
	c := newClient(t, Options{URL: appURL})
	if _, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close #%d: got %v, want nil", i+1, err)
		}
	}
	if got := c.hc.ConnsCount(); got != 0 {
		t.Errorf("got %d open connections after Close, want 0", got)
	}
	if _, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Push after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := c.Subscriptions(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscriptions after Close: got %v, want ErrClosed", err)
	}
}

func TestClose_closes_the_connection_of_a_push_in_flight(t *testing.T) {
	release := make(chan struct{})
	appURL, _ := startApp(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	c := newClient(t, Options{URL: appURL})
	done := make(chan error)
	go func() {
		_, err := c.Push(context.Background(), &Delivery{Path: "/e", Attempt: 1})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the push is waiting for the answer
	c.Close()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("push in flight during Close: got %v, want its answer", err)
	}
	if got := c.hc.ConnsCount(); got != 0 {
		t.Errorf("got %d open connections after the push ended, want 0", got)
	}
}

func TestNew_validates_options(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string // "" means valid
	}{
		{"tcp", Options{URL: "http://127.0.0.1:8080"}, ""},
		{"tcp default port", Options{URL: "http://localhost"}, ""},
		{"tcp ipv6", Options{URL: "http://[::1]:8080/"}, ""},
		{"tcp base path", Options{URL: "http://app:3000/hooks"}, ""},
		{"unix", Options{URL: "unix:///run/app.sock"}, ""},
		{"empty", Options{URL: ""}, `app URL "": scheme "": must be http or unix`},
		{"no scheme", Options{URL: "localhost:8080"}, `must be http or unix`},
		{"ftp", Options{URL: "ftp://x"}, `scheme "ftp": must be http or unix`},
		{"https", Options{URL: "https://app:443"}, "https is not supported"},
		{"no host", Options{URL: "http://"}, "no host"},
		{"user", Options{URL: "http://u:p@app:1"}, "without user, query or fragment"},
		{"query", Options{URL: "http://app:1/?x=1"}, "without user, query or fragment"},
		{"relative socket", Options{URL: "unix://app.sock"}, "needs an absolute path"},
		{"socket without path", Options{URL: "unix://"}, "needs an absolute path"},
		{"zero timeout", Options{URL: "http://app:1", Timeout: -1}, "app timeout -1ns: must be > 0"},
		{"zero conns", Options{URL: "http://app:1", MaxConns: -1}, "app max connections -1: must be > 0"},
		{"token with newline", Options{URL: "http://app:1", Token: "a\nb"}, "app token: contains a control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			if o.Timeout == 0 {
				o.Timeout = time.Second
			}
			if o.MaxConns == 0 {
				o.MaxConns = 1
			}
			c, err := New(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				c.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSubscriptions(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		want     []subscription.Subscription
		wantOK   bool
		wantIs   error
		wantText string
	}{
		{
			name: "list", status: 200,
			body:   `[{"pattern":"approval.*","path":"/events/approval"}, {"pattern":"**","path":"/all","note":"ignored"}]`,
			want:   []subscription.Subscription{{Pattern: "approval.*", Path: "/events/approval"}, {Pattern: "**", Path: "/all"}},
			wantOK: true,
		},
		{name: "empty list", status: 200, body: " [] ", want: []subscription.Subscription{}, wantOK: true},
		{name: "not found", status: 404, body: "no such route"},
		{name: "server error", status: 500, body: "boom", wantIs: ErrBadStatus, wantText: `unexpected status 500: "boom"`},
		{name: "redirect", status: 302, wantIs: ErrBadStatus, wantText: "unexpected status 302"},
		{name: "invalid JSON", status: 200, body: `[{"pattern":`, wantIs: ErrBadSubscriptions, wantText: "invalid subscription list: unexpected end of JSON input"},
		{name: "object", status: 200, body: `{"pattern":"a.*","path":"/a"}`, wantIs: ErrBadSubscriptions, wantText: "want a JSON array"},
		{name: "null", status: 200, body: `null`, wantIs: ErrBadSubscriptions, wantText: "want a JSON array"},
		{name: "no body", status: 204, wantIs: ErrBadSubscriptions, wantText: "want a JSON array"},
		{
			name: "invalid pattern", status: 200, body: `[{"pattern":"a.*","path":"/a"},{"pattern":"Approval.*","path":"/x"}]`,
			wantIs:   subscription.ErrInvalidPattern,
			wantText: `invalid subscription list: subscription 2 (pattern "Approval.*", path "/x"): invalid subscription pattern`,
		},
		{
			name: "missing path", status: 200, body: `[{"pattern":"a.*"}]`,
			wantIs: subscription.ErrInvalidPath, wantText: `subscription 1 (pattern "a.*", path ""): invalid subscription path "": empty`,
		},
		{
			name: "over 1 MiB", status: 200, body: "[" + strings.Repeat(" ", 1<<20) + "]",
			wantIs: ErrBadSubscriptions, wantText: "body larger than 1048576 bytes",
		},
	}
	for _, network := range networks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				reqs := make(chan received, 1)
				appURL, _ := startApp(t, network, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reqs <- received{method: r.Method, uri: r.RequestURI, header: r.Header.Clone()}
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
				}))
				c := newClient(t, Options{URL: appURL, Token: "tok"})
				got, ok, err := c.Subscriptions(context.Background())
				r := <-reqs
				if r.method != http.MethodGet || r.uri != "/hyvve/subscriptions" || r.header.Get("X-Hyvve-Token") != "tok" {
					t.Errorf("app got %s %s with token %q, want GET /hyvve/subscriptions with token tok", r.method, r.uri, r.header.Get("X-Hyvve-Token"))
				}
				if tt.wantIs != nil {
					if !errors.Is(err, tt.wantIs) {
						t.Errorf("got error %v, want it to wrap %v", err, tt.wantIs)
					}
					if want := "get " + appURL + "/hyvve/subscriptions: "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.wantText) {
						t.Errorf("got error %v, want one starting %q and containing %q", err, want, tt.wantText)
					}
					if got != nil || ok {
						t.Errorf("got %v, %v with the error; want nil, false", got, ok)
					}
					return
				}
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if ok != tt.wantOK || !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
					t.Errorf("got %#v, %v; want %#v, %v", got, ok, tt.want, tt.wantOK)
				}
			})
		}
	}
}

func TestSubscriptions_without_an_app(t *testing.T) {
	c := newClient(t, Options{URL: "unix://" + socketPath(t)})
	if _, _, err := c.Subscriptions(context.Background()); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("got error %v, want ENOENT (the app is not up yet)", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"120", 2 * time.Minute},
		{" 0 ", 0},
		{"Thu, 26 Nov 2026 10:01:30 GMT", 90 * time.Second},    // IMF-fixdate
		{"Thursday, 26-Nov-26 10:00:10 GMT", 10 * time.Second}, // RFC 850
		{"Thu Nov 26 10:00:05 2026", 5 * time.Second},          // asctime
		{"Thu, 26 Nov 2026 09:00:00 GMT", 0},                   // past
		{"-1", 0},
		{"1.5", 0},
		{"99999999999999999999", 0},
		{"", 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseRetryAfter([]byte(tt.in), now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
