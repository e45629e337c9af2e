package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limits of the settings; --help states them too.
const (
	minEventBytes     = 1 << 10
	maxEventBytes     = 64 << 20
	maxAppConcurrency = 4096
	maxRetries        = 20
	maxSourceLen      = 128 // as event.MaxSourceLen
	maxWaitReplicas   = 64
	// WAIT takes whole milliseconds, and 0 would mean forever; a publish
	// must answer within seconds.
	minWaitTimeout = time.Millisecond
	maxWaitTimeout = 10 * time.Second
)

// Compiled once; a *regexp.Regexp is immutable and safe for concurrent use.
var (
	// tenantRE is SPEC §1's tenantId rule (event.TenantIDPattern): a tenant
	// becomes part of a Redis key.
	tenantRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	groupRE     = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	keyPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
)

// Validate reports the first invalid setting as one line that names its
// flag and never holds a secret. It does not modify c. Subscriptions are
// checked by Load (pattern and path present, path absolute) and by package
// subscription (pattern syntax).
func (c *Config) Validate() error {
	for _, check := range []func() error{
		c.checkListen,
		c.checkRedis,
		c.checkApp,
		c.checkPushFormat,
		c.checkIdentity,
		c.checkTenants,
		c.checkRetention,
		c.checkProcess,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkListen() error {
	if err := checkHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if c.Socket != "" && len(c.Socket) > maxSocketPath() {
		return fmt.Errorf("--socket: path is %d bytes long; a Unix socket path may have at most %d",
			len(c.Socket), maxSocketPath())
	}
	return nil
}

func (c *Config) checkRedis() error {
	if c.RedisURL != "" {
		if err := checkRedisURL(c.RedisURL, c.RedisCluster); err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
	} else if c.RedisCluster {
		return errors.New("--redis-cluster: needs --redis-url (the embedded store is a single node)")
	}
	if err := c.checkRedisTLS(); err != nil {
		return err
	}
	if c.RedisPoolSize < 0 {
		return fmt.Errorf("--redis-pool-size: must be 0 (library default) or more, got %d", c.RedisPoolSize)
	}
	if err := c.checkRedisWait(); err != nil {
		return err
	}
	if c.NATSURL != "" {
		if c.RedisURL != "" {
			return errors.New("--nats-url: set either --redis-url or --nats-url, not both")
		}
		if err := checkNATSURL(c.NATSURL); err != nil {
			return fmt.Errorf("--nats-url: %w", err)
		}
	}
	if c.DataDir == "" {
		return errors.New("--data-dir: must not be empty")
	}
	if c.EmbeddedListen != "" {
		if c.RedisURL != "" || c.NATSURL != "" {
			return errors.New("--embedded-listen: only for the embedded store; remove it, or remove --redis-url/--nats-url")
		}
		if err := checkHostPort(c.EmbeddedListen); err != nil {
			return fmt.Errorf("--embedded-listen: %w", err)
		}
	}
	return nil
}

// checkRedisWait checks --redis-wait-replicas and --redis-wait-timeout.
// WAIT counts a Redis primary's replicas: the embedded store and NATS have
// no such setting.
func (c *Config) checkRedisWait() error {
	if c.RedisWaitReplicas < 0 || c.RedisWaitReplicas > maxWaitReplicas {
		return fmt.Errorf("--redis-wait-replicas: must be 0 (do not wait) to %d, got %d", maxWaitReplicas, c.RedisWaitReplicas)
	}
	if c.RedisWaitReplicas > 0 && c.RedisURL == "" {
		return errors.New("--redis-wait-replicas: needs --redis-url (it waits for replicas of the Redis primary)")
	}
	if c.RedisWaitTimeout < minWaitTimeout || c.RedisWaitTimeout > maxWaitTimeout {
		return fmt.Errorf("--redis-wait-timeout: must be %s to %s, got %s", minWaitTimeout, maxWaitTimeout, c.RedisWaitTimeout)
	}
	return nil
}

// checkRedisTLS checks --redis-ca, --redis-cert and --redis-key: they need
// a rediss:// URL, the certificate and key come together, and every file is
// read and parsed now, so that a wrong path or a bad file stops the sidecar
// at start instead of failing each connection later.
func (c *Config) checkRedisTLS() error {
	files := []struct{ name, path string }{
		{"redis-ca", c.RedisCA}, {"redis-cert", c.RedisCert}, {"redis-key", c.RedisKey},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if u, _ := url.Parse(c.RedisURL); u == nil || u.Scheme != "rediss" {
			got := "none"
			if c.RedisURL != "" {
				got = displayURL(c.RedisURL)
			}
			return fmt.Errorf("--%s: TLS to Redis needs a rediss:// --redis-url, got %s", f.name, got)
		}
	}
	if c.RedisCA != "" {
		pem, err := readFile(c.RedisCA)
		if err != nil {
			return fmt.Errorf("--redis-ca: %w", err)
		}
		if err := parseCertificates(c.RedisCA, pem); err != nil {
			return fmt.Errorf("--redis-ca: %w", err)
		}
	}
	switch {
	case c.RedisCert != "" && c.RedisKey == "":
		return errors.New("--redis-cert: needs --redis-key, the file of the certificate's private key")
	case c.RedisKey != "" && c.RedisCert == "":
		return errors.New("--redis-key: needs --redis-cert, the file of the client certificate")
	case c.RedisCert == "":
		return nil
	}
	certPEM, err := readFile(c.RedisCert)
	if err != nil {
		return fmt.Errorf("--redis-cert: %w", err)
	}
	if err := parseCertificates(c.RedisCert, certPEM); err != nil {
		return fmt.Errorf("--redis-cert: %w", err)
	}
	keyPEM, err := readFile(c.RedisKey)
	if err != nil {
		return fmt.Errorf("--redis-key: %w", err)
	}
	// The certificate parsed above, so what fails here is the key: missing,
	// unreadable, encrypted, or not the certificate's. The message never
	// holds the key's bytes.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("--redis-key: %s: %s (want the unencrypted PEM private key of --redis-cert)",
			c.RedisKey, strings.TrimPrefix(err.Error(), "tls: "))
	}
	return nil
}

// parseCertificates checks that the PEM data of file holds at least one
// certificate and that each CERTIFICATE block parses; other blocks are
// skipped, as crypto/x509.CertPool.AppendCertsFromPEM does.
func parseCertificates(file string, data []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("%s: certificate %d: %w", file, n, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	return nil
}

// checkNATSURL checks each comma-separated server URL of --nats-url.
func checkNATSURL(s string) error {
	for _, one := range strings.Split(s, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil {
			return errors.New("not a valid URL (value not shown: it may hold a password; " +
				"percent-encode characters such as @ : / # ? in the user and password)")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("must be nats://host:port or tls://host:port, got %q", displayURL(one))
		}
		if u.Hostname() == "" {
			return fmt.Errorf("has no host, got %q", displayURL(one))
		}
		if p := u.Port(); p != "" {
			if err := checkPort(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// displayNATSURL is displayURL for each server of a --nats-url list.
func displayNATSURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = displayURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func (c *Config) checkPushFormat() error {
	if c.PushFormat != "native" && c.PushFormat != "cloudevents" {
		return fmt.Errorf("--push-format: must be native or cloudevents, got %q", c.PushFormat)
	}
	return nil
}

func (c *Config) checkApp() error {
	if c.AppURL != "" {
		if err := checkAppURL(c.AppURL); err != nil {
			return fmt.Errorf("--app-url: %w", err)
		}
	}
	if c.AppTimeout <= 0 {
		return fmt.Errorf("--app-timeout: must be more than 0, got %s", c.AppTimeout)
	}
	if c.AppConcurrency < 1 || c.AppConcurrency > maxAppConcurrency {
		return fmt.Errorf("--app-concurrency: must be 1 to %d, got %d", maxAppConcurrency, c.AppConcurrency)
	}
	for _, t := range []struct{ name, value string }{
		{"app-token", c.AppToken}, {"api-token", c.APIToken}, {"admin-token", c.AdminToken},
	} {
		if !printable(t.value, '!') {
			return fmt.Errorf("--%s: must be printable ASCII without spaces or line breaks (value not shown)", t.name)
		}
	}
	return nil
}

func (c *Config) checkIdentity() error {
	if !groupRE.MatchString(c.Group) {
		return fmt.Errorf("--group: must be 1-64 characters of A-Z a-z 0-9 . _ : -, got %q", c.Group)
	}
	if c.Source == "" || len(c.Source) > maxSourceLen || !printable(c.Source, '!') {
		return fmt.Errorf("--source: must be 1-%d characters of printable ASCII without spaces, got %q",
			maxSourceLen, c.Source)
	}
	if !keyPrefixRE.MatchString(c.KeyPrefix) {
		return fmt.Errorf("--key-prefix: must be 1-32 characters of A-Z a-z 0-9 _ -, got %q", c.KeyPrefix)
	}
	return nil
}

func (c *Config) checkTenants() error {
	for _, t := range c.Tenants {
		if !tenantRE.MatchString(t) {
			return fmt.Errorf("--tenants: %q must match %s", t, tenantRE)
		}
	}
	if c.Tenant == "" {
		return nil
	}
	if !tenantRE.MatchString(c.Tenant) {
		return fmt.Errorf("--tenant: %q must match %s", c.Tenant, tenantRE)
	}
	if len(c.Tenants) > 0 && !slices.Contains(c.Tenants, c.Tenant) {
		return fmt.Errorf("--tenant: %q is not in --tenants (%s)", c.Tenant, strings.Join(c.Tenants, ","))
	}
	return nil
}

func (c *Config) checkRetention() error {
	n := len(c.RetrySchedule)
	if n < 1 || n > maxRetries {
		return fmt.Errorf("--retry-schedule: must have 1 to %d durations, got %d", maxRetries, n)
	}
	var total time.Duration
	for i, d := range c.RetrySchedule {
		if d <= 0 {
			return fmt.Errorf("--retry-schedule: every wait must be more than 0, got %s", d)
		}
		if i > 0 && d < c.RetrySchedule[i-1] {
			return fmt.Errorf("--retry-schedule: must not decrease, but %s follows %s", d, c.RetrySchedule[i-1])
		}
		total += d
	}
	// A push still running when its entry becomes due again would be
	// delivered twice at once.
	if c.AppTimeout >= c.RetrySchedule[0] {
		return fmt.Errorf("--app-timeout: %s must be shorter than the first --retry-schedule step (%s), "+
			"or a slow push would be retried while still in flight", c.AppTimeout, c.RetrySchedule[0])
	}
	if c.Retention <= 0 {
		return fmt.Errorf("--retention: must be more than 0, got %s", c.Retention)
	}
	// An entry still pending when MINID trims it is lost: its last retry
	// could neither deliver nor dead-letter it.
	if c.Retention <= total {
		return fmt.Errorf("--retention: %s must be longer than the whole --retry-schedule (%s), "+
			"or events would be trimmed before their last retry", c.Retention, total)
	}
	if c.DLQRetention <= 0 {
		return fmt.Errorf("--dlq-retention: must be more than 0, got %s", c.DLQRetention)
	}
	return nil
}

func (c *Config) checkProcess() error {
	if c.MaxEventBytes < minEventBytes || c.MaxEventBytes > maxEventBytes {
		return fmt.Errorf("--max-event-bytes: must be 1KiB (%d) to 64MiB (%d), got %d",
			minEventBytes, maxEventBytes, c.MaxEventBytes)
	}
	switch c.LogLevel {
	case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
	default:
		return fmt.Errorf("--log-level: must be debug, info, warn or error, got %s", c.LogLevel)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout: must be more than 0, got %s", c.ShutdownTimeout)
	}
	return nil
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", s)
	}
	return checkPort(port)
}

func checkPort(port string) error {
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number from 0 to 65535, got %q", port)
	}
	return nil
}

// checkAppURL accepts http://host[:port] and unix:///absolute/path.
func checkAppURL(s string) error {
	bad := fmt.Errorf("must be http://host:port or unix:///path, got %q", displayURL(s))
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad
	}
	switch u.Scheme {
	case "http":
		if u.Hostname() == "" || u.Path != "" {
			return bad
		}
		if p := u.Port(); p != "" {
			return checkPort(p)
		}
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return bad
		}
		if len(u.Path) > maxSocketPath() {
			return fmt.Errorf("socket path is %d bytes long; a Unix socket path may have at most %d",
				len(u.Path), maxSocketPath())
		}
	default:
		return bad
	}
	return nil
}

// checkRedisURL checks the URL as the Redis client will read it, so that a
// bad query parameter fails here, naming the flag, rather than at connect.
func checkRedisURL(s string, cluster bool) error {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse quotes the URL, password included: say nothing of it.
		return errors.New("not a valid URL (value not shown: it may hold a password; " +
			"percent-encode characters such as @ : / # ? in the user and password)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("must be redis://host:port or rediss://host:port, got %q", displayURL(s))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("has no host, got %q", displayURL(s))
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return err
		}
	}
	if cluster {
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return fmt.Errorf("a Redis Cluster has only database 0, got /%s", db)
		}
		_, err = redis.ParseClusterURL(s)
	} else {
		_, err = redis.ParseURL(s)
	}
	if err != nil {
		// The client's messages name options, never the password; the
		// library's error type stays inside this package.
		return errors.New(strings.TrimPrefix(err.Error(), "redis: "))
	}
	return nil
}

// displayURL returns s without the password of its user info, for errors
// and logs. A string that does not parse and may hold user info is hidden.
func displayURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "***"
		}
		return s
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.User(u.User.Username())
		}
	}
	return u.String()
}

// maxSocketPath is the longest Unix socket path the OS accepts (sun_path
// less its terminating NUL).
func maxSocketPath() int {
	switch runtime.GOOS {
	case "linux", "android":
		return 107
	}
	return 103
}

// printable reports whether s is ASCII from lo to '~' ('!' excludes spaces).
func printable(s string, lo byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < lo || s[i] > '~' {
			return false
		}
	}
	return true
}
