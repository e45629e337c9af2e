// Package apptest runs a fake HYVVE app: a real HTTP server that the sidecar loads
// subscriptions from and pushes events to, and that records every push for assertions.
//
// The app serves GET /hyvve/subscriptions from the subscriptions it was given and
// treats every other request as a push. An *App is safe for concurrent use; functions
// that take a testing.TB report failures with t.Fatal and must be called from the
// goroutine running the test.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// SubscriptionsPath is where the sidecar loads an app's subscriptions from.
	SubscriptionsPath = "/hyvve/subscriptions"
	// maxBodyBytes bounds a recorded push body; larger bodies are answered 413.
	maxBodyBytes = 64 << 20
	// releaseTimeout bounds how long cleanup waits for blocked handlers to return
	// after their request contexts were canceled.
	releaseTimeout = 5 * time.Second
	// maxSockPath keeps socket paths under the 108-byte sun_path limit.
	maxSockPath = 100
)

// Sub is one subscription as the app declares it.
type Sub struct {
	Pattern string `json:"pattern"`
	Path    string `json:"path"`
}

// Push is one request the sidecar made to the app. It is recorded as soon as its body
// has arrived (Pending while the handler runs) and completed when the handler returns.
type Push struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// EventID is the X-Event-Id header (empty when the sidecar did not send one).
	EventID string
	// At is when the request arrived.
	At time.Time
	// Pending is true while the handler is still deciding; Status is then 0.
	Pending bool
	// Status is what the handler answered: the status it wrote, 200 if it wrote none,
	// or 0 if it returned without writing after the request's context ended (the
	// sidecar gave up or the app was closed), i.e. the sidecar got no answer.
	Status int
}

// Option configures New.
type Option func(*App)

// WithSubscriptions makes the app serve subs at GET /hyvve/subscriptions. Without it
// that path answers 404, like an app that declares no subscriptions.
func WithSubscriptions(subs ...Sub) Option {
	return func(a *App) { a.subs = append([]Sub{}, subs...) }
}

// Unix makes the app listen on a Unix socket in a temp dir instead of TCP.
func Unix() Option {
	return func(a *App) { a.unix = true }
}

// App is a fake app owned by one test.
type App struct {
	unix bool
	url  string
	srv  *http.Server

	mu       sync.Mutex // guards the fields below
	subs     []Sub      // nil → 404
	starting bool       // → 503 on GET /hyvve/subscriptions
	subCalls int
	handler  func(http.ResponseWriter, *http.Request)
	pushes   []Push        // in arrival order
	changed  chan struct{} // closed and replaced whenever pushes changes
}

// New starts an app on a free 127.0.0.1 port (or a Unix socket with Unix()) and closes
// it in t.Cleanup. Cleanup cancels the context of every request still in a handler,
// waits up to 5 s for handlers to return, and fails the test if one does not.
func New(t testing.TB, opts ...Option) *App {
	t.Helper()
	a := &App{changed: make(chan struct{})}
	for _, o := range opts {
		o(a)
	}

	var (
		l   net.Listener
		err error
	)
	if a.unix {
		sock := filepath.Join(socketDir(t), "app.sock")
		l, err = net.Listen("unix", sock)
		a.url = "unix://" + sock
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			a.url = "http://" + l.Addr().String()
		}
	}
	if err != nil {
		t.Fatalf("apptest.New: listen: %v", err)
	}

	base, cancel := context.WithCancel(context.Background())
	a.srv = &http.Server{
		Handler:           http.HandlerFunc(a.serveHTTP),
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = a.srv.Serve(l) // returns http.ErrServerClosed after Shutdown or Close
	}()

	t.Cleanup(func() {
		cancel() // releases handlers blocked on r.Context()
		ctx, stop := context.WithTimeout(context.Background(), releaseTimeout)
		defer stop()
		if err := a.srv.Shutdown(ctx); err != nil {
			_ = a.srv.Close()
			t.Errorf("apptest: handlers still running %v after cleanup canceled their requests (a SetHandler func must honor r.Context()): %v", releaseTimeout, err)
		}
		<-served
	})
	return a
}

// socketDir returns t.TempDir(), or a shorter temp dir removed at cleanup when the
// test's name would make the socket path too long.
func socketDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir)+len("/app.sock") <= maxSockPath {
		return dir
	}
	dir, err := os.MkdirTemp("", "apptest")
	if err != nil {
		t.Fatalf("apptest: socket dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// URL returns the app's URL as passed to the sidecar's --app-url:
// "http://127.0.0.1:port" or "unix:///path/app.sock".
func (a *App) URL() string { return a.url }

// SetSubscriptions replaces the subscriptions served at GET /hyvve/subscriptions.
// With no arguments the app serves an empty list.
func (a *App) SetSubscriptions(subs ...Sub) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subs = append([]Sub{}, subs...)
}

// SetStarting(true) makes GET /hyvve/subscriptions answer 503, like an app that is
// still starting; SetStarting(false) serves the subscriptions again.
func (a *App) SetStarting(starting bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starting = starting
}

// SubscriptionCalls returns how many times GET /hyvve/subscriptions was served,
// including 404 and 503 answers.
func (a *App) SubscriptionCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subCalls
}

// SetHandler sets how pushes are answered; nil restores the default, 200 with an empty
// body. h is called concurrently, may block to simulate a slow app and must return
// once r.Context() is done. It may read r.Body, which holds the whole push body. The
// push is Pending while h runs; its Status is recorded when h returns.
func (a *App) SetHandler(h func(w http.ResponseWriter, r *http.Request)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handler = h
}

// Received returns a copy of every push so far, in arrival order, including those whose
// handler is still running (Pending).
func (a *App) Received() []Push {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Push, len(a.pushes))
	for i, p := range a.pushes {
		p.Header = p.Header.Clone()
		p.Body = bytes.Clone(p.Body)
		out[i] = p
	}
	return out
}

// WaitFor blocks until pred(Received()) is true, or fails the test after timeout with
// what was waited for and a summary of the pushes that arrived. pred is called on the
// test's goroutine, again whenever a push arrives or is answered.
func (a *App) WaitFor(t testing.TB, timeout time.Duration, what string, pred func([]Push) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		changed := a.changed
		a.mu.Unlock()
		got := a.Received()
		if pred(got) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("apptest: waited %v for %s; got %d pushes:\n%s", timeout, what, len(got), Summary(got))
		}
	}
}

// Summary formats pushes one per line (method, path, status, event id, type and
// delivery attempt), for failure messages. Only the last 50 are listed.
func Summary(pushes []Push) string {
	const max = 50
	var b strings.Builder
	start := 0
	if len(pushes) > max {
		start = len(pushes) - max
		fmt.Fprintf(&b, "  … %d earlier pushes\n", start)
	}
	for i, p := range pushes[start:] {
		status := strconv.Itoa(p.Status)
		if p.Pending {
			status = "pending"
		}
		fmt.Fprintf(&b, "  #%d %s %s → %s event=%s type=%s attempt=%s at=%s\n",
			start+i+1, p.Method, p.Path, status, p.EventID,
			p.Header.Get("X-Event-Type"), p.Header.Get("X-Delivery-Attempt"),
			p.At.Format("15:04:05.000"))
	}
	return b.String()
}

func (a *App) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == SubscriptionsPath && r.Method == http.MethodGet {
		a.serveSubscriptions(w, r)
		return
	}
	at := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "body too large for apptest", http.StatusRequestEntityTooLarge)
		}
		return // the sidecar went away mid-body: nothing was pushed
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	a.mu.Lock()
	h := a.handler
	i := len(a.pushes)
	a.pushes = append(a.pushes, Push{
		Method:  r.Method,
		Path:    r.URL.Path,
		Header:  r.Header.Clone(),
		Body:    body,
		EventID: r.Header.Get("X-Event-Id"),
		At:      at,
		Pending: true,
	})
	a.notifyLocked()
	a.mu.Unlock()

	rw := &statusWriter{ResponseWriter: w}
	if h != nil {
		h(rw, r)
	}
	status := rw.status
	if status == 0 && r.Context().Err() == nil {
		status = http.StatusOK // net/http sends 200 when the handler writes nothing
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	a.pushes[i].Pending = false
	a.pushes[i].Status = status
	a.notifyLocked()
}

// notifyLocked wakes every WaitFor. a.mu must be held.
func (a *App) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *App) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.subCalls++
	subs, starting := a.subs, a.starting
	a.mu.Unlock()
	if starting {
		http.Error(w, "app is starting", http.StatusServiceUnavailable)
		return
	}
	if subs == nil {
		http.NotFound(w, r)
		return
	}
	body, err := json.Marshal(subs)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// statusWriter remembers the status the handler sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
