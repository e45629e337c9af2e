package e2e

// Polyglot tests: the Node and Python example apps (examples/) against real
// sidecars and a real Redis. They skip when node or python3 is not on PATH.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

const (
	appStopWait  = 10 * time.Second
	demoTimeout  = 60 * time.Second
	flowTimeout  = 30 * time.Second
	unitTestWait = 2 * time.Minute
)

var traceIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// needTool returns the path of a command. When it is missing the test is
// skipped, except under CI (CI set), where .ci/run installs it and a skip
// would hide a broken install.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not on PATH under CI: %v", name, err)
		}
		t.Skipf("%s is not on PATH, so the %s example cannot run: %v", name, name, err)
	}
	return p
}

// exampleDir returns the absolute path of examples/<lang>.
func exampleDir(t *testing.T, lang string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples", lang))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("example directory: %v", err)
	}
	return dir
}

// freeTCPPort returns a 127.0.0.1 port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// appEnv is os.Environ() without HYVVE_* and PORT, followed by extra. Python
// writes no __pycache__ into examples/.
func appEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYVVE_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PYTHONDONTWRITEBYTECODE=1")
	return append(env, extra...)
}

// appProc is one example app process owned by a test. Its stdout is read
// as JSON lines (one per event it sent or received).
type appProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	out  lineLog
}

// lineLog collects a process's output and the JSON lines of its stdout;
// safe for concurrent use.
type lineLog struct {
	mu      sync.Mutex // guards all, partial and lines
	all     bytes.Buffer
	partial []byte
	lines   []map[string]any
}

// stdout returns the writer for the process's stdout: it keeps every
// complete line that is a JSON object.
func (l *lineLog) stdout() *jsonLineWriter { return &jsonLineWriter{l: l} }

type jsonLineWriter struct{ l *lineLog }

func (w *jsonLineWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.l.all.Write(p)
	w.l.partial = append(w.l.partial, p...)
	for {
		i := bytes.IndexByte(w.l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := bytes.TrimSpace(w.l.partial[:i])
		w.l.partial = w.l.partial[i+1:]
		var m map[string]any
		if len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &m) == nil {
			w.l.lines = append(w.l.lines, m)
		}
	}
}

// Write takes stderr: kept for the failure log only.
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.Write(p)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (l *lineLog) find(pred func(map[string]any) bool) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if pred(m) {
			return m
		}
	}
	return nil
}

func (l *lineLog) count(pred func(map[string]any) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.lines {
		if pred(m) {
			n++
		}
	}
	return n
}

// startApp runs argv in dir with env (see appEnv). At cleanup a still
// running app gets SIGTERM and must exit 0 within 10 s; its output is logged
// if the test failed.
func startApp(t *testing.T, name, dir string, env []string, argv ...string) *appProc {
	t.Helper()
	a := &appProc{name: name, done: make(chan struct{})}
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Dir = dir
	a.cmd.Env = appEnv(env...)
	a.cmd.Stdout = a.out.stdout()
	a.cmd.Stderr = &a.out
	a.cmd.WaitDelay = time.Second
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = a.cmd.Wait() // the status is read from ProcessState
		close(a.done)
	}()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, a.out.String())
		}
	})
	return a
}

func (a *appProc) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// stop ends the app with SIGTERM, as Kubernetes would, and fails the test
// unless it exits 0 in time.
func (a *appProc) stop(t *testing.T) {
	if !a.exited() {
		if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("SIGTERM %s: %v", a.name, err)
		}
		select {
		case <-a.done:
		case <-time.After(appStopWait):
			_ = a.cmd.Process.Kill()
			<-a.done
			t.Errorf("%s did not exit within %s of SIGTERM; killed it", a.name, appStopWait)
			return
		}
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exit code: got %d, want 0", a.name, code)
	}
}

// waitLine waits for a JSON line of the app that pred accepts and returns it.
func (a *appProc) waitLine(t *testing.T, timeout time.Duration, what string, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := a.out.find(pred); m != nil {
			return m
		}
		if a.exited() {
			t.Fatalf("%s exited with code %d before logging %s", a.name, a.cmd.ProcessState.ExitCode(), what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %s within %s", a.name, what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func is(action, typ string) func(map[string]any) bool {
	return func(m map[string]any) bool { return str(m, "action") == action && str(m, "type") == typ }
}

// TestPolyglot_node_request_and_python_decision_share_correlation_and_trace_id
// runs the two example services, each beside its own sidecar in its own
// consumer group: the Node "approvals" app publishes approval.requested over
// TCP; the Python "policy" app, which talks to its sidecar over the Unix
// socket with an API token and checks the app token, receives it and publishes
// the decision from inside its handler; the Node app receives the decision.
// All four sides see one correlation id and one trace id. Both sidecars run
// with --strict-types: the apps' events must match the core event schemas.
func TestPolyglot_node_request_and_python_decision_share_correlation_and_trace_id(t *testing.T) {
	node, python := needTool(t, "node"), needTool(t, "python3")
	rdb := redistest.Start(t)

	// The policy side is ready first, so its group exists before the request is published.
	policyPort := freeTCPPort(t)
	policySC := sidecartest.Start(t, sidecartest.Options{Socket: true, NoWait: true, Args: []string{
		"--redis-url", rdb.URL(), "--group", "policy", "--log-level", "debug", "--strict-types",
		"--app-url", fmt.Sprintf("http://127.0.0.1:%d", policyPort),
		"--api-token", "api-secret", "--app-token", "app-secret",
	}})
	policy := startApp(t, "policy.py", exampleDir(t, "python"), []string{
		"HYVVE_SIDECAR_URL=unix://" + policySC.SocketPath(),
		fmt.Sprintf("PORT=%d", policyPort),
		"HYVVE_API_TOKEN=api-secret", "HYVVE_APP_TOKEN=app-secret",
	}, python, "policy.py")
	policySC.WaitReady(t, 20*time.Second)

	approvalsPort := freeTCPPort(t)
	approvalsSC := sidecartest.Start(t, sidecartest.Options{NoWait: true, Args: []string{
		"--redis-url", rdb.URL(), "--group", "approvals", "--log-level", "debug", "--strict-types",
		"--app-url", fmt.Sprintf("http://127.0.0.1:%d", approvalsPort),
	}})
	approvals := startApp(t, "approvals.js", exampleDir(t, "node"), []string{
		"HYVVE_SIDECAR_URL=" + approvalsSC.URL(),
		fmt.Sprintf("PORT=%d", approvalsPort),
		"HYVVE_TENANT=acme",
	}, node, "approvals.js")
	approvalsSC.WaitReady(t, 20*time.Second)

	sent := approvals.waitLine(t, flowTimeout, "the published request", is("published", "approval.requested"))
	got := policy.waitLine(t, flowTimeout, "the received request", func(m map[string]any) bool {
		return is("received", "approval.requested")(m) && str(m, "id") == str(sent, "id")
	})
	decided := policy.waitLine(t, flowTimeout, "the published decision", func(m map[string]any) bool {
		return str(m, "action") == "published" && str(m, "approvalId") == str(sent, "approvalId")
	})
	back := approvals.waitLine(t, flowTimeout, "the received decision", func(m map[string]any) bool {
		return str(m, "action") == "received" && str(m, "id") == str(decided, "id")
	})

	if typ := str(back, "type"); typ != "approval.granted" && typ != "approval.rejected" {
		t.Errorf("decision type: got %q, want approval.granted or approval.rejected", typ)
	}
	if !traceIDRE.MatchString(str(sent, "traceId")) {
		t.Fatalf("trace id of the request: got %q, want 32 hex digits", str(sent, "traceId"))
	}
	sides := []struct {
		name string
		line map[string]any
	}{
		{"node published the request", sent},
		{"python received the request", got},
		{"python published the decision", decided},
		{"node received the decision", back},
	}
	for _, s := range sides {
		for _, k := range []string{"correlationId", "traceId", "approvalId"} {
			if g, w := str(s.line, k), str(sent, k); g != w || g == "" {
				t.Errorf("%s: %s got %q, want %q", s.name, k, g, w)
			}
		}
		if g := str(s.line, "tenantId"); g != "acme" {
			t.Errorf("%s: tenantId got %q, want acme", s.name, g)
		}
	}
	for _, s := range []map[string]any{got, back} {
		if s["attempt"] != float64(1) {
			t.Errorf("%s received %s on attempt %v, want 1", s["app"], str(s, "type"), s["attempt"])
		}
	}

	// The decision is stored with the request's traceparent, and each
	// group acknowledged what it was pushed.
	c := rdb.Client(t)
	stream := "hyvve:events:{acme}"
	msgs, err := c.XRange(t.Context(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		tp, _ := m.Values["traceparent"].(string)
		stored[id] = tp
	}
	for _, id := range []string{str(sent, "id"), str(decided, "id")} {
		if parts := strings.Split(stored[id], "-"); len(parts) != 4 || parts[1] != str(sent, "traceId") {
			t.Errorf("stored traceparent of %s: got %q, want trace id %s", id, stored[id], str(sent, "traceId"))
		}
	}
	for _, g := range []string{"policy", "approvals"} {
		eventually(t, 5*time.Second, "group "+g+" to have nothing pending", func() bool {
			pe, err := c.XPending(t.Context(), stream, g).Result()
			return err == nil && pe.Count == 0
		})
	}
}

// TestPolyglot_demos_receive_their_own_event_and_exit_0 runs each README's
// demo against a real sidecar: Node over TCP, Python over the Unix socket.
func TestPolyglot_demos_receive_their_own_event_and_exit_0(t *testing.T) {
	rdb := redistest.Start(t)
	cases := []struct {
		name, tool, lang, script string
		socket                   bool
	}{
		{"node over TCP", "node", "node", "demo.js", false},
		{"python over the Unix socket", "python3", "python", "demo.py", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bin := needTool(t, tc.tool)
			port := freeTCPPort(t)
			sc := sidecartest.Start(t, sidecartest.Options{Socket: tc.socket, NoWait: true, Args: []string{
				"--redis-url", rdb.URL(), "--group", "demo-" + tc.lang,
				"--app-url", fmt.Sprintf("http://127.0.0.1:%d", port),
			}})
			url := sc.URL()
			if tc.socket {
				url = "unix://" + sc.SocketPath()
			}
			ctx, cancel := context.WithTimeout(t.Context(), demoTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.script)
			cmd.Dir = exampleDir(t, tc.lang)
			cmd.Env = appEnv("HYVVE_SIDECAR_URL="+url, fmt.Sprintf("PORT=%d", port), "HYVVE_TENANT=acme")
			cmd.WaitDelay = time.Second
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s: %v after %s\n%s", tc.tool, tc.script, err, time.Since(start).Round(time.Millisecond), out)
			}
			for _, want := range []string{"demo: published ", "demo: received approval.requested ", `"tenantId": "acme"`} {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			c := rdb.Client(t)
			eventually(t, 5*time.Second, "the demo's event to be acknowledged", func() bool {
				pe, err := c.XPending(t.Context(), "hyvve:events:{acme}", "demo-"+tc.lang).Result()
				return err == nil && pe.Count == 0
			})
		})
	}
}

// Handler scripts for the retry test: the first attempt of every push throws.
const (
	failFirstNode = `
const { Subscriber } = require(process.env.HYVVE_LIB + '/hyvve.js');
const sub = new Subscriber({ log: () => {} });
sub.on('order.*', (event, ctx) => {
  console.log(JSON.stringify({ action: 'received', id: event.id, attempt: ctx.attempt }));
  if (ctx.attempt === 1) throw new Error('first attempt fails');
});
sub.listen(Number(process.env.PORT));
process.once('SIGTERM', () => sub.close().then(() => process.exit(0)));
`
	failFirstPython = `
import json, os, signal, sys, threading
sys.path.insert(0, os.environ["HYVVE_LIB"])
from hyvve import Subscriber
sub = Subscriber()
@sub.on("order.*")
def handle(event, ctx):
    print(json.dumps({"action": "received", "id": event["id"], "attempt": ctx.attempt}), flush=True)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
sub.start(int(os.environ["PORT"]))
stop.wait()
sub.shutdown()
`
)

// TestPolyglot_a_handler_that_throws_gets_the_push_again checks the helpers'
// 500 on a failing handler: the sidecar retries and the second attempt is
// acknowledged, with no dead letter.
func TestPolyglot_a_handler_that_throws_gets_the_push_again(t *testing.T) {
	rdb := redistest.Start(t)
	cases := []struct {
		name, tool, lang, file, script string
	}{
		{"node", "node", "node", "fail-first.js", failFirstNode},
		{"python", "python3", "python", "fail_first.py", failFirstPython},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bin := needTool(t, tc.tool)
			script := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(script, []byte(tc.script), 0o600); err != nil {
				t.Fatal(err)
			}
			port := freeTCPPort(t)
			group := "fail-first-" + tc.lang
			sc := sidecartest.Start(t, sidecartest.Options{NoWait: true, Args: []string{
				"--redis-url", rdb.URL(), "--group", group, "--tenant", "acme",
				"--app-url", fmt.Sprintf("http://127.0.0.1:%d", port), "--retry-schedule", "1s,2s", "--app-timeout", "900ms",
			}})
			app := startApp(t, tc.file, t.TempDir(), []string{
				"HYVVE_LIB=" + exampleDir(t, tc.lang), fmt.Sprintf("PORT=%d", port),
			}, bin, script)
			sc.WaitReady(t, 20*time.Second)
			id := str(publish(t, sc, eventBody("order.paid", "acme")).Body, "id")

			app.waitLine(t, 10*time.Second, "attempt 2", func(m map[string]any) bool {
				return str(m, "id") == id && m["attempt"] == float64(2)
			})
			c := rdb.Client(t)
			eventually(t, 5*time.Second, "the event to be acknowledged", func() bool {
				pe, err := c.XPending(t.Context(), "hyvve:events:{acme}", group).Result()
				return err == nil && pe.Count == 0
			})
			if n := app.out.count(func(m map[string]any) bool { return str(m, "id") == id }); n != 2 {
				t.Errorf("pushes of %s: got %d, want 2 (one failed, one acknowledged)", id, n)
			}
			if n, _ := c.XLen(t.Context(), "hyvve:dlq:{acme}").Result(); n != 0 {
				t.Errorf("dead letters: got %d, want 0", n)
			}
		})
	}
}

// TestPolyglot_client_unit_tests runs the examples' own unit tests (routing
// parity with the sidecar, status answers, header propagation).
func TestPolyglot_client_unit_tests(t *testing.T) {
	cases := []struct {
		name, tool, lang string
		args             []string
	}{
		{"node", "node", "node", []string{"--test", "hyvve.test.js"}},
		{"python", "python3", "python", []string{"-m", "unittest", "-v", "test_hyvve"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bin := needTool(t, tc.tool)
			ctx, cancel := context.WithTimeout(t.Context(), unitTestWait)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Dir = exampleDir(t, tc.lang)
			cmd.Env = appEnv()
			cmd.WaitDelay = time.Second
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v\n%s", tc.tool, strings.Join(tc.args, " "), err, out)
			}
		})
	}
}
