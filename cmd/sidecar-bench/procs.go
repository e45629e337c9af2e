package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

const (
	stopGrace    = 10 * time.Second // SIGTERM to SIGKILL
	readyTimeout = 15 * time.Second
	maxLogTail   = 64 << 10
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
	// it is 100 on every Linux architecture Go supports.
	clockTicks = 100
)

// proc is one child process the harness owns. Children run in their own
// process group (so Ctrl-C reaches only the harness, which stops them in
// order) and get SIGKILL if the harness dies without cleaning up.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed once the process has exited
}

func startProc(name, bin string, args, env []string, stdout *os.File) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out := &tailBuffer{}
	cmd.Stderr = out
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = out
	}
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the status is read from cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace and then kills. It returns an error only
// if the process outlives SIGKILL. Safe to call on an exited process.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	if p == nil || p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("%s pid %d survived SIGKILL", p.name, p.pid())
	}
}

// tailBuffer keeps the last maxLogTail bytes of a child's output, for error
// messages. Safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - maxLogTail; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(bytes.TrimSpace(b.buf))
}

// childEnv is the harness's environment without HYVVE_*, so the developer's
// shell never changes what is measured.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYVVE_") {
			env = append(env, kv)
		}
	}
	return env
}

// buildSidecar compiles ./cmd/sidecar of the module around the working
// directory into dir and returns the binary's path.
func buildSidecar(ctx context.Context, goBin, dir string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", fmt.Errorf("no go.mod in %s or a parent: run from the repository", wd)
		}
		root = parent
	}
	bin := filepath.Join(dir, "sidecar")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/sidecar")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s build ./cmd/sidecar in %s: %w\n%s", goBin, root, err, out)
	}
	return bin, nil
}

// startRedis runs redis-server in memory on a free port in dir and waits
// until it answers PING.
func startRedis(ctx context.Context, bin, dir string) (*proc, string, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := startProc("redis-server", bin, []string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
		}, childEnv(), nil)
		if err != nil {
			return nil, "", err
		}
		if last = waitRedis(ctx, addr, p); last == nil {
			return p, addr, nil
		}
		_ = p.stop(syscall.SIGKILL, 0)
		if !strings.Contains(p.out.String(), "Address already in use") {
			break
		}
	}
	return nil, "", last
}

func waitRedis(ctx context.Context, addr string, p *proc) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("redis-server exited before answering PING:\n%s", p.out.String())
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s: no PING answer: %w\n%s", addr, err, p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sidecarProc is a running sidecar and how long it took from exec to its
// first 200 on /readyz.
type sidecarProc struct {
	*proc
	addr    string // 127.0.0.1:port
	socket  string
	toReady time.Duration
}

// startSidecar execs the sidecar on a free port (and socket, when given) and
// polls /readyz every millisecond until it answers 200.
func startSidecar(ctx context.Context, bin string, storeArgs []string, socket string, extra ...string) (*sidecarProc, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append(slices.Clone(storeArgs), "--listen", addr, "--tenant", "acme", "--log-level", "warn")
		if socket != "" {
			args = append(args, "--socket", socket)
		}
		args = append(args, extra...)
		start := time.Now()
		p, err := startProc("sidecar", bin, args, childEnv(), nil)
		if err != nil {
			return nil, err
		}
		s := &sidecarProc{proc: p, addr: addr, socket: socket}
		if last = s.waitReady(ctx, start); last == nil {
			return s, nil
		}
		_ = p.stop(syscall.SIGKILL, 0)
		if !strings.Contains(strings.ToLower(p.out.String()), "address already in use") {
			break
		}
	}
	return nil, last
}

func (s *sidecarProc) waitReady(ctx context.Context, start time.Time) error {
	hc := &fasthttp.HostClient{Addr: s.addr, MaxConns: 1, ReadTimeout: time.Second, WriteTimeout: time.Second}
	defer hc.CloseIdleConnections()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + s.addr + "/readyz")
	deadline := start.Add(readyTimeout)
	last := errors.New("no answer yet")
	for {
		err := hc.DoTimeout(req, resp, time.Second)
		if err == nil && resp.StatusCode() == fasthttp.StatusOK {
			s.toReady = time.Since(start)
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
		}
		if s.exited() {
			return fmt.Errorf("sidecar exited with code %d before /readyz answered 200:\n%s",
				s.cmd.ProcessState.ExitCode(), s.out.String())
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sidecar /readyz not 200 within %v: %w\n%s", readyTimeout, last, s.out.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// startNoop re-executes this binary as the no-op server (see serveNoop) and
// reads the TCP address it bound from its first line of output.
func startNoop(ctx context.Context, socket string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("no-op server: find own binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("no-op server: %w", err)
	}
	defer r.Close()
	p, err := startProc("no-op server", self, []string{"-internal-noop-server", "-noop-socket", socket}, childEnv(), w)
	w.Close()
	if err != nil {
		return nil, "", err
	}
	type line struct {
		s   string
		err error
	}
	lc := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		lc <- line{s, err}
	}()
	select {
	case l := <-lc:
		addr, ok := strings.CutPrefix(strings.TrimSpace(l.s), "listening ")
		if l.err != nil || !ok {
			_ = p.stop(syscall.SIGKILL, 0)
			return nil, "", fmt.Errorf("no-op server did not start (%v):\n%s", l.err, p.out.String())
		}
		return p, addr, nil
	case <-time.After(readyTimeout):
	case <-ctx.Done():
	}
	_ = p.stop(syscall.SIGKILL, 0)
	return nil, "", fmt.Errorf("no-op server did not start:\n%s", p.out.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuTime is the CPU a process used so far (utime+stime of /proc/<pid>/stat).
// pid 0 means the harness itself.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(statPath(pid, "stat"))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the contents of
// /proc/<pid>/stat. Field 2, the command, may hold spaces and parentheses, so
// fields are counted from its closing parenthesis.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// mem is a process's resident memory in bytes, from /proc/<pid>/status:
// rss is VmRSS; anon is RssAnon, its private part (heap, stacks, runtime),
// without the pages of the executable and libraries it maps from files,
// which the page cache shares and can reclaim.
type mem struct{ rss, anon int64 }

func readMem(pid int) (mem, error) {
	b, err := os.ReadFile(statPath(pid, "status"))
	if err != nil {
		return mem{}, fmt.Errorf("rss: %w", err)
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (mem, error) {
	var m mem
	var found bool
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		var dst *int64
		switch {
		case !ok:
			continue
		case name == "VmRSS":
			dst, found = &m.rss, true
		case name == "RssAnon":
			dst = &m.anon
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return mem{}, fmt.Errorf("parse %s: %w", name, err)
		}
		*dst = kb << 10
	}
	if !found {
		return mem{}, errors.New("no VmRSS line")
	}
	return m, nil
}

func statPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

// usage is what one process used during one measurement window.
type usage struct {
	CPUCores float64 `json:"cpuCores"` // CPU seconds per wall second
	RSSMaxMB float64 `json:"rssMaxMB,omitempty"`
	// AnonMaxMB is the most of it that was private (RssAnon, see mem).
	AnonMaxMB float64 `json:"anonMaxMB,omitempty"`
}

// watch samples the CPU time and RSS of processes over a window: start reads
// their CPU clocks and samples RSS every 100 ms until stop.
type watch struct {
	pids  []int
	start time.Time
	cpu0  []time.Duration
	busy0 time.Duration // of the whole machine
	busy  float64       // machine-wide busy cores in the window, set by stop
	mu    sync.Mutex    // guards mem
	mem   []mem         // the largest of each, per process
	quit  chan struct{}
	done  chan struct{}
}

func startWatch(pids ...int) *watch {
	w := &watch{pids: pids, start: time.Now(), cpu0: make([]time.Duration, len(pids)),
		mem: make([]mem, len(pids)), quit: make(chan struct{}), done: make(chan struct{})}
	for i, pid := range pids {
		w.cpu0[i], _ = cpuTime(pid) // a process that is gone reads as idle
	}
	w.busy0, _ = machineBusy()
	w.sampleRSS()
	go func() {
		defer close(w.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-t.C:
				w.sampleRSS()
			}
		}
	}()
	return w
}

func (w *watch) sampleRSS() {
	for i, pid := range w.pids {
		if v, err := readMem(pid); err == nil {
			w.mu.Lock()
			w.mem[i] = mem{rss: max(w.mem[i].rss, v.rss), anon: max(w.mem[i].anon, v.anon)}
			w.mu.Unlock()
		}
	}
}

// stop ends the window and returns each process's usage, in the order given
// to startWatch.
func (w *watch) stop() []usage {
	close(w.quit)
	<-w.done
	w.sampleRSS()
	wall := time.Since(w.start)
	if b, err := machineBusy(); err == nil && w.busy0 > 0 {
		w.busy = round3(float64(b-w.busy0) / float64(wall))
	}
	out := make([]usage, len(w.pids))
	for i, pid := range w.pids {
		c, _ := cpuTime(pid)
		out[i].CPUCores = round3(float64(c-w.cpu0[i]) / float64(wall))
		if pid != 0 {
			out[i].RSSMaxMB = round3(float64(w.mem[i].rss) / (1 << 20))
			out[i].AnonMaxMB = round3(float64(w.mem[i].anon) / (1 << 20))
		}
	}
	return out
}

// machineCores is how many cores the whole machine kept busy during the
// window, every process included (0 if /proc/stat is unreadable). Valid after
// stop.
func (w *watch) machineCores() float64 { return w.busy }

// machineBusy is the CPU time all cores spent on anything but idle and
// iowait so far: the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine cpu: %w", err)
	}
	return parseProcStat(b)
}

// parseProcStat sums user, nice, system, irq, softirq and steal of the "cpu"
// line of /proc/stat.
func parseProcStat(b []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: first line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
