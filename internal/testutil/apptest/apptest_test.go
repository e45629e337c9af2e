package apptest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client returns an HTTP client and base URL that reach app over TCP or its socket.
func client(t *testing.T, app *apptest.App) (*http.Client, string) {
	t.Helper()
	tr := &http.Transport{}
	base := app.URL()
	if sock, ok := strings.CutPrefix(base, "unix://"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://app"
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, base
}

func push(t *testing.T, c *http.Client, url, eventID, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Event-Id", eventID)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func getSubs(t *testing.T, c *http.Client, base string) (int, []apptest.Sub) {
	t.Helper()
	resp, err := c.Get(base + "/hyvve/subscriptions")
	if err != nil {
		t.Fatalf("GET subscriptions: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("subscriptions Content-Type = %q, want application/json", ct)
	}
	var subs []apptest.Sub
	if err := json.NewDecoder(resp.Body).Decode(&subs); err != nil {
		t.Fatalf("decode subscriptions: %v", err)
	}
	return resp.StatusCode, subs
}

func TestApp_records_pushes_with_the_handlers_status(t *testing.T) {
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request)
		want    int
	}{
		{name: "default answers 200", handler: nil, want: http.StatusOK},
		{name: "body without status is 200", handler: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }, want: http.StatusOK},
		{name: "rejection", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnprocessableEntity) }, want: http.StatusUnprocessableEntity},
		{name: "server error", handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, want: http.StatusInternalServerError},
	}
	for _, unix := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("unix=%v/%s", unix, tt.name), func(t *testing.T) {
				var opts []apptest.Option
				if unix {
					opts = append(opts, apptest.Unix())
				}
				app := apptest.New(t, opts...)
				if tt.handler != nil {
					app.SetHandler(tt.handler)
				}
				c, base := client(t, app)

				before := time.Now()
				if got := push(t, c, base+"/events/a", "ev-1", `{"id":"ev-1"}`); got != tt.want {
					t.Errorf("push answered %d, want %d", got, tt.want)
				}
				push(t, c, base+"/events/b", "ev-2", `{"id":"ev-2"}`)

				got := app.Received()
				if len(got) != 2 {
					t.Fatalf("Received() has %d pushes, want 2", len(got))
				}
				p := got[0]
				if p.Method != http.MethodPost || p.Path != "/events/a" || p.EventID != "ev-1" || string(p.Body) != `{"id":"ev-1"}` {
					t.Errorf("push 0 = %s %s id=%q body=%q, want POST /events/a id=\"ev-1\" body={\"id\":\"ev-1\"}", p.Method, p.Path, p.EventID, p.Body)
				}
				if p.Status != tt.want || p.Pending {
					t.Errorf("push 0 Status = %d, Pending = %v; want %d, false", p.Status, p.Pending, tt.want)
				}
				if ct := p.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("push 0 Content-Type = %q, want application/json", ct)
				}
				if p.At.Before(before) || p.At.After(time.Now()) {
					t.Errorf("push 0 At = %v, want between %v and now", p.At, before)
				}
				if got[1].EventID != "ev-2" {
					t.Errorf("push 1 EventID = %q, want ev-2 (arrival order)", got[1].EventID)
				}

				// Received returns copies: changing them must not change the record.
				got[0].Body[0] = 'X'
				got[0].Header.Set("X-Event-Id", "changed")
				again := app.Received()[0]
				if string(again.Body) != `{"id":"ev-1"}` || again.Header.Get("X-Event-Id") != "ev-1" {
					t.Errorf("after mutating a copy, record = %q / %q, want it unchanged", again.Body, again.Header.Get("X-Event-Id"))
				}
			})
		}
	}
}

func TestApp_handler_reads_the_body(t *testing.T) {
	app := apptest.New(t)
	seenc := make(chan string, 1)
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seenc <- string(b)
	})
	c, base := client(t, app)
	push(t, c, base+"/e", "1", `{"a":1}`)
	if seen := <-seenc; seen != `{"a":1}` {
		t.Errorf("handler read body %q, want {\"a\":1}", seen)
	}
	if got := string(app.Received()[0].Body); got != `{"a":1}` {
		t.Errorf("recorded body %q, want {\"a\":1}", got)
	}
}

func TestApp_serves_subscriptions(t *testing.T) {
	subA := apptest.Sub{Pattern: "approval.*", Path: "/events/approval"}
	subB := apptest.Sub{Pattern: "crm.**", Path: "/events/crm"}
	for _, unix := range []bool{false, true} {
		t.Run(fmt.Sprint("unix=", unix), func(t *testing.T) {
			opts := []apptest.Option{apptest.WithSubscriptions(subA)}
			if unix {
				opts = append(opts, apptest.Unix())
			}
			app := apptest.New(t, opts...)
			c, base := client(t, app)

			steps := []struct {
				name       string
				change     func()
				wantStatus int
				wantSubs   []apptest.Sub
			}{
				{"initial", func() {}, 200, []apptest.Sub{subA}},
				{"set two", func() { app.SetSubscriptions(subA, subB) }, 200, []apptest.Sub{subA, subB}},
				{"set none is an empty list", func() { app.SetSubscriptions() }, 200, []apptest.Sub{}},
				{"starting is 503", func() { app.SetStarting(true) }, 503, nil},
				{"started serves them again", func() { app.SetStarting(false); app.SetSubscriptions(subB) }, 200, []apptest.Sub{subB}},
			}
			for i, st := range steps {
				st.change()
				status, subs := getSubs(t, c, base)
				if status != st.wantStatus {
					t.Errorf("%s: status %d, want %d", st.name, status, st.wantStatus)
				}
				if !reflect.DeepEqual(subs, st.wantSubs) {
					t.Errorf("%s: subscriptions %+v, want %+v", st.name, subs, st.wantSubs)
				}
				if got := app.SubscriptionCalls(); got != i+1 {
					t.Errorf("%s: SubscriptionCalls() = %d, want %d", st.name, got, i+1)
				}
			}
			if n := len(app.Received()); n != 0 {
				t.Errorf("subscription calls recorded as %d pushes, want 0", n)
			}
		})
	}
}

func TestApp_without_subscriptions_answers_404(t *testing.T) {
	app := apptest.New(t)
	c, base := client(t, app)
	if status, _ := getSubs(t, c, base); status != http.StatusNotFound {
		t.Errorf("status %d, want 404", status)
	}
	if got := app.SubscriptionCalls(); got != 1 {
		t.Errorf("SubscriptionCalls() = %d, want 1", got)
	}
}

func TestApp_unix_URL_is_a_socket(t *testing.T) {
	app := apptest.New(t, apptest.Unix())
	sock, ok := strings.CutPrefix(app.URL(), "unix:///")
	if !ok || !strings.HasSuffix(sock, "/app.sock") {
		t.Fatalf("URL() = %q, want unix:///…/app.sock", app.URL())
	}
	conn, err := net.Dial("unix", "/"+sock)
	if err != nil {
		t.Fatalf("dial socket: %v", err)
	}
	conn.Close()

	tcp := apptest.New(t)
	if !strings.HasPrefix(tcp.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:<port>", tcp.URL())
	}
}

func TestApp_slow_handler_records_no_answer_when_the_caller_gives_up(t *testing.T) {
	app := apptest.New(t)
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c, base := client(t, app)
	c.Timeout = 100 * time.Millisecond
	if _, err := c.Post(base+"/slow", "application/json", strings.NewReader("{}")); err == nil {
		t.Fatalf("POST to a blocked handler succeeded, want a client timeout")
	}
	app.WaitFor(t, 5*time.Second, "the abandoned push", func(p []apptest.Push) bool { return len(p) == 1 && !p[0].Pending })
	if got := app.Received()[0].Status; got != 0 {
		t.Errorf("Status of abandoned push = %d, want 0 (no answer)", got)
	}
}

func TestApp_lists_pushes_in_flight_as_pending_in_arrival_order(t *testing.T) {
	app := apptest.New(t)
	release := make(chan struct{})
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			<-release
			w.WriteHeader(http.StatusAccepted)
		}
	})
	c, base := client(t, app)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := c.Post(base+"/first", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	app.WaitFor(t, 5*time.Second, "the blocked push", func(p []apptest.Push) bool { return len(p) == 1 })
	if p := app.Received()[0]; !p.Pending || p.Status != 0 {
		t.Errorf("blocked push: Pending = %v, Status = %d; want true, 0", p.Pending, p.Status)
	}
	push(t, c, base+"/second", "2", "{}")
	close(release)
	<-done
	app.WaitFor(t, 5*time.Second, "both answered", func(p []apptest.Push) bool {
		return len(p) == 2 && !p[0].Pending && !p[1].Pending
	})
	got := app.Received()
	if got[0].Path != "/first" || got[0].Status != 202 || got[1].Path != "/second" || got[1].Status != 200 {
		t.Errorf("pushes = %s %d, %s %d; want /first 202, /second 200", got[0].Path, got[0].Status, got[1].Path, got[1].Status)
	}
}

func TestApp_cleanup_releases_blocked_handlers(t *testing.T) {
	returned := make(chan error, 1)
	t.Run("inner", func(t *testing.T) {
		app := apptest.New(t)
		entered := make(chan struct{})
		app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
		})
		c, base := client(t, app)
		c.Timeout = 0 // only cleanup may end this request
		go func() {
			resp, err := c.Post(base+"/block", "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
			}
			returned <- err
		}()
		<-entered
	})
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatalf("request to a blocked handler still pending 5s after the app's cleanup")
	}
}

func TestWaitFor_returns_when_pushes_arrive(t *testing.T) {
	app := apptest.New(t)
	c, base := client(t, app)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			time.Sleep(time.Duration(i*20) * time.Millisecond)
			req, _ := http.NewRequest(http.MethodPost, base+"/e", strings.NewReader("{}"))
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	start := time.Now()
	app.WaitFor(t, 5*time.Second, "3 pushes", func(p []apptest.Push) bool { return len(p) == 3 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WaitFor returned after %v, want soon after the third push", d)
	}
	wg.Wait()
}

func TestWaitFor_fails_with_a_summary(t *testing.T) {
	app := apptest.New(t)
	c, base := client(t, app)
	push(t, c, base+"/events/x", "ev-9", "{}")

	ft := &fatalTB{TB: t}
	ft.run(func() {
		app.WaitFor(ft, 50*time.Millisecond, "event ev-10", func(p []apptest.Push) bool { return false })
	})
	for _, want := range []string{"event ev-10", "got 1 pushes", "/events/x", "ev-9", "200"} {
		if !strings.Contains(ft.fatal, want) {
			t.Errorf("fatal message %q does not contain %q", ft.fatal, want)
		}
	}
}

// fatalTB records the first Fatal instead of failing the real test.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
