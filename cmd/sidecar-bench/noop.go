package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// noopReply has the size and shape of the sidecar's answer to a publish, so
// both targets move the same bytes.
const noopReply = `{"id":"0193a3f4-5b6c-7d8e-9f01-23456789abcd","tenantId":"acme",` +
	`"correlationId":"5f0c2e1a-7b3d-4c9e-8a6f-1d2e3f405162","stream":"hyvve:events:{acme}","streamId":"1764000000000-0"}`

// serveNoop is the no-op server: a separate process (like the sidecar, so
// both pay the same scheduling and context switches) that answers every
// request with 202 and a fixed body, on a TCP port it picks and on socket. It
// prints "listening <addr>" once both listeners are bound and serves until ctx
// ends.
func serveNoop(ctx context.Context, socket string, stdout io.Writer) error {
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(noopReply)
		},
		Name:                  "noop",
		MaxRequestBodySize:    16 << 20, // as the sidecar: batches fit
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("no-op server: %w", err)
	}
	lns := []net.Listener{tcp}
	if socket != "" {
		_ = os.Remove(socket)
		unix, err := net.Listen("unix", socket)
		if err != nil {
			tcp.Close()
			return fmt.Errorf("no-op server: %w", err)
		}
		lns = append(lns, unix)
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Fprintf(stdout, "listening %s\n", tcp.Addr())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	err = srv.Shutdown() // closes the listeners, removing the socket file
	return errors.Join(serveErr, err)
}
