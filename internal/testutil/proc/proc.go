// Package proc runs the server processes that test helpers own
// (redis-server, nats-server): their output kept across restarts, killed
// with SIGKILL on demand, and never outliving the test binary on Linux.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// Runner runs one process at a time for a test helper's server: Start runs
// it, Kill ends it; a later Start runs it again with the same output. Safe
// for concurrent use.
type Runner struct {
	// Out is every run's stdout and stderr.
	Out Output

	mu   sync.Mutex // guards proc
	proc *process   // nil before Start and once killed
}

// process is one run; done is closed when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin with args in dir, its output appended to r.Out. exited is
// closed when that process exits (for a readiness wait to stop early). A
// process still running is not stopped first: call Kill.
func (r *Runner) Start(bin string, args []string, dir string) (exited <-chan struct{}, err error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = &r.Out
	cmd.Stderr = &r.Out
	cmd.SysProcAttr = SysProcAttr()
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	return p.done, nil
}

// Running reports whether the process started last is up: neither killed
// nor exited on its own.
func (r *Runner) Running() bool {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the running process, if any, and waits up to
// timeout for it to exit.
func (r *Runner) Kill(timeout time.Duration) error {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil // exited on its own
	default:
	}
	name, pid := filepath.Base(p.cmd.Path), p.cmd.Process.Pid
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s pid %d: %w", name, pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s pid %d did not exit within %v of SIGKILL", name, pid, timeout)
	}
}

// Output is a bytes.Buffer safe for concurrent writes (from the process's
// output copiers) and reads (from the test).
type Output struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// Len is the number of bytes written so far; Since(Len()) later is what
// was written after.
func (o *Output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Len()
}

// Since returns what was written after the first n bytes.
func (o *Output) Since(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()[n:]
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
