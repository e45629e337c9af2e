package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are the PEM files of a certificate authority made for one test and
// of two certificates it signed, all in the test's temporary directory. Keys
// are ECDSA P-256, unencrypted PKCS #8; certificates are valid from an hour
// ago for a day.
type TLSFiles struct {
	// CA is the CA's certificate: what --redis-ca and redis-server's
	// --tls-ca-cert-file take.
	CA string
	// ServerCert and ServerKey are a server certificate for 127.0.0.1, ::1
	// and localhost.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate (CN "hyvve-sidecar").
	ClientCert, ClientKey string
}

// NewTLSFiles makes a new CA and a server and a client certificate signed
// by it, writes them to a fresh t.TempDir() and returns their paths. Each
// call makes a different CA, so files from two calls do not trust each
// other. It fails the test on error.
func NewTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	files, err := newTLSFiles(t.TempDir())
	if err != nil {
		t.Fatalf("redistest.NewTLSFiles: %v", err)
	}
	return files
}

// Config returns a client configuration that trusts the CA, presents the
// client certificate and expects the server certificate for 127.0.0.1.
func (f TLSFiles) Config() (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", f.CA)
	}
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
		ServerName:   "127.0.0.1",
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func newTLSFiles(dir string) (TLSFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSFiles{}, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, caCert, err := sign(caTmpl, nil, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSFiles{}, fmt.Errorf("CA: %w", err)
	}
	f := TLSFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	if err := writePEM(f.CA, "CERTIFICATE", caDER); err != nil {
		return TLSFiles{}, err
	}
	leaves := []struct {
		tmpl              *x509.Certificate
		certPath, keyPath string
	}{
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "redistest server"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}, f.ServerCert, f.ServerKey},
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "hyvve-sidecar"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, f.ClientCert, f.ClientKey},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return TLSFiles{}, err
		}
		l.tmpl.NotBefore = now.Add(-time.Hour)
		l.tmpl.NotAfter = now.Add(24 * time.Hour)
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, _, err := sign(l.tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return TLSFiles{}, fmt.Errorf("%s: %w", l.tmpl.Subject.CommonName, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return TLSFiles{}, err
		}
		if err := writePEM(l.certPath, "CERTIFICATE", der); err != nil {
			return TLSFiles{}, err
		}
		if err := writePEM(l.keyPath, "PRIVATE KEY", keyDER); err != nil {
			return TLSFiles{}, err
		}
	}
	return f, nil
}

// sign gives tmpl a random serial number and signs it with the key of
// parent (tmpl itself when parent is nil: a self-signed CA).
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func writePEM(path, typ string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
