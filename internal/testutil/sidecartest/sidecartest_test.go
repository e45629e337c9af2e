package sidecartest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/testutil/gobuild"
)

// fakeBin is testdata/fakesidecar, built once by TestMain: the real sidecar is tested
// black-box elsewhere, these tests check the harness around it.
var fakeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakesidecar")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeBin = filepath.Join(dir, "fakesidecar")
	if out, err := exec.Command("go", "build", "-o", fakeBin, "./testdata/fakesidecar").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fakesidecar: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
	return string(b)
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestStart_serves_on_TCP_and_socket_until_Stop(t *testing.T) {
	s := start(t, fakeBin, Options{Socket: true})
	pid := s.PID()

	if got, want := get(t, s.Client(), s.URL()+"/whoami"), "tcp "+strconv.Itoa(pid); got != want {
		t.Errorf("over TCP got %q, want %q", got, want)
	}
	if !strings.HasSuffix(s.SocketPath(), "/sidecar.sock") {
		t.Errorf("SocketPath() = %q, want …/sidecar.sock", s.SocketPath())
	}
	if got, want := get(t, s.UnixClient(), "http://sidecar/whoami"), "unix "+strconv.Itoa(pid); got != want {
		t.Errorf("over the socket got %q, want %q", got, want)
	}
	for _, want := range []string{`"msg":"starting"`, "hello on stdout"} {
		if !strings.Contains(s.Logs(), want) {
			t.Errorf("Logs() = %q, want it to contain %q", s.Logs(), want)
		}
	}
	if rss := s.RSS(t); rss < 1<<20 || rss > 1<<30 {
		t.Errorf("RSS() = %d bytes, want between 1 MiB and 1 GiB", rss)
	}

	if code := s.Stop(t); code != 0 {
		t.Errorf("Stop() = %d, want 0", code)
	}
	if alive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	if !strings.Contains(s.Logs(), `"msg":"stopped"`) {
		t.Errorf("Logs() after Stop lack the SIGTERM handler's line: %q", s.Logs())
	}
	if code := s.Stop(t); code != 0 {
		t.Errorf("second Stop() = %d, want 0 (the first exit code)", code)
	}
}

func TestStart_without_socket_has_no_socket_path(t *testing.T) {
	s := start(t, fakeBin, Options{})
	if got := s.SocketPath(); got != "" {
		t.Errorf("SocketPath() = %q, want \"\"", got)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:<port>", s.URL())
	}
}

func TestStart_passes_args_and_env_without_the_shells_HYVVE_vars(t *testing.T) {
	t.Setenv("HYVVE_FROM_SHELL", "leak")
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{name: "graceful", args: nil, wantCode: 0},
		{name: "args reach the binary", args: []string{"--term-exit", "7"}, wantCode: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, fakeBin, Options{Args: tt.args, Env: []string{"HYVVE_GROUP=billing"}})
			if logs := s.Logs(); !strings.Contains(logs, "HYVVE_GROUP=billing") || strings.Contains(logs, "HYVVE_FROM_SHELL") {
				t.Errorf("sidecar saw env %q, want HYVVE_GROUP=billing and no HYVVE_FROM_SHELL", logs)
			}
			if code := s.Stop(t); code != tt.wantCode {
				t.Errorf("Stop() = %d, want %d", code, tt.wantCode)
			}
		})
	}
}

func TestKill_ends_the_process_at_once(t *testing.T) {
	s := start(t, fakeBin, Options{Args: []string{"--ignore-term"}})
	pid := s.PID()
	s.Kill(t)
	if alive(pid) {
		t.Errorf("pid %d alive after Kill", pid)
	}
	if code := s.Stop(t); code != -1 {
		t.Errorf("Stop() after Kill = %d, want -1 (ended by a signal)", code)
	}
	s.Kill(t) // killing an exited sidecar is a no-op
}

func TestStart_and_WaitReady_fail_with_the_reason_and_logs(t *testing.T) {
	tests := []struct {
		name string
		run  func(ft *fakeTB)
		want []string
	}{
		{
			name: "exits at start",
			run:  func(ft *fakeTB) { start(ft, fakeBin, Options{Args: []string{"--exit", "3"}}) },
			want: []string{"exited with code 3", "bad config: --exit"},
		},
		{
			name: "never ready",
			run: func(ft *fakeTB) {
				s := start(ft, fakeBin, Options{NoWait: true, Args: []string{"--not-ready"}})
				s.WaitReady(ft, 3*time.Second)
			},
			want: []string{"not 200 within 3s", "503", "broker: not connected", `"msg":"starting"`},
		},
		{
			name: "ignores SIGTERM on Stop",
			run: func(ft *fakeTB) {
				s := start(ft, fakeBin, Options{StopTimeout: 200 * time.Millisecond, Args: []string{"--ignore-term"}})
				s.Stop(ft)
			},
			want: []string{"did not exit after SIGTERM within 200ms"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTB{TB: t}
			ft.run(tt.run)
			if ft.fatal == "" {
				t.Fatalf("test did not fail, want a Fatal containing %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(ft.fatal, want) {
					t.Errorf("fatal message %q does not contain %q", ft.fatal, want)
				}
			}
		})
	}
}

func TestCleanup_fails_the_test_when_SIGTERM_exits_non_zero(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		wantError string // "" → cleanup must not fail the test
		wantLog   string // "" → cleanup must log nothing
	}{
		{name: "exit 0", opts: Options{}},
		{name: "exit 2", opts: Options{Args: []string{"--term-exit", "2"}}, wantError: "exited with code 2 after SIGTERM", wantLog: `"msg":"starting"`},
		{name: "slow exit is killed and logged", opts: Options{StopTimeout: 200 * time.Millisecond, Args: []string{"--ignore-term"}}, wantLog: "did not exit after SIGTERM within 200ms; killed it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTB{TB: t}
			var pid int
			ft.run(func(ft *fakeTB) { pid = start(ft, fakeBin, tt.opts).PID() })
			if alive(pid) {
				t.Errorf("pid %d alive after cleanup", pid)
			}
			errs, logs := strings.Join(ft.errors, "\n"), strings.Join(ft.logs, "\n")
			if (errs == "") != (tt.wantError == "") || !strings.Contains(errs, tt.wantError) {
				t.Errorf("cleanup errors %q, want %q", errs, tt.wantError)
			}
			if (logs == "") != (tt.wantLog == "") || !strings.Contains(logs, tt.wantLog) {
				t.Errorf("cleanup logs %q, want them to contain %q", logs, tt.wantLog)
			}
		})
	}
}

func TestRun_returns_output_and_exit_code(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		want     string
	}{
		{name: "help", args: []string{"--help"}, wantCode: 0, want: "-listen"},
		{name: "bad config", args: []string{"--exit", "4"}, wantCode: 4, want: "bad config: --exit"},
		{name: "env", args: []string{"--exit", "0"}, env: []string{"HYVVE_TENANT=acme"}, wantCode: 0, want: "HYVVE_TENANT=acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := run(t, fakeBin, tt.args, tt.env)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q does not contain %q", out, tt.want)
			}
		})
	}
}

func TestReadRSS(t *testing.T) {
	rss, err := readRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Errorf("readRSS(self) = %d, %v; want > 0, nil", rss, err)
	}
	if _, err := readRSS(1 << 30); err == nil {
		t.Errorf("readRSS(no such pid): got nil error, want one")
	}
}

func TestBuild_real_sidecar_prints_help(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole sidecar")
	}
	root, err := gobuild.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "cmd", "sidecar", "*.go")); len(m) == 0 {
		t.Skip("cmd/sidecar has no Go files yet")
	}
	out, code := Run(t, []string{"--help"}, nil)
	if code != 0 || !strings.Contains(out, "--redis-url") {
		t.Errorf("sidecar --help: exit %d, output %q; want 0 and --redis-url documented", code, out)
	}
	if again := Build(t); again != Build(t) || !filepath.IsAbs(again) {
		t.Errorf("Build() = %q, want the same absolute path on every call", again)
	}
}

// fakeTB records failures instead of failing the real test; Fatal ends the goroutine
// started by run, and cleanups registered through it run when run returns.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex // guards all fields below
	fatal    string
	errors   []string
	logs     []string
	cleanups []func()
}

func (f *fakeTB) run(fn func(*fakeTB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal != "" || len(f.errors) > 0
}
func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	if f.fatal == "" {
		f.fatal = fmt.Sprintf(format, args...)
	}
	f.mu.Unlock()
	runtime.Goexit()
}
