// Package redistest starts real redis-server processes for tests.
//
// Each server listens on a free 127.0.0.1 port, keeps its files in t.TempDir() and is
// stopped when the test ends. With Options.TLS it accepts only TLS connections, with
// certificates made for the test (see TLSFiles). No mocks: tests talk to the same Redis the sidecar uses in
// production, so persistence, consumer groups and failures behave as they really do.
// StartCluster starts a Redis Cluster of such servers (masters and replicas) for the
// same reason: slots, redirects and failovers are real.
//
// All functions take the calling test's testing.TB and report failures with t.Fatal, so
// they must be called from the goroutine running the test. A *Server is safe for
// concurrent use, and Start may be called from parallel tests.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/freeport"
	"github.com/hyvve/sidecar/internal/testutil/proc"
)

const (
	// readyTimeout bounds how long Start and Restart wait for PING to answer.
	readyTimeout = 10 * time.Second
	// startAttempts is how many free ports Start tries when the chosen one was taken
	// between picking it and redis-server binding it.
	startAttempts = 5
	// stopTimeout bounds how long Kill and cleanup wait for the process to exit.
	stopTimeout = 10 * time.Second
)

// Options configures a server. The zero value is an in-memory server that never
// writes an RDB file.
type Options struct {
	// AppendOnly enables the append-only file with appendfsync always, so every
	// acknowledged write survives Kill and is there again after Restart.
	AppendOnly bool
	// Args are extra redis-server arguments (e.g. "--maxmemory", "10mb"). They come
	// last, so they override the defaults set by Start.
	Args []string
	// TLS makes the server accept only TLS connections on its port (--port 0
	// --tls-port), with a CA and a server certificate made by NewTLSFiles for this
	// server (see Server.TLSFiles). URL is then rediss:// and Client speaks TLS,
	// presenting the client certificate.
	TLS bool
	// TLSAuthClients is redis-server's --tls-auth-clients, with TLS only: "yes"
	// requires a client certificate signed by the CA, "optional" checks one when
	// given, "no" asks for none. "" means "no" (redis-server's own default is yes).
	TLSAuthClients string

	// files, with TLS, are the certificates to use instead of new ones: the
	// nodes of a cluster share one CA, so that they trust each other.
	files *TLSFiles
}

// Server is one redis-server process owned by a test.
type Server struct {
	bin  string
	dir  string
	port int
	opts Options
	run  proc.Runner // the redis-server process; run.Out is its output, across restarts
	// tlsFiles and tlsConf are set with Options.TLS; tlsConf is the client side
	// (the CA, the client certificate), used by Client and the readiness check.
	tlsFiles TLSFiles
	tlsConf  *tls.Config
	// busPort is the cluster bus port (--cluster-port) of a node started by
	// StartCluster, 0 for a plain server. It stays the same across Restart:
	// the other nodes know the node by it.
	busPort int
}

// Start runs redis-server on a free 127.0.0.1 port with its dir in t.TempDir(), waits
// until PING answers (over TLS with Options.TLS; at most 10 s, else t.Fatal with the
// server's log) and stops it in t.Cleanup. At most one Options value is used. If the server's log is non-empty when
// the test fails, it is written to t.Log.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	if len(opts) > 1 {
		t.Fatalf("redistest.Start: got %d Options, want at most 1", len(opts))
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	return startServer(t, "redistest.Start", o, false)
}

// startServer is Start with one Options; caller prefixes its failures. With
// clusterBus it also picks a free cluster bus port (--cluster-port) for each
// attempt, as a port above 55535 leaves no room for redis-server's default
// port+10000; StartCluster passes the other cluster settings in o.Args.
func startServer(t testing.TB, caller string, o Options, clusterBus bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("%s: %v", caller, err)
	}
	s := &Server{bin: bin, dir: t.TempDir(), opts: o}
	switch a := s.opts.TLSAuthClients; {
	case a != "" && !s.opts.TLS:
		t.Fatalf("%s: TLSAuthClients %q needs TLS", caller, a)
	case a != "" && a != "yes" && a != "no" && a != "optional":
		t.Fatalf("%s: TLSAuthClients is %q, want yes, no or optional", caller, a)
	}
	if s.opts.TLS {
		if s.opts.files != nil {
			s.tlsFiles = *s.opts.files
		} else {
			s.tlsFiles = NewTLSFiles(t)
		}
		if s.tlsConf, err = s.tlsFiles.Config(); err != nil {
			t.Fatalf("%s: %v", caller, err)
		}
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("redistest: log of redis-server on %s:\n%s", s.Addr(), s.run.Out.String())
		}
	})

	for attempt := 1; ; attempt++ {
		port, err := freeport.Get()
		if err != nil {
			t.Fatalf("%s: %v", caller, err)
		}
		s.port = port
		for clusterBus && (s.busPort == 0 || s.busPort == port) {
			if s.busPort, err = freeport.Get(); err != nil {
				t.Fatalf("%s: %v", caller, err)
			}
		}
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			t.Fatalf("%s: %v\nredis-server log:\n%s", caller, err, s.run.Out.String())
		}
		if clusterBus {
			s.busPort = 0 // the bus port may be the one taken: pick both again
		}
	}
}

// Addr returns the server's address, "127.0.0.1:port". It stays the same across Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// URL for database 0 (rediss:// with Options.TLS), as passed to
// --redis-url.
func (s *Server) URL() string {
	if s.tlsConf != nil {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// TLSFiles returns the certificate files of a server started with Options.TLS (the
// zero value otherwise): redis-server uses the CA and the server certificate; the
// client certificate is for --redis-cert and --redis-key.
func (s *Server) TLSFiles() TLSFiles { return s.tlsFiles }

// Client returns a go-redis client for the server, as the default user, closed when t
// ends; with Options.TLS it trusts the CA and presents the client certificate. It
// survives Kill and Restart: commands fail while the server is down and work again
// after.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: s.Addr()}
	if s.tlsConf != nil {
		o.TLSConfig = s.tlsConf.Clone()
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill sends SIGKILL to the server and waits for it to exit. Nothing is flushed: only
// what an append-only server already wrote survives. Killing a stopped server does
// nothing.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("redistest.Kill: %v", err)
	}
}

// Restart starts the server again on the same port and dir and waits until PING
// answers; with AppendOnly the data written before Kill is there again. A running server
// is killed first. It fails the test if the port was taken while the server was down.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("redistest.Restart: %v", err)
	}
	fmt.Fprintf(&s.run.Out, "--- redistest: restart ---\n")
	if err := s.start(); err != nil {
		t.Fatalf("redistest.Restart: %v\nredis-server log:\n%s", err, s.run.Out.String())
	}
}

var errAddrInUse = errors.New("address already in use")

// start runs redis-server on s.port and waits for PING. It returns errAddrInUse when
// the port is taken, so Start can retry on another.
func (s *Server) start() error {
	plainPort := strconv.Itoa(s.port)
	if s.tlsConf != nil {
		plainPort = "0" // TLS only: no plain TCP port
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--port", plainPort,
		"--dir", s.dir,
		"--daemonize", "no",
		"--save", "",
		"--logfile", "",
	}
	if s.tlsConf != nil {
		auth := s.opts.TLSAuthClients
		if auth == "" {
			auth = "no"
		}
		args = append(args,
			"--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", s.tlsFiles.ServerCert,
			"--tls-key-file", s.tlsFiles.ServerKey,
			"--tls-ca-cert-file", s.tlsFiles.CA,
			"--tls-auth-clients", auth)
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.busPort != 0 {
		args = append(args, "--cluster-port", strconv.Itoa(s.busPort))
	}
	args = append(args, s.opts.Args...)

	logStart := s.run.Out.Len()
	exited, err := s.run.Start(s.bin, args, s.dir)
	if err != nil {
		return err
	}
	if err := waitPing(s.Addr(), s.tlsConf, exited, readyTimeout); err != nil {
		_ = s.stop()
		if strings.Contains(s.run.Out.Since(logStart), "Address already in use") {
			return fmt.Errorf("port %d: %w", s.port, errAddrInUse)
		}
		return err
	}
	return nil
}

// running reports whether the server's process is up: started, and neither
// killed nor exited on its own.
func (s *Server) running() bool { return s.run.Running() }

// stop kills the current process, if any, and waits for it to exit.
func (s *Server) stop() error { return s.run.Kill(stopTimeout) }

// waitPing polls addr with a raw PING (over TLS when conf is not nil) until it answers
// +PONG (a server still loading its AOF answers -LOADING), the process exits, or
// timeout passes.
func waitPing(addr string, conf *tls.Config, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited before answering PING", addr)
		default:
		}
		if last = ping(ctx, addr, conf); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited before answering PING", addr)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s did not answer PING within %v: %w", addr, timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, addr string, conf *tls.Config) error {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if conf != nil {
		d := tls.Dialer{Config: conf}
		conn, err = d.DialContext(dctx, "tcp", addr) // returns after the handshake
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("write PING: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
