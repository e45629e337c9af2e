package localapi

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// minMaxConns is the least defaultMaxConns gives, however low the open-file
// limit.
const minMaxConns = 64

// defaultMaxConns is the connection cap of each listener when Options leave
// it unset: DefaultMaxConns, or a quarter of the open-file limit when that is
// lower, so that the local API's connections (two listeners: half at most)
// never take the descriptors the broker, the embedded store and the pushes
// to the app need.
func defaultMaxConns() int {
	n := DefaultMaxConns
	if lim := openFileLimit(); lim > 0 && lim/4 < uint64(n) {
		n = max(int(lim/4), minMaxConns)
	}
	return n
}

// capListener caps the open connections of a listener at cap(slots). A
// connection over the cap gets the API's JSON error (503
// too_many_connections, Retry-After: 1) and is closed, so a client sees the
// same error shape as from any other refusal, not the web server's plain
// text. A slot is freed when the server closes the connection.
type capListener struct {
	net.Listener
	slots chan struct{}
	// refusing bounds the refusals in progress: each holds its connection
	// for up to refuseTimeout; beyond it a connection is just closed.
	refusing chan struct{}
	answer   []byte // the whole answer to a connection over the cap
	refused  prometheus.Counter
	log      *slog.Logger
	once     sync.Once // the first refusal is logged; the counter counts every one
}

// Bounds of refusing a connection over the cap.
const (
	maxRefusing   = 64
	refuseTimeout = time.Second
)

func newCapListener(ln net.Listener, maxConns int, refused prometheus.Counter, log *slog.Logger) *capListener {
	body := appendError(nil, "too_many_connections",
		"", "the sidecar has as many open connections as it serves; retry, and reuse connections (keep-alive)", 0)
	answer := fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"+
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return &capListener{Listener: ln, slots: make(chan struct{}, maxConns), refusing: make(chan struct{}, maxRefusing),
		answer: answer, refused: refused, log: log}
}

// Accept returns the next connection within the cap; those over it are
// answered and closed without reaching the caller.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &capConn{Conn: c, slots: l.slots}, nil
		default:
		}
		l.refused.Inc()
		l.once.Do(func() {
			l.log.Warn("connection refused: too many open connections (logged once; hyvve_local_connections_refused_total counts them)",
				"listener", l.Addr().String(), "max_conns", cap(l.slots))
		})
		select {
		case l.refusing <- struct{}{}:
			go func() {
				defer func() { <-l.refusing }()
				refuseConn(c, l.answer)
			}()
		default:
			_ = c.Close()
		}
	}
}

// refuseConn writes answer and closes c gracefully: it ends its
// side first and reads what the client sent (its request) until the client
// closes or refuseTimeout passes. Closing with the request unread would reset
// the connection, and the client could lose the answer.
func refuseConn(c net.Conn, answer []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	if _, err := c.Write(answer); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// capConn frees its listener slot once, at its first Close.
type capConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}
