package appclient

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// startFastApp serves a fasthttp app answering 204 on network until the
// benchmark ends and returns its URL.
func startFastApp(b *testing.B, network string) string {
	b.Helper()
	var (
		l   net.Listener
		err error
		url string
	)
	if network == "unix" {
		path := socketPath(b)
		l, err = net.Listen("unix", path)
		url = "unix://" + path
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if l != nil {
			url = "http://" + l.Addr().String()
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	b.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			b.Error(err)
		}
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return url
}

func BenchmarkPush(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	for _, network := range networks {
		b.Run(network, func(b *testing.B) {
			c := newClient(b, Options{URL: startFastApp(b, network), MaxConns: 1})
			// A cancelable context, as the relay passes.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d := &Delivery{
				Path: "/events/approval", EventID: "0193a0d4-7b8c-7def-8000-000000000001", EventType: "approval.granted",
				TenantID: "acme", CorrelationID: "corr-1", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				Attempt: 1, Body: body,
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Push(ctx, d)
				if err != nil || res.Status != fasthttp.StatusNoContent {
					b.Fatalf("got %d, %v; want 204, nil", res.Status, err)
				}
			}
		})
	}
}
