// Command fakesidecar stands in for cmd/sidecar in sidecartest's own tests. It honors
// the parts of the sidecar's command-line contract that sidecartest relies on:
// --listen, --socket, GET /readyz, JSON logs on stderr and SIGTERM → exit.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4750", "TCP address")
	socket := flag.String("socket", "", "Unix socket path")
	exitNow := flag.Int("exit", -1, "exit at once with this code")
	termExit := flag.Int("term-exit", 0, "exit code after SIGTERM")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	notReady := flag.Bool("not-ready", false, "answer /readyz with 503")
	flag.Parse()

	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)

	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HYVVE_") {
			env = append(env, kv)
		}
	}
	fmt.Fprintf(os.Stderr, "{\"level\":\"INFO\",\"msg\":\"starting\",\"env\":%q}\n", strings.Join(env, ","))
	fmt.Println("hello on stdout")
	if *exitNow >= 0 {
		fmt.Fprintln(os.Stderr, `{"level":"ERROR","msg":"bad config: --exit"}`)
		os.Exit(*exitNow)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if *notReady {
			http.Error(w, "broker: not connected", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d", r.Context().Value(http.LocalAddrContextKey).(net.Addr).Network(), os.Getpid())
	})
	serve := func(network, addr string) {
		l, err := net.Listen(network, addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "{\"level\":\"ERROR\",\"msg\":\"listen\",\"error\":%q}\n", err.Error())
			os.Exit(1)
		}
		go http.Serve(l, mux)
	}
	serve("tcp", *listen)
	if *socket != "" {
		serve("unix", *socket)
	}

	for range terms {
		if *ignoreTerm {
			continue
		}
		fmt.Fprintln(os.Stderr, `{"level":"INFO","msg":"stopped"}`)
		os.Exit(*termExit)
	}
}
