package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// limitServer is a local API with a publisher that accepts everything,
// served until the test ends.
type limitServer struct {
	*Server
	url string
}

func startLimitServer(t *testing.T, o Options) limitServer {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	if o.DefaultTenant == "" {
		o.DefaultTenant = "acme"
	}
	s, err := New(o, nopPublisher{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return limitServer{Server: s, url: "http://" + s.Addr()}
}

// dial opens a raw connection to the server, closed when the test ends.
func (ls limitServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ls.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// publish posts one event with a fresh client and returns the status.
func (ls limitServer) publish(t *testing.T) int {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Post(ls.url+"/v1/events", "application/json", strings.NewReader(`{"type":"user.joined"}`))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// readResponse reads one HTTP response from c (deadline: 5 s) and its body.
func readResponse(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLimits_defaults(t *testing.T) {
	s, err := New(Options{Listen: "127.0.0.1:0"}, nopPublisher{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := []any{s.srv.ReadTimeout, s.srv.WriteTimeout, s.srv.IdleTimeout, s.srv.ReadBufferSize, s.srv.MaxConnsPerIP,
		s.srv.StreamRequestBody, s.srv.DisablePreParseMultipartForm, s.srv.SecureErrorLogMessage}
	want := []any{10 * time.Second, 30 * time.Second, 2 * time.Minute, 16 << 10, 0, true, true, true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got read, write, idle timeouts, header limit, per-IP cap, streaming, no multipart, secure logs %v, want %v", got, want)
	}
	n := cap(s.tcp.(*capListener).slots)
	if n < minMaxConns || n > DefaultMaxConns || n != defaultMaxConns() {
		t.Errorf("got connection cap %d, want defaultMaxConns() = %d, between %d and %d", n, defaultMaxConns(), minMaxConns, DefaultMaxConns)
	}
	if lim := openFileLimit(); lim >= 4*DefaultMaxConns && n != DefaultMaxConns {
		t.Errorf("open-file limit %d: got connection cap %d, want %d", lim, n, DefaultMaxConns)
	}
}

// TestLimits_slow_clients_are_cut_off_within_the_read_timeout: a client that
// sends its request a byte at a time (slowloris), or sends nothing, holds
// its connection at most the read timeout; then the server closes it.
func TestLimits_slow_clients_are_cut_off_within_the_read_timeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	ls := startLimitServer(t, Options{ReadTimeout: readTimeout})
	tests := []struct {
		name    string
		start   string // sent at once
		trickle string // then one byte every 50 ms, repeated
	}{
		{"headers trickle", "POST /v1/events HTTP/1.1\r\nHost: sidecar\r\n", "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"body trickles", "POST /v1/events HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
			`{"type":"user.joined","data":{"x":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`},
		{"chunked body trickles", "POST /v1/events/batch HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
			"1\r\na\r\n"},
		{"sends nothing", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ls.dial(t)
			start := time.Now()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.WriteString(c, tt.start); err != nil || tt.trickle == "" {
					return
				}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if _, err := c.Write([]byte{tt.trickle[i%len(tt.trickle)]}); err != nil {
						return
					}
				}
			}()
			defer func() { close(stop); wg.Wait() }()

			// The server answers 408 (or nothing) and closes: reading ends.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			took := time.Since(start)
			if err != nil {
				var ne net.Error
				if errorsAs(err, &ne) && ne.Timeout() {
					t.Fatalf("the connection was still open after %s (read timeout %s)", took, readTimeout)
				}
			}
			if took > readTimeout+time.Second {
				t.Errorf("closed after %s, want within the read timeout %s (+1 s)", took, readTimeout)
			}
			if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 408 ") {
				t.Errorf("got answer %q, want 408 or none", firstLine(got))
			}
		})
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// TestLimits_header_over_the_limit_gets_431: a 64 KiB header is answered 431
// and the connection closed, not a hang; headers well under the limit pass.
func TestLimits_header_over_the_limit_gets_431(t *testing.T) {
	ls := startLimitServer(t, Options{})
	tests := []struct {
		name       string
		headerSize int
		wantStatus int
	}{
		{"12 KiB of headers", 12 << 10, 200},
		{"64 KiB header", 64 << 10, 431},
		{"1 MiB header", 1 << 20, 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ls.dial(t)
			req := "GET /healthz HTTP/1.1\r\nHost: sidecar\r\nX-Big: " + strings.Repeat("a", tt.headerSize) + "\r\n\r\n"
			go func() { _, _ = io.WriteString(c, req) }() // the server may answer before it has read it all
			resp, body := readResponse(t, c)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == 431 && !strings.Contains(body, `"code":"header_too_large"`) {
				t.Errorf("got body %s, want the error code header_too_large", body)
			}
		})
	}
}

// TestLimits_bodies_over_the_limit_get_413: each route has its body limit;
// the client gets the 413 (the server reads and drops the rest of a body up
// to the batch limit, and closes the connection after a larger one).
func TestLimits_bodies_over_the_limit_get_413(t *testing.T) {
	ls := startLimitServer(t, Options{MaxEventBytes: 1000, AdminToken: "admin-secret", Replays: &fakeReplays{job: testJob}})
	event := func(n int) string { return `{"type":"user.joined","data":{"x":"` + strings.Repeat("a", n) + `"}}` }
	chunked := func(body string) string {
		var b strings.Builder
		for len(body) > 0 {
			n := min(len(body), 300)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		return b.String() + "0\r\n\r\n"
	}
	tests := []struct {
		name      string
		head      string // request line and headers, without the blank line
		body      string
		announce  int // Content-Length, of which only body is sent; 0 = len(body), or chunked
		want      int
		wantCode  string
		wantClose bool
	}{
		{"event under the limit", "POST /v1/events HTTP/1.1\r\nContent-Type: application/json", event(500), 0, 202, "", false},
		{"event over the limit", "POST /v1/events HTTP/1.1\r\nContent-Type: application/json", event(1000), 0, 413, "event_too_large", false},
		{"chunked event over the limit", "POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
			chunked(event(1000)), -1, 413, "event_too_large", false},
		{"batch over 16 MiB", "POST /v1/events/batch HTTP/1.1\r\nContent-Type: application/json",
			`{"events":[` + strings.Repeat(" ", 64<<10), 16<<20 + 1, 413, "too_large", true},
		{"event over 16 MiB", "POST /v1/events HTTP/1.1\r\nContent-Type: application/json",
			event(64 << 10), 16<<20 + 1, 413, "event_too_large", true},
		{"replay over 64 KiB", "POST /v1/admin/replays HTTP/1.1\r\nAuthorization: Bearer admin-secret\r\nContent-Type: application/json",
			`{"tenantId":"` + strings.Repeat("a", 64<<10) + `"}`, 0, 413, "too_large", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ls.dial(t)
			req := tt.head + "\r\nHost: sidecar\r\n"
			switch {
			case tt.announce > 0:
				req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", tt.announce, tt.body)
			case tt.announce == 0:
				req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(tt.body), tt.body)
			default:
				req += "\r\n" + tt.body
			}
			go func() { _, _ = io.WriteString(c, req) }()
			resp, body := readResponse(t, c)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.wantCode != "" && !strings.Contains(body, `"code":"`+tt.wantCode+`"`) {
				t.Errorf("got body %s, want the error code %s", body, tt.wantCode)
			}
			if resp.Close != tt.wantClose {
				t.Errorf("got Connection: close %v, want %v", resp.Close, tt.wantClose)
			}
			if !tt.wantClose { // the connection still serves
				if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				if resp, body := readResponse(t, c); resp.StatusCode != 200 {
					t.Errorf("next request on the connection: got %d %s, want 200", resp.StatusCode, body)
				}
			}
		})
	}
}

// TestLimits_metrics_ignores_a_request_body: a scrape that carries a body
// (announced 100 MiB, a few bytes sent) is answered at once, without reading
// the body; the connection is closed after it.
func TestLimits_metrics_ignores_a_request_body(t *testing.T) {
	ls := startLimitServer(t, Options{ReadTimeout: 5 * time.Second})
	c := ls.dial(t)
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: sidecar\r\nContent-Length: 104857600\r\n\r\n"+strings.Repeat("x", 10<<10)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, body := readResponse(t, c)
	if resp.StatusCode != 200 || !strings.Contains(body, "# HELP ") {
		t.Fatalf("got %d %.200s, want 200 with the metrics", resp.StatusCode, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("answered after %s, want at once (the body is not read)", took)
	}
	if !resp.Close {
		t.Errorf("got a kept-alive connection, want it closed (100 MiB of body left unread)")
	}
}

// TestLimits_announced_bodies_take_no_memory_until_they_arrive: clients that
// announce 16 MiB batches and send a few bytes (slow or stuck clients) hold
// the memory of what they sent, not of what they announced.
func TestLimits_announced_bodies_take_no_memory_until_they_arrive(t *testing.T) {
	ls := startLimitServer(t, Options{ReadTimeout: 5 * time.Second})
	const clients = 16
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range clients {
		c := ls.dial(t)
		head := fmt.Sprintf("POST /v1/events/batch HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\n\r\n{\"events\":[", 16<<20)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ls.srv.GetOpenConnectionsCount() < clients && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the server read what arrived
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > clients<<20 {
		t.Errorf("the heap grew by %d MiB for %d clients that each sent a few bytes of a 16 MiB body, want under 1 MiB each",
			grew>>20, clients)
	}
}

// TestLimits_connections_are_capped_per_listener: beyond MaxConns a new
// connection is answered 503 with the API's JSON error and closed; a freed
// slot serves again.
func TestLimits_connections_are_capped_per_listener(t *testing.T) {
	const maxConns = 8
	ls := startLimitServer(t, Options{MaxConns: maxConns})
	idle := make([]net.Conn, maxConns)
	for i := range idle {
		idle[i] = ls.dial(t)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ls.srv.GetOpenConnectionsCount() < maxConns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	extra := ls.dial(t)
	_ = extra.SetDeadline(time.Now().Add(5 * time.Second))
	// Like a real client, it sends its request at once; the answer must
	// still arrive, not a reset connection.
	if _, err := extra.Write([]byte("POST /v1/events HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(extra)
	if err != nil {
		t.Fatalf("connection %d: read the answer: %v (got %q)", maxConns+1, err, got)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 503 ") {
		t.Fatalf("connection %d: got %q, want a 503 and the connection closed", maxConns+1, firstLine(got))
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := resp.Read(bufio.NewReader(bytes.NewReader(got))); err != nil {
		t.Fatalf("connection %d: the 503 is not an HTTP response: %v", maxConns+1, err)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(resp.Body(), &body); err != nil || body.Error.Code != "too_many_connections" || body.Error.Message == "" {
		t.Errorf("connection %d: got body %q (%v), want the JSON error too_many_connections", maxConns+1, resp.Body(), err)
	}
	if ct, ra := string(resp.Header.ContentType()), string(resp.Header.Peek("Retry-After")); ct != "application/json" || ra != "1" {
		t.Errorf("connection %d: got Content-Type %q, Retry-After %q, want application/json, 1", maxConns+1, ct, ra)
	}
	idle[0].Close()
	deadline = time.Now().Add(5 * time.Second)
	for ls.srv.GetOpenConnectionsCount() >= maxConns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if status := ls.publish(t); status != 202 {
		t.Errorf("publish after a connection closed: got %d, want 202", status)
	}
	// Refusals are logged once; the metric counts each. Asked on a
	// connection that holds a slot already, so the question is never refused.
	if _, err := idle[1].Write([]byte("GET /metrics HTTP/1.1\r\nHost: sidecar\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_, metrics := readResponse(t, idle[1])
	if want := "\nhyvve_local_connections_refused_total 1\n"; !strings.Contains(metrics, want) {
		t.Errorf("/metrics: want %q in it", strings.TrimSpace(want))
	}
}

// TestLimits_a_burst_of_idle_connections_does_not_stop_a_publish: 1,000
// connections that send nothing, or made one request and stay open
// (keep-alive), leave the default limits room for the app's publish.
func TestLimits_a_burst_of_idle_connections_does_not_stop_a_publish(t *testing.T) {
	const burst = 1000
	if lim := openFileLimit(); lim != 0 && lim < 2*burst+200 {
		t.Skipf("open-file limit %d is too low for %d connections and their server ends", lim, burst)
	}
	ls := startLimitServer(t, Options{})
	if ls.srv.Concurrency <= burst {
		t.Fatalf("connection cap %d, want over %d", ls.srv.Concurrency, burst)
	}
	conns := make([]net.Conn, burst)
	for i := range conns {
		conns[i] = ls.dial(t)
		if i%2 == 1 { // a keep-alive connection after one request
			if _, err := io.WriteString(conns[i], "GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i < burst; i += 2 {
		if resp, body := readResponse(t, conns[i]); resp.StatusCode != 200 {
			t.Fatalf("connection %d: got %d %s, want 200", i, resp.StatusCode, body)
		}
	}
	start := time.Now()
	if status := ls.publish(t); status != 202 {
		t.Fatalf("publish beside %d idle connections: got %d, want 202", burst, status)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("publish beside %d idle connections took %s, want well under 2 s", burst, took)
	}
}

// TestLimits_request_contents_are_never_logged: a malformed request that
// carries a token is answered 400, and even the debug log does not quote it.
func TestLimits_request_contents_are_never_logged(t *testing.T) {
	var logs syncBuffer
	ls := startLimitServer(t, Options{APIToken: "api-sekret", Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	c := ls.dial(t)
	if _, err := io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer api-sekret\r\nBroken header line without colon\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, body := readResponse(t, c)
	if resp.StatusCode != 400 {
		t.Fatalf("got %d %s, want 400", resp.StatusCode, body)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond) // fasthttp logs after the connection ends
	for name, s := range map[string]string{"the answer": body, "the log": logs.String()} {
		if strings.Contains(s, "sekret") {
			t.Errorf("%s quotes the request's token: %s", name, s)
		}
	}
}

// syncBuffer is a strings.Builder safe for concurrent writes (logs).
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
