// Command sidecar runs the HYVVE event-bus sidecar beside one app. See
// `sidecar --help` and the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hyvve/sidecar/internal/config"
	"github.com/hyvve/sidecar/internal/daemon"
	"github.com/hyvve/sidecar/internal/redisstore"
	"github.com/hyvve/sidecar/internal/tracing"
)

// traceFlushTimeout bounds how long exit waits to send the spans still queued.
const traceFlushTimeout = 5 * time.Second

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run returns the exit code: 0 after a clean shutdown, 2 for bad
// configuration, 1 for a failure at run time.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintf(stdout, "hyvve-sidecar %s\n", version)
		return 0
	}
	cfg, err := config.Load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar: %v\n", err)
		return 2
	}
	tcfg, err := tracing.FromEnv(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	redisstore.RouteLibraryLog(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	tp, err := tracing.New(ctx, tcfg, version, log)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar: %v\n", err)
		return 2
	}
	// Spans still queued are sent on the way out, after the daemon stopped.
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
		defer cancel()
		if err := tp.Shutdown(fctx); err != nil {
			log.Warn("tracing: spans lost at exit", "error", err)
		}
	}()
	if tp.Enabled() {
		log.Info("tracing on", "endpoint", tcfg.Endpoint, "service_name", tcfg.ServiceName, "sampler", tcfg.Sampler.Description())
	}
	d, err := daemon.New(cfg, version, log, daemon.WithTracer(tp.Tracer()))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar: %v\n", err)
		return 2
	}
	if err := d.Run(ctx); err != nil {
		log.Error("sidecar exited with an error", "error", err)
		return 1
	}
	return 0
}
