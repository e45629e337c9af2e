// Package freeport picks TCP ports on 127.0.0.1 for test servers.
package freeport

import (
	"fmt"
	"net"
)

// Get returns a port that was free a moment ago. Another process may take it
// before the caller binds it: callers that start a server on it retry with a
// new port when the bind fails.
func Get() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	return port, nil
}
