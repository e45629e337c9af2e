package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

func TestNew_builds_the_TLS_configuration_from_the_URL_and_the_files(t *testing.T) {
	f := redistest.NewTLSFiles(t)
	tests := []struct {
		name       string
		o          Options
		wantRoots  bool // the CA replaces the system's roots
		wantCert   bool
		wantVerify bool
	}{
		{"rediss alone", Options{URL: "rediss://u:pw@redis.example.com:6380/0"}, false, false, true},
		{"CA", Options{URL: "rediss://redis.example.com:6380", CAFile: f.CA}, true, false, true},
		{"client certificate", Options{URL: "rediss://redis.example.com:6380", CertFile: f.ClientCert, KeyFile: f.ClientKey},
			false, true, true},
		{"both, and the URL's skip_verify", Options{URL: "rediss://redis.example.com:6380?skip_verify=true",
			CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}, true, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			conf := s.rdb.(*redis.Client).Options().TLSConfig
			if conf == nil {
				t.Fatal("got no TLS configuration, want one for rediss://")
			}
			if conf.ServerName != "redis.example.com" || conf.MinVersion != tls.VersionTLS12 {
				t.Errorf("ServerName %q MinVersion %x, want redis.example.com and TLS 1.2 (%x)",
					conf.ServerName, conf.MinVersion, tls.VersionTLS12)
			}
			if got := conf.RootCAs != nil; got != tc.wantRoots {
				t.Errorf("RootCAs set: got %v, want %v", got, tc.wantRoots)
			}
			if got := len(conf.Certificates) == 1; got != tc.wantCert {
				t.Errorf("client certificate: got %d, want present=%v", len(conf.Certificates), tc.wantCert)
			}
			if got := !conf.InsecureSkipVerify; got != tc.wantVerify {
				t.Errorf("verifies the server: got %v, want %v", got, tc.wantVerify)
			}
		})
	}
	t.Run("redis:// has no TLS", func(t *testing.T) {
		s, err := New(Options{URL: "redis://r:6379"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if conf := s.rdb.(*redis.Client).Options().TLSConfig; conf != nil {
			t.Errorf("got a TLS configuration for redis://, want none")
		}
	})
}

func TestNew_rejects_TLS_files_it_cannot_use(t *testing.T) {
	f := redistest.NewTLSFiles(t)
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"CA with redis://", Options{URL: "redis://u:secret-pw@r:6379", CAFile: f.CA},
			"--redis-ca, --redis-cert, --redis-key: TLS to Redis needs a rediss:// --redis-url"},
		{"missing CA", Options{URL: "rediss://r:6380", CAFile: "/nonexistent/ca.pem"},
			"--redis-ca: open /nonexistent/ca.pem: no such file or directory"},
		{"CA without a certificate", Options{URL: "rediss://r:6380", CAFile: f.ClientKey},
			"--redis-ca: " + f.ClientKey + " holds no PEM certificate"},
		{"certificate without key", Options{URL: "rediss://r:6380", CertFile: f.ClientCert},
			"--redis-cert, --redis-key: a client certificate needs both"},
		{"key of another certificate", Options{URL: "rediss://r:6380", CertFile: f.ClientCert, KeyFile: f.ServerKey},
			"--redis-cert " + f.ClientCert + ", --redis-key " + f.ServerKey + ": tls: private key does not match public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.o)
			if err == nil {
				s.Close()
				t.Fatalf("got no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestStore_Ping_over_TLS(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: "yes"})
	f := srv.TLSFiles()
	tests := []struct {
		name string
		o    Options
		want string // "" = PING answers; else in the error
	}{
		{"CA and client certificate", Options{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}, ""},
		{"unknown CA", Options{CertFile: f.ClientCert, KeyFile: f.ClientKey}, "certificate signed by unknown authority"},
		{"no client certificate", Options{CAFile: f.CA}, "certificate required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.URL = srv.URL()
			s, err := New(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = s.Ping(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Ping: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Ping: got %v, want an error containing %q", err, tc.want)
			case tc.want != "" && !errors.Is(err, relay.ErrUnavailable):
				t.Errorf("Ping: got %v, want it to wrap relay.ErrUnavailable (the sidecar is not ready)", err)
			}
		})
	}
}

// A user limited to the documented commands cannot be granted CLIENT SETINFO
// on Redis 7.0, so the client must not send it.
func TestNew_does_not_send_CLIENT_SETINFO(t *testing.T) {
	s, err := New(Options{URL: "redis://r:6379"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.rdb.(*redis.Client).Options().DisableIdentity {
		t.Errorf("DisableIdentity: got false, want true")
	}
}
