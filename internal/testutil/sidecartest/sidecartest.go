// Package sidecartest runs the real sidecar binary (./cmd/sidecar) for black-box tests.
//
// Build compiles the binary once per test binary; Start runs it on a free 127.0.0.1
// port (and optionally a Unix socket), captures its output, waits for GET /readyz and
// stops it with SIGTERM when the test ends. Functions that take a testing.TB report
// failures with t.Fatal and must be called from the goroutine running the test; a
// *Sidecar is safe for concurrent use.
package sidecartest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/testutil/freeport"
	"github.com/hyvve/sidecar/internal/testutil/gobuild"
	"github.com/hyvve/sidecar/internal/testutil/proc"
)

const (
	readyTimeout      = 15 * time.Second
	defaultStopWait   = 10 * time.Second
	killWait          = 10 * time.Second
	runTimeout        = time.Minute
	startAttempts     = 5
	maxSockPath       = 100
	maxLogBytes       = 64 << 20
	clientTimeout     = 30 * time.Second
	readyPollInterval = 25 * time.Millisecond
)

// Build compiles ./cmd/sidecar of the module containing the working directory, once per
// test binary (see gobuild.Binary), and returns the binary's path; with
// HYVVE_TEST_RACE=1 it builds with -race. On failure every caller fails with the
// compiler's output. Safe for concurrent use.
func Build(t testing.TB) string {
	t.Helper()
	bin, err := gobuild.Binary("./cmd/sidecar", "sidecar", os.Getenv("HYVVE_TEST_RACE") == "1")
	if err != nil {
		t.Fatalf("sidecartest.Build: %v", err)
	}
	return bin
}

// Options configures Start.
type Options struct {
	// Args are extra flags, passed after --listen and --socket.
	Args []string
	// Env is extra environment (KEY=value) on top of os.Environ() with every HYVVE_*
	// variable removed, so the developer's shell never changes a test.
	Env []string
	// NoWait makes Start return without waiting for /readyz; call WaitReady.
	NoWait bool
	// Socket also passes --socket <tempdir>/sidecar.sock; see SocketPath.
	Socket bool
	// StopTimeout is how long Stop and cleanup wait after SIGTERM before SIGKILL;
	// 0 means 10 s. Raise it for tests that pass a longer --shutdown-timeout.
	StopTimeout time.Duration
}

// Sidecar is one running sidecar process owned by a test.
type Sidecar struct {
	url      string
	sock     string
	stopWait time.Duration
	logs     *logBuffer
	tcp      *http.Client
	unix     *http.Client

	mu   sync.Mutex // guards proc
	proc *process
}

// process is one run of the binary; done is closed once it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the process's exit code, or -1 if a signal ended it. Valid after done.
func (p *process) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// Start runs the binary from Build on a free port with --listen 127.0.0.1:port (plus
// --socket with Options.Socket, then Options.Args), captures stdout and stderr (see
// Logs; written to t.Log if the test fails), and waits until GET /readyz answers 200
// (at most 15 s, else t.Fatal with the logs). At cleanup a still running sidecar gets
// SIGTERM and StopTimeout to exit, then SIGKILL (logged, not a failure: pushes held by a
// blocked app may keep it up to --shutdown-timeout). If it exits within StopTimeout
// with a code other than 0, the test fails: SIGTERM must end the sidecar gracefully.
func Start(t testing.TB, o Options) *Sidecar {
	t.Helper()
	return start(t, Build(t), o)
}

func start(t testing.TB, bin string, o Options) *Sidecar {
	t.Helper()
	s := &Sidecar{stopWait: o.StopTimeout, logs: &logBuffer{}}
	if s.stopWait <= 0 {
		s.stopWait = defaultStopWait
	}
	if o.Socket {
		s.sock = filepath.Join(socketDir(t), "sidecar.sock")
	}
	tcpTransport := &http.Transport{}
	unixTransport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.sock)
		},
	}
	s.tcp = &http.Client{Transport: tcpTransport, Timeout: clientTimeout}
	s.unix = &http.Client{Transport: unixTransport, Timeout: clientTimeout}

	t.Cleanup(func() {
		s.cleanup(t)
		tcpTransport.CloseIdleConnections()
		unixTransport.CloseIdleConnections()
		if t.Failed() {
			t.Logf("sidecartest: output of sidecar %s:\n%s", s.url, s.Logs())
		}
	})

	for attempt := 1; ; attempt++ {
		port, err := freeport.Get()
		if err != nil {
			t.Fatalf("sidecartest.Start: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.url = "http://" + addr
		args := []string{"--listen", addr}
		if o.Socket {
			args = append(args, "--socket", s.sock)
		}
		args = append(args, o.Args...)

		logStart := s.logs.Len()
		if attempt > 1 {
			fmt.Fprintf(s.logs, "--- sidecartest: retrying on a new port ---\n")
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = environ(o.Env)
		cmd.Stdout = s.logs
		cmd.Stderr = s.logs
		cmd.SysProcAttr = proc.SysProcAttr()
		cmd.WaitDelay = time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("sidecartest.Start: %v", err)
		}
		p := &process{cmd: cmd, done: make(chan struct{})}
		go func() {
			_ = cmd.Wait() // the exit status is read from cmd.ProcessState
			close(p.done)
		}()
		s.mu.Lock()
		s.proc = p
		s.mu.Unlock()

		if o.NoWait {
			return s
		}
		err = s.waitReady(p, readyTimeout)
		if err == nil {
			return s
		}
		inUse := p.exited() && strings.Contains(strings.ToLower(s.logs.String()[logStart:]), "address already in use")
		if !inUse || attempt == startAttempts {
			t.Fatalf("sidecartest.Start: %v\nsidecar output:\n%s", err, s.Logs())
		}
	}
}

// cleanup stops a still running sidecar with SIGTERM, as a deployment would, and
// fails the test if it exits with a code other than 0.
func (s *Sidecar) cleanup(t testing.TB) {
	p := s.current()
	if p == nil || p.exited() {
		return
	}
	code, err := s.stop(p)
	if errors.Is(err, errStopTimeout) {
		t.Logf("sidecartest: at cleanup: %v", err)
		return
	}
	if err != nil {
		t.Errorf("sidecartest: at cleanup: %v", err)
		return
	}
	if code != 0 {
		t.Errorf("sidecartest: at cleanup: sidecar exited with code %d after SIGTERM, want 0", code)
	}
}

func (s *Sidecar) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// URL returns the sidecar's TCP base URL, "http://127.0.0.1:port".
func (s *Sidecar) URL() string { return s.url }

// SocketPath returns the path passed to --socket, or "" without Options.Socket.
func (s *Sidecar) SocketPath() string { return s.sock }

// PID returns the process id of the sidecar.
func (s *Sidecar) PID() int { return s.current().cmd.Process.Pid }

// Logs returns everything the sidecar wrote to stdout and stderr so far (JSON log
// lines on stderr). Output beyond 64 MiB is dropped and counted.
func (s *Sidecar) Logs() string { return s.logs.String() }

// Client returns an HTTP client for URL(). Requests time out after 30 s; idle
// connections are closed at cleanup.
func (s *Sidecar) Client() *http.Client { return s.tcp }

// UnixClient returns an HTTP client that dials SocketPath() whatever the URL's host,
// e.g. c.Get("http://sidecar/readyz"). It needs Options.Socket.
func (s *Sidecar) UnixClient() *http.Client { return s.unix }

// Stop sends SIGTERM, waits up to Options.StopTimeout and returns the exit code (-1 if
// a signal ended it). A sidecar that has already exited returns its code at once. If it
// does not exit in time it is killed and the test fails.
func (s *Sidecar) Stop(t testing.TB) int {
	t.Helper()
	p := s.current()
	code, err := s.stop(p)
	if err != nil {
		t.Fatalf("sidecartest.Stop: %v\nsidecar output:\n%s", err, s.Logs())
	}
	return code
}

func (s *Sidecar) stop(p *process) (int, error) {
	if p.exited() {
		return p.exitCode(), nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("SIGTERM pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return p.exitCode(), nil
	case <-time.After(s.stopWait):
	}
	if err := kill(p); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("sidecar pid %d: %w within %v; killed it", p.cmd.Process.Pid, errStopTimeout, s.stopWait)
}

var errStopTimeout = errors.New("did not exit after SIGTERM")

// Kill sends SIGKILL and waits for the sidecar to exit, as a crash or an OOM kill
// would end it. Killing an exited sidecar does nothing.
func (s *Sidecar) Kill(t testing.TB) {
	t.Helper()
	if err := kill(s.current()); err != nil {
		t.Fatalf("sidecartest.Kill: %v", err)
	}
}

func kill(p *process) error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("sidecar pid %d did not exit within %v of SIGKILL", p.cmd.Process.Pid, killWait)
	}
}

// RSS returns the sidecar's resident set size in bytes (VmRSS in /proc/<pid>/status).
// It fails the test if the sidecar has exited.
func (s *Sidecar) RSS(t testing.TB) int64 {
	t.Helper()
	p := s.current()
	if p.exited() {
		t.Fatalf("sidecartest.RSS: sidecar exited with code %d", p.exitCode())
	}
	rss, err := readRSS(p.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("sidecartest.RSS: %v", err)
	}
	return rss
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// WaitReady waits until GET /readyz answers 200, or fails the test after timeout (or
// as soon as the sidecar exits) with the last answer and the logs.
func (s *Sidecar) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := s.waitReady(s.current(), timeout); err != nil {
		t.Fatalf("sidecartest.WaitReady: %v\nsidecar output:\n%s", err, s.Logs())
	}
}

// waitReady polls /readyz until it answers 200, p exits or timeout passes.
func (s *Sidecar) waitReady(p *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := errors.New("no answer yet")
	for {
		if p.exited() {
			return fmt.Errorf("sidecar exited with code %d before /readyz answered 200 (last: %v)", p.exitCode(), last)
		}
		ok, err := s.readyOnce(ctx)
		if ok {
			return nil
		}
		// A request cut by the overall deadline says less than the answer
		// before it (say, 503 with the reason): keep that one.
		if ctx.Err() == nil || last.Error() == "no answer yet" {
			last = err
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("/readyz not 200 within %v: %w", timeout, last)
		case <-time.After(readyPollInterval):
		}
	}
}

func (s *Sidecar) readyOnce(ctx context.Context) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, s.url+"/readyz", nil)
	if err != nil {
		return false, err
	}
	resp, err := s.tcp.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode == http.StatusOK {
		return true, nil
	}
	return false, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
}

// Run runs the binary from Build to completion with args and env (on top of
// os.Environ() without HYVVE_*), and returns its combined output and exit code. It
// fails the test if the binary cannot run or takes longer than a minute.
func Run(t testing.TB, args []string, env []string) (string, int) {
	t.Helper()
	return run(t, Build(t), args, env)
}

func run(t testing.TB, bin string, args, env []string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = environ(env)
	cmd.SysProcAttr = proc.SysProcAttr()
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sidecartest.Run %q: did not finish within %v\noutput:\n%s", args, runTimeout, out)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("sidecartest.Run %q: %v\noutput:\n%s", args, err, out)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// environ returns os.Environ() without HYVVE_* variables, followed by extra.
func environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYVVE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// socketDir returns t.TempDir(), or a shorter temp dir removed at cleanup when the
// test's name would push the socket path past the 108-byte sun_path limit.
func socketDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir)+len("/sidecar.sock") <= maxSockPath {
		return dir
	}
	dir, err := os.MkdirTemp("", "sidecartest")
	if err != nil {
		t.Fatalf("sidecartest: socket dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// logBuffer collects process output, safe for concurrent writes and reads. It keeps the
// first maxLogBytes and counts the rest, so a chatty sidecar cannot exhaust the
// test's memory.
type logBuffer struct {
	mu      sync.Mutex // guards buf and dropped
	buf     bytes.Buffer
	dropped int64
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxLogBytes - b.buf.Len(); len(p) > room {
		b.dropped += int64(len(p) - room)
		b.buf.Write(p[:room])
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *logBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("%s\n[sidecartest: %d further bytes of output dropped]\n", b.buf.String(), b.dropped)
	}
	return b.buf.String()
}
