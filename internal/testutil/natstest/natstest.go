// Package natstest starts real nats-server processes with JetStream for tests.
//
// The binary is built from the nats-server module this module requires (the same
// server the sidecar embeds), once per test binary. Each server listens on a free
// 127.0.0.1 port, keeps its JetStream files in t.TempDir() and is stopped when the test
// ends, so tests can kill and restart it as they do a redis-server.
//
// All functions take the calling test's testing.TB and report failures with t.Fatal, so
// they must be called from the goroutine running the test. A *Server is safe for
// concurrent use.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/testutil/freeport"
	"github.com/hyvve/sidecar/internal/testutil/gobuild"
	"github.com/hyvve/sidecar/internal/testutil/proc"
)

const (
	readyTimeout  = 15 * time.Second
	startAttempts = 5
	stopTimeout   = 10 * time.Second
)

// Server is one nats-server process owned by a test.
type Server struct {
	bin  string
	dir  string
	port int
	run  proc.Runner // the nats-server process; run.Out is its output, across restarts
}

// Start builds nats-server (once per test binary), runs it with JetStream on a free
// 127.0.0.1 port with its store in t.TempDir(), waits until JetStream answers (at most
// 15 s) and stops it in t.Cleanup. Its log is written to t.Log when the test fails.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := gobuild.Binary("github.com/nats-io/nats-server/v2", "nats-server", false)
	if err != nil {
		t.Fatalf("natstest.Start: %v", err)
	}
	s := &Server{bin: bin, dir: t.TempDir()}
	t.Cleanup(func() {
		_ = s.stop()
		if t.Failed() {
			t.Logf("natstest: log of nats-server on %s:\n%s", s.Addr(), s.run.Out.String())
		}
	})
	for attempt := 1; ; attempt++ {
		if s.port, err = freeport.Get(); err != nil {
			t.Fatalf("natstest.Start: %v", err)
		}
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			t.Fatalf("natstest.Start: %v\nnats-server log:\n%s", err, s.run.Out.String())
		}
	}
}

// Addr is "127.0.0.1:port"; it stays the same across Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the nats:// URL passed to --nats-url.
func (s *Server) URL() string { return "nats://" + s.Addr() }

// Kill sends SIGKILL and waits for the server to exit. What JetStream wrote to its
// files survives (the OS has it), as after a crash of the process.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("natstest.Kill: %v", err)
	}
}

// Restart starts the server again on the same port and store directory (killing a
// running one first) and waits until JetStream answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("natstest.Restart: %v", err)
	}
	fmt.Fprintf(&s.run.Out, "--- natstest: restart ---\n")
	if err := s.start(); err != nil {
		t.Fatalf("natstest.Restart: %v\nnats-server log:\n%s", err, s.run.Out.String())
	}
}

var errAddrInUse = errors.New("address already in use")

func (s *Server) start() error {
	logStart := s.run.Out.Len()
	exited, err := s.run.Start(s.bin, []string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir,
		"-n", "natstest-" + strconv.Itoa(s.port)}, s.dir)
	if err != nil {
		return err
	}
	if err := waitJetStream(s.URL(), exited); err != nil {
		_ = s.stop()
		if strings.Contains(s.run.Out.Since(logStart), "address already in use") {
			return fmt.Errorf("port %d: %w", s.port, errAddrInUse)
		}
		return err
	}
	return nil
}

// waitJetStream connects until JetStream answers an account info request, the
// process exits, or readyTimeout passes.
func waitJetStream(url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last error
	for {
		if last = jetStreamAnswers(ctx, url); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("nats-server on %s exited before JetStream answered: %w", url, last)
		case <-ctx.Done():
			return fmt.Errorf("nats-server on %s: JetStream did not answer within %v: %w", url, readyTimeout, last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func jetStreamAnswers(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = js.AccountInfo(actx)
	return err
}

func (s *Server) stop() error { return s.run.Kill(stopTimeout) }
