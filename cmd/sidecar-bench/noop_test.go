package main

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestServeNoop_answers_202_over_tcp_and_unix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "noop.sock")
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- serveNoop(ctx, sock, w) }()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("read the no-op server's first line: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("first line = %q, want \"listening <addr>\"", line)
	}
	for _, tc := range []struct{ name, addr, socket string }{{"tcp", addr, ""}, {"unix", "", sock}} {
		t.Run(tc.name, func(t *testing.T) {
			hc := newHostClient(tc.addr, tc.socket, 1)
			defer hc.CloseIdleConnections()
			if err := httpOp(hc, "/v1/events", eventBody(1024))()(ctx); err != nil {
				t.Errorf("publish to the no-op server: %v, want 202", err)
			}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + hc.Addr + "/v1/events")
			req.Header.SetMethod("POST")
			if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil || string(resp.Body()) != noopReply {
				t.Errorf("body = %q, %v; want the fixed reply", resp.Body(), err)
			}
		})
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("serveNoop after ctx ended: %v, want nil", err)
	}
}
