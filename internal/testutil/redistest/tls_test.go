package redistest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// tlsClient connects to s with conf (nil: plain TCP) and no retries, so a
// refused handshake is reported at once.
func tlsClient(t *testing.T, s *redistest.Server, conf *tls.Config) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: conf, MaxRetries: -1, DialTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clientConf is a client configuration trusting files' CA, with its client
// certificate when withCert.
func clientConf(t *testing.T, files redistest.TLSFiles, withCert bool) *tls.Config {
	t.Helper()
	conf, err := files.Config()
	if err != nil {
		t.Fatal(err)
	}
	if !withCert {
		conf.Certificates = nil
	}
	return conf
}

func TestStart_with_TLS_serves_only_TLS_on_its_port(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TLS: true})
	ctx := context.Background()

	if got, want := s.URL(), "rediss://"+s.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through Client: %v", err)
	}
	cfg, err := s.Client(t).ConfigGet(ctx, "*port").Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(s.Addr()); cfg["port"] != "0" || cfg["tls-port"] != port {
		t.Errorf("port = %q, tls-port = %q; want 0 and %s", cfg["port"], cfg["tls-port"], port)
	}

	// The URL with the CA is what the sidecar gets: it reaches the same server.
	o, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig == nil {
		t.Fatalf("ParseURL(%q) has no TLS config", s.URL())
	}
	o.TLSConfig.RootCAs = clientConf(t, s.TLSFiles(), false).RootCAs
	c := redis.NewClient(o)
	defer c.Close()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k through URL = %q, %v; want \"v\", nil", got, err)
	}

	// A plain TCP client gets no PONG.
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = conn.Write([]byte("PING\r\n"))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); strings.Contains(line, "PONG") {
		t.Errorf("plain PING answered %q, want no answer from a TLS-only port", line)
	}
}

func TestStart_with_TLS_verifies_clients_as_TLSAuthClients_says(t *testing.T) {
	other := redistest.NewTLSFiles(t) // a CA the server does not know
	tests := []struct {
		authClients string
		// whether a client without a certificate, and one with a certificate
		// of another CA, are served
		noCert, otherCert bool
	}{
		{"", true, true},
		{"no", true, true},
		{"optional", true, false},
		{"yes", false, false},
	}
	for _, tc := range tests {
		t.Run("auth clients "+strconv.Quote(tc.authClients), func(t *testing.T) {
			t.Parallel()
			s := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: tc.authClients})
			ctx := context.Background()
			if err := tlsClient(t, s, clientConf(t, s.TLSFiles(), true)).Ping(ctx).Err(); err != nil {
				t.Errorf("PING with the CA's client certificate: %v, want PONG", err)
			}
			err := tlsClient(t, s, clientConf(t, s.TLSFiles(), false)).Ping(ctx).Err()
			if got := err == nil; got != tc.noCert {
				t.Errorf("PING without a client certificate: got error %v, want served=%v", err, tc.noCert)
			}
			conf := clientConf(t, s.TLSFiles(), false)
			otherConf := clientConf(t, other, true)
			conf.Certificates = otherConf.Certificates
			err = tlsClient(t, s, conf).Ping(ctx).Err()
			if got := err == nil; got != tc.otherCert {
				t.Errorf("PING with another CA's client certificate: got error %v, want served=%v", err, tc.otherCert)
			}
		})
	}
}

func TestStart_with_TLS_is_refused_by_a_client_that_does_not_know_the_CA(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TLS: true})
	conf := &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12} // system roots
	err := tlsClient(t, s, conf).Ping(context.Background()).Err()
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("PING with the system roots: got %v, want x509.UnknownAuthorityError", err)
	}
}

func TestRestart_with_TLS_keeps_TLS_and_the_certificates(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: "yes"})
	files := s.TLSFiles()
	s.Restart(t)
	if s.TLSFiles() != files {
		t.Errorf("TLSFiles after Restart = %+v, want %+v", s.TLSFiles(), files)
	}
	if err := s.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Errorf("PING after Restart: %v", err)
	}
}

func TestNewTLSFiles_makes_a_CA_that_signed_both_certificates(t *testing.T) {
	f := redistest.NewTLSFiles(t)
	conf := clientConf(t, f, true)
	server, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cert  tls.Certificate
		usage x509.ExtKeyUsage
		host  string
	}{
		{"server", server, x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		{"server by name", server, x509.ExtKeyUsageServerAuth, "localhost"},
		{"client", conf.Certificates[0], x509.ExtKeyUsageClientAuth, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf, err := x509.ParseCertificate(tc.cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: conf.RootCAs, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if err != nil {
				t.Errorf("verify against the CA: got %v, want nil", err)
			}
		})
	}
}

func TestStart_rejects_TLSAuthClients_it_cannot_apply(t *testing.T) {
	tests := []struct {
		name string
		opts redistest.Options
		want string
	}{
		{"without TLS", redistest.Options{TLSAuthClients: "yes"}, `TLSAuthClients "yes" needs TLS`},
		{"unknown value", redistest.Options{TLS: true, TLSAuthClients: "maybe"}, `TLSAuthClients is "maybe", want yes, no or optional`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fatalTB{TB: t}
			ft.run(func() { redistest.Start(ft, tc.opts) })
			if !strings.Contains(ft.fatal, tc.want) {
				t.Errorf("fatal = %q, want it to contain %q", ft.fatal, tc.want)
			}
		})
	}
}
