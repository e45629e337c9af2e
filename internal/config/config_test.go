package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/subscription"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var noEnv = env(nil)

// writeFile writes a config file in a temporary directory and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, args []string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Load(args, getenv)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return c
}

func TestLoad_without_settings_gives_the_documented_defaults(t *testing.T) {
	got := mustLoad(t, nil, noEnv)
	want := &Config{
		Listen:          "127.0.0.1:4750",
		DataDir:         "./hyvve-data",
		AppTimeout:      10 * time.Second,
		AppConcurrency:  16,
		Group:           "hyvve-platform",
		Source:          "hyvve-platform",
		KeyPrefix:       "hyvve",
		RetrySchedule:   []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute},
		Retention:       720 * time.Hour,
		DLQRetention:    720 * time.Hour,
		MaxEventBytes:   1 << 20,
		PushFormat:      "native",
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 30 * time.Second,

		RedisWaitTimeout: time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", *got, *want) // String hides nothing here: no secrets set
		gv, wv := reflect.ValueOf(*got), reflect.ValueOf(*want)
		for i := range gv.NumField() {
			if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
				t.Errorf("%s: got %v, want %v", gv.Type().Field(i).Name, gv.Field(i), wv.Field(i))
			}
		}
	}
}

// settingRow is one flag, a valid non-default value, and the Config field
// it must land in.
type settingRow struct {
	flag, value, field string
	want               any
	also               map[string]string // other settings the value needs
}

// everySetting gives each flag a valid non-default value; tf are the
// certificate files the TLS flags name. A new flag fails
// TestLoad_sets_each_field until it is added here.
func everySetting(tf redistest.TLSFiles) []settingRow {
	tlsURL := "rediss://r.example.com:6380"
	return []settingRow{
		{"listen", "0.0.0.0:9000", "Listen", "0.0.0.0:9000", nil},
		{"socket", "/run/hyvve.sock", "Socket", "/run/hyvve.sock", nil},
		{"redis-url", "rediss://default:pw@redis.example.com:6380/2", "RedisURL", "rediss://default:pw@redis.example.com:6380/2", nil},
		{"redis-pool-size", "50", "RedisPoolSize", 50, nil},
		{"redis-cluster", "true", "RedisCluster", true, map[string]string{"redis-url": "redis://r:7000"}},
		{"redis-wait-replicas", "2", "RedisWaitReplicas", 2, map[string]string{"redis-url": "redis://r:6379"}},
		{"redis-wait-timeout", "250ms", "RedisWaitTimeout", 250 * time.Millisecond, nil},
		{"redis-ca", tf.CA, "RedisCA", tf.CA, map[string]string{"redis-url": tlsURL}},
		{"redis-cert", tf.ClientCert, "RedisCert", tf.ClientCert, map[string]string{"redis-url": tlsURL, "redis-key": tf.ClientKey}},
		{"redis-key", tf.ClientKey, "RedisKey", tf.ClientKey, map[string]string{"redis-url": tlsURL, "redis-cert": tf.ClientCert}},
		{"nats-url", "nats://app:pw@nats.example.com:4222,tls://n2:4222", "NATSURL", "nats://app:pw@nats.example.com:4222,tls://n2:4222", nil},
		{"data-dir", "/var/lib/hyvve", "DataDir", "/var/lib/hyvve", nil},
		{"embedded-listen", "127.0.0.1:4222", "EmbeddedListen", "127.0.0.1:4222", nil},
		{"app-url", "unix:///run/app.sock", "AppURL", "unix:///run/app.sock", nil},
		{"app-token", "s3cret-app", "AppToken", "s3cret-app", nil},
		{"app-timeout", "2s", "AppTimeout", 2 * time.Second, nil},
		{"app-concurrency", "64", "AppConcurrency", 64, nil},
		{"group", "billing", "Group", "billing", nil},
		{"source", "billing-svc", "Source", "billing-svc", nil},
		{"tenant", "acme", "Tenant", "acme", nil},
		{"tenants", "acme, globex,acme", "Tenants", []string{"acme", "globex"}, nil},
		{"key-prefix", "stage_1", "KeyPrefix", "stage_1", nil},
		{"retry-schedule", "11s,11s,20s", "RetrySchedule", []time.Duration{11 * time.Second, 11 * time.Second, 20 * time.Second}, nil},
		{"retention", "48h", "Retention", 48 * time.Hour, nil},
		{"dlq-retention", "1h", "DLQRetention", time.Hour, nil},
		{"max-event-bytes", "512KiB", "MaxEventBytes", 512 << 10, nil},
		{"strict-types", "true", "StrictTypes", true, nil},
		{"push-format", "cloudevents", "PushFormat", "cloudevents", nil},
		{"api-token", "s3cret-api", "APIToken", "s3cret-api", nil},
		{"admin-token", "s3cret-admin", "AdminToken", "s3cret-admin", nil},
		{"log-level", "DEBUG", "LogLevel", slog.LevelDebug, nil},
		{"shutdown-timeout", "5s", "ShutdownTimeout", 5 * time.Second, nil},
		// config is covered by TestLoad_reads_the_file_named_by_flag_or_env.
		{"config", "", "ConfigFile", "", nil},
	}
}

func TestLoad_sets_each_field_from_its_flag_and_env(t *testing.T) {
	rows := everySetting(redistest.NewTLSFiles(t))
	for _, tc := range rows {
		t.Run(tc.flag, func(t *testing.T) {
			args := []string{"--" + tc.flag + "=" + tc.value}
			vars := map[string]string{envName(tc.flag): tc.value}
			for k, v := range tc.also {
				args = append(args, "--"+k+"="+v)
				vars[envName(k)] = v
			}
			fromFlag := mustLoad(t, args, noEnv)
			fromEnv := mustLoad(t, nil, env(vars))
			for src, c := range map[string]*Config{"flag": fromFlag, "env": fromEnv} {
				got := reflect.ValueOf(c).Elem().FieldByName(tc.field).Interface()
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("from %s: %s = %#v, want %#v", src, tc.field, got, tc.want)
				}
			}
		})
	}

	t.Run("the table covers every setting and every field", func(t *testing.T) {
		var tested []string
		for _, tc := range rows {
			tested = append(tested, tc.flag)
		}
		for _, s := range allSettings() {
			if !slices.Contains(tested, s.name) {
				t.Errorf("--%s has no row in everySetting", s.name)
			}
		}
		// Every field but Subscriptions is a setting.
		if got, want := reflect.TypeFor[Config]().NumField()-1, len(allSettings()); got != want {
			t.Errorf("Config has %d setting fields, but there are %d settings", got, want)
		}
	})
}

func TestLoad_source_defaults_to_the_group(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"default group", nil, "hyvve-platform"},
		{"group set", []string{"--group", "billing"}, "billing"},
		{"source set", []string{"--group", "billing", "--source", "billing-api"}, "billing-api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustLoad(t, tc.args, noEnv).Source; got != tc.want {
				t.Errorf("Source = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLoad_accepts_value_forms(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		field string
		want  any
	}{
		{"bool flag alone", []string{"--redis-url=redis://r:6379", "--redis-cluster"}, nil, "RedisCluster", true},
		{"bool flag =false beats env", []string{"--redis-cluster=false"},
			map[string]string{"HYVVE_REDIS_CLUSTER": "true"}, "RedisCluster", false},
		{"bool env 1", []string{"--redis-url=redis://r:6379"},
			map[string]string{"HYVVE_REDIS_CLUSTER": "1"}, "RedisCluster", true},
		{"bool env 0", nil, map[string]string{"HYVVE_REDIS_CLUSTER": "0"}, "RedisCluster", false},
		{"single dash flag", []string{"-app-concurrency", "3"}, nil, "AppConcurrency", 3},
		{"repeated flag: last wins", []string{"--group=a", "--group=b"}, nil, "Group", "b"},
		{"size in plain bytes", []string{"--max-event-bytes=2048"}, nil, "MaxEventBytes", 2048},
		{"size with space and unit", []string{"--max-event-bytes=2 MiB"}, nil, "MaxEventBytes", 2 << 20},
		{"size in decimal unit", []string{"--max-event-bytes=64KB"}, nil, "MaxEventBytes", 64000},
		{"size upper bound", []string{"--max-event-bytes=64MiB"}, nil, "MaxEventBytes", 64 << 20},
		{"size lower bound", []string{"--max-event-bytes=1KiB"}, nil, "MaxEventBytes", 1024},
		{"empty tenants is any", []string{"--tenants="}, nil, "Tenants", []string(nil)},
		{"tenant in tenants", []string{"--tenants=a,b", "--tenant=b"}, nil, "Tenant", "b"},
		{"http app url with trailing slash", []string{"--app-url=http://localhost:3000/"}, nil,
			"AppURL", "http://localhost:3000"},
		{"http app url without port", []string{"--app-url=http://app"}, nil, "AppURL", "http://app"},
		{"ipv6 listen", []string{"--listen=[::1]:0"}, nil, "Listen", "[::1]:0"},
		{"redis url with options", []string{"--redis-url=redis://u:p@r:6379/3?dial_timeout=3s"}, nil,
			"RedisURL", "redis://u:p@r:6379/3?dial_timeout=3s"},
		{"redis cluster seeds", []string{"--redis-cluster", "--redis-url=redis://a:7000?addr=b:7001&addr=c:7002"}, nil,
			"RedisCluster", true},
		{"empty env is unset", nil, map[string]string{"HYVVE_GROUP": ""}, "Group", "hyvve-platform"},
		{"empty flag clears the file's value", []string{"--tenant="}, nil, "Tenant", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.args, env(tc.env))
			got := reflect.ValueOf(c).Elem().FieldByName(tc.field).Interface()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %#v, want %#v", tc.field, got, tc.want)
			}
		})
	}
}

func TestLoad_rejects_bad_settings_with_one_line_naming_the_flag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the whole error message
	}{
		{"retry entry not a duration", []string{"--retry-schedule=1m,5x"}, nil,
			`--retry-schedule: "5x": time: unknown unit "x" in duration "5x"`},
		{"retry from env names the variable", nil, map[string]string{"HYVVE_RETRY_SCHEDULE": "5x"},
			`--retry-schedule (from HYVVE_RETRY_SCHEDULE): "5x": time: unknown unit "x" in duration "5x"`},
		{"retry empty", []string{"--retry-schedule="}, nil, `--retry-schedule: must have 1 to 20 durations, got 0`},
		{"retry too long", []string{"--retry-schedule=" + strings.Repeat("1s,", 20) + "1s"}, nil,
			`--retry-schedule: must have 1 to 20 durations, got 21`},
		{"retry zero", []string{"--retry-schedule=0s,1m"}, nil, `--retry-schedule: every wait must be more than 0, got 0s`},
		{"push format", []string{"--push-format=xml"}, nil, `--push-format: must be native or cloudevents, got "xml"`},
		{"retry decreasing", []string{"--retry-schedule=5m,1m"}, nil,
			`--retry-schedule: must not decrease, but 1m0s follows 5m0s`},
		{"app timeout not shorter than the first step", []string{"--retry-schedule=200ms,400ms", "--app-timeout=200ms"}, nil,
			`--app-timeout: 200ms must be shorter than the first --retry-schedule step (200ms), or a slow push would be retried while still in flight`},
		{"app url scheme", []string{"--app-url=ftp://x"}, nil,
			`--app-url: must be http://host:port or unix:///path, got "ftp://x"`},
		{"app url https", []string{"--app-url=https://app:443"}, nil,
			`--app-url: must be http://host:port or unix:///path, got "https://app:443"`},
		{"app url with path", []string{"--app-url=http://app:80/hooks"}, nil,
			`--app-url: must be http://host:port or unix:///path, got "http://app:80/hooks"`},
		{"app url relative unix", []string{"--app-url=unix://app.sock"}, nil,
			`--app-url: must be http://host:port or unix:///path, got "unix://app.sock"`},
		{"app url bad port", []string{"--app-url=http://app:99999"}, nil,
			`--app-url: port must be a number from 0 to 65535, got "99999"`},
		{"app url long socket", []string{"--app-url=unix:///" + strings.Repeat("s", 200)}, nil,
			fmt.Sprintf(`--app-url: socket path is 201 bytes long; a Unix socket path may have at most %d`, maxSocketPath())},
		{"listen without port", []string{"--listen=localhost"}, nil, `--listen: must be host:port, got "localhost"`},
		{"listen port name", []string{"--listen=:http"}, nil, `--listen: port must be a number from 0 to 65535, got "http"`},
		{"socket too long", []string{"--socket=/" + strings.Repeat("s", 200)}, nil,
			fmt.Sprintf(`--socket: path is 201 bytes long; a Unix socket path may have at most %d`, maxSocketPath())},
		{"redis scheme", []string{"--redis-url=http://r:6379"}, nil,
			`--redis-url: must be redis://host:port or rediss://host:port, got "http://r:6379"`},
		{"redis no host", []string{"--redis-url=redis:///1"}, nil, `--redis-url: has no host, got "redis:///1"`},
		{"redis unknown option", []string{"--redis-url=redis://r:6379?foo=1"}, nil, `--redis-url: unexpected option: foo`},
		{"redis bad db", []string{"--redis-url=redis://r:6379/x"}, nil, `--redis-url: invalid database number: "x"`},
		{"redis cluster db", []string{"--redis-cluster", "--redis-url=redis://r:6379/2"}, nil,
			`--redis-url: a Redis Cluster has only database 0, got /2`},
		{"cluster without url", []string{"--redis-cluster"}, nil,
			`--redis-cluster: needs --redis-url (the embedded store is a single node)`},
		{"pool size negative", []string{"--redis-pool-size=-1"}, nil,
			`--redis-pool-size: must be 0 (library default) or more, got -1`},
		{"pool size not int", []string{"--redis-pool-size=ten"}, nil, `--redis-pool-size: must be an integer, got "ten"`},
		{"wait replicas negative", []string{"--redis-url=redis://r:6379", "--redis-wait-replicas=-1"}, nil,
			`--redis-wait-replicas: must be 0 (do not wait) to 64, got -1`},
		{"wait replicas too many", []string{"--redis-url=redis://r:6379", "--redis-wait-replicas=65"}, nil,
			`--redis-wait-replicas: must be 0 (do not wait) to 64, got 65`},
		{"wait replicas without redis", nil, map[string]string{"HYVVE_REDIS_WAIT_REPLICAS": "1"},
			`--redis-wait-replicas: needs --redis-url (it waits for replicas of the Redis primary)`},
		{"wait timeout zero", []string{"--redis-wait-timeout=0s"}, nil, `--redis-wait-timeout: must be 1ms to 10s, got 0s`},
		{"wait timeout under a millisecond", []string{"--redis-wait-timeout=500us"}, nil,
			`--redis-wait-timeout: must be 1ms to 10s, got 500µs`},
		{"wait timeout too long", []string{"--redis-wait-timeout=1m"}, nil, `--redis-wait-timeout: must be 1ms to 10s, got 1m0s`},
		{"cluster not bool", []string{"--redis-cluster=yes"}, nil, `--redis-cluster: must be true, false, 1 or 0, got "yes"`},
		{"cluster env not bool", nil, map[string]string{"HYVVE_REDIS_CLUSTER": "on"},
			`--redis-cluster (from HYVVE_REDIS_CLUSTER): must be true, false, 1 or 0, got "on"`},
		{"data dir empty", []string{"--data-dir="}, nil, `--data-dir: must not be empty`},
		{"nats and redis", []string{"--nats-url=nats://n:4222", "--redis-url=redis://r:6379"}, nil,
			`--nats-url: set either --redis-url or --nats-url, not both`},
		{"nats scheme", []string{"--nats-url=http://n:4222"}, nil, `--nats-url: must be nats://host:port or tls://host:port, got "http://n:4222"`},
		{"nats second server scheme hides password", []string{"--nats-url=nats://n:4222, redis://u:pw@r:1"}, nil,
			`--nats-url: must be nats://host:port or tls://host:port, got "redis://u@r:1"`},
		{"nats no host", []string{"--nats-url=nats://:4222"}, nil, `--nats-url: has no host, got "nats://:4222"`},
		{"nats bad port", []string{"--nats-url=nats://n:99999"}, nil, `--nats-url: port must be a number from 0 to 65535, got "99999"`},
		{"embedded listen with redis", []string{"--embedded-listen=127.0.0.1:4222", "--redis-url=redis://r:6379"}, nil,
			`--embedded-listen: only for the embedded store; remove it, or remove --redis-url/--nats-url`},
		{"embedded listen syntax", []string{"--embedded-listen=4222"}, nil, `--embedded-listen: must be host:port, got "4222"`},
		{"app timeout zero", []string{"--app-timeout=0s"}, nil, `--app-timeout: must be more than 0, got 0s`},
		{"app timeout syntax", []string{"--app-timeout=10"}, nil, `--app-timeout: time: missing unit in duration "10"`},
		{"concurrency zero", []string{"--app-concurrency=0"}, nil, `--app-concurrency: must be 1 to 4096, got 0`},
		{"concurrency too big", []string{"--app-concurrency=4097"}, nil, `--app-concurrency: must be 1 to 4096, got 4097`},
		{"group chars", []string{"--group=a b"}, nil, `--group: must be 1-64 characters of A-Z a-z 0-9 . _ : -, got "a b"`},
		{"group too long", []string{"--group=" + strings.Repeat("g", 65)}, nil,
			`--group: must be 1-64 characters of A-Z a-z 0-9 . _ : -, got "` + strings.Repeat("g", 65) + `"`},
		{"source with space", []string{"--source=my app"}, nil,
			`--source: must be 1-128 characters of printable ASCII without spaces, got "my app"`},
		{"tenant chars", []string{"--tenant=-acme"}, nil, `--tenant: "-acme" must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`},
		{"tenants entry", []string{"--tenants=acme,a:b"}, nil, `--tenants: "a:b" must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`},
		{"tenants empty entry", []string{"--tenants=acme,,b"}, nil, `--tenants: "" must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`},
		{"tenant outside tenants", []string{"--tenants=a,b", "--tenant=c"}, nil, `--tenant: "c" is not in --tenants (a,b)`},
		{"key prefix chars", []string{"--key-prefix=hy:vve"}, nil,
			`--key-prefix: must be 1-32 characters of A-Z a-z 0-9 _ -, got "hy:vve"`},
		{"key prefix empty", []string{"--key-prefix="}, nil, `--key-prefix: must be 1-32 characters of A-Z a-z 0-9 _ -, got ""`},
		{"retention zero", []string{"--retention=0s"}, nil, `--retention: must be more than 0, got 0s`},
		{"retention shorter than retries", []string{"--retention=30m"}, nil,
			`--retention: 30m0s must be longer than the whole --retry-schedule (36m0s), or events would be trimmed before their last retry`},
		{"dlq retention negative", []string{"--dlq-retention=-1h"}, nil, `--dlq-retention: must be more than 0, got -1h0m0s`},
		{"event bytes too small", []string{"--max-event-bytes=1023"}, nil,
			`--max-event-bytes: must be 1KiB (1024) to 64MiB (67108864), got 1023`},
		{"event bytes too big", []string{"--max-event-bytes=65MiB"}, nil,
			`--max-event-bytes: must be 1KiB (1024) to 64MiB (67108864), got 68157440`},
		{"event bytes unit", []string{"--max-event-bytes=1.5MB"}, nil,
			`--max-event-bytes: must be a number of bytes, optionally with a unit such as KiB or MiB, got "1.5MB"`},
		{"event bytes overflow", []string{"--max-event-bytes=99999999999999999999GiB"}, nil,
			`--max-event-bytes: "99999999999999999999GiB" is too large`},
		{"log level", []string{"--log-level=verbose"}, nil, `--log-level: must be debug, info, warn or error, got "verbose"`},
		{"shutdown timeout", []string{"--shutdown-timeout=0s"}, nil, `--shutdown-timeout: must be more than 0, got 0s`},
		{"unknown flag", []string{"--redis_url=redis://r"}, nil, `--redis_url: unknown flag (did you mean "--redis-url"?) (see --help)`},
		{"flag without value", []string{"--listen"}, nil, `--listen: needs a value`},
		{"bool flag with separate value", []string{"--redis-cluster", "false"}, nil,
			`--redis-cluster: takes no separate value: write --redis-cluster=false`},
		{"positional argument", []string{"serve"}, nil, `unexpected argument "serve": the sidecar takes only flags (see --help)`},
		{"missing config file", []string{"--config=/nonexistent/x.yaml"}, nil,
			`--config: open /nonexistent/x.yaml: no such file or directory`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if err == nil {
				t.Fatalf("Load(%q) = %v, want error %q", tc.args, c, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// tlsTestFiles are certificate files for the Redis TLS tests: tf is a CA with
// a client certificate; other is another CA's; the rest are broken files.
type tlsTestFiles struct {
	tf, other                                 redistest.TLSFiles
	dir, empty, garbage, corrupt, big, bundle string
}

func newTLSTestFiles(t *testing.T) tlsTestFiles {
	t.Helper()
	f := tlsTestFiles{tf: redistest.NewTLSFiles(t), other: redistest.NewTLSFiles(t), dir: t.TempDir()}
	write := func(name string, data []byte) string {
		path := filepath.Join(f.dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f.empty = write("empty.pem", nil)
	f.garbage = write("garbage.pem", []byte("not a certificate\n"))
	f.corrupt = write("corrupt.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.big = write("big.pem", bytes.Repeat([]byte("x"), maxFileBytes+1))
	var bundle []byte
	for _, p := range []string{f.tf.ClientKey, f.other.CA, f.tf.CA} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, data...)
	}
	f.bundle = write("bundle.pem", bundle)
	return f
}

func TestLoad_accepts_Redis_TLS_files_with_a_rediss_URL(t *testing.T) {
	f := newTLSTestFiles(t)
	url := "--redis-url=rediss://u:" + redisPassword + "@r.example.com:6380/0"
	tests := []struct {
		name          string
		args          []string
		ca, cert, key string
	}{
		{"CA only", []string{url, "--redis-ca=" + f.tf.CA}, f.tf.CA, "", ""},
		{"client certificate only", []string{url, "--redis-cert=" + f.tf.ClientCert, "--redis-key=" + f.tf.ClientKey},
			"", f.tf.ClientCert, f.tf.ClientKey},
		{"all three", []string{url, "--redis-ca=" + f.tf.CA, "--redis-cert=" + f.tf.ClientCert, "--redis-key=" + f.tf.ClientKey},
			f.tf.CA, f.tf.ClientCert, f.tf.ClientKey},
		{"a bundle of two CAs and a key block", []string{url, "--redis-ca=" + f.bundle}, f.bundle, "", ""},
		{"TLS skip_verify of the URL", []string{url + "?skip_verify=true", "--redis-ca=" + f.tf.CA}, f.tf.CA, "", ""},
		{"none", []string{url}, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.args, noEnv)
			if err := expect(c.RedisCA, tc.ca, c.RedisCert, tc.cert, c.RedisKey, tc.key); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLoad_rejects_bad_Redis_TLS_settings_with_one_line_naming_the_flag(t *testing.T) {
	f := newTLSTestFiles(t)
	tlsURL := "--redis-url=rediss://u:" + redisPassword + "@r.example.com:6380/0"
	cert := []string{"--redis-cert=" + f.tf.ClientCert, "--redis-key=" + f.tf.ClientKey}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the whole error message
	}{
		{"ca with a redis:// url", []string{"--redis-url=redis://u:" + redisPassword + "@r:6379", "--redis-ca=" + f.tf.CA}, nil,
			`--redis-ca: TLS to Redis needs a rediss:// --redis-url, got redis://u@r:6379`},
		{"ca without a redis url", []string{"--redis-ca=" + f.tf.CA}, nil,
			`--redis-ca: TLS to Redis needs a rediss:// --redis-url, got none`},
		{"ca from env with a nats url", nil, map[string]string{"HYVVE_NATS_URL": "tls://n:4222", "HYVVE_REDIS_CA": f.tf.CA},
			`--redis-ca: TLS to Redis needs a rediss:// --redis-url, got none`},
		{"cert with a redis:// url", append([]string{"--redis-url=redis://r:6379"}, cert...), nil,
			`--redis-cert: TLS to Redis needs a rediss:// --redis-url, got redis://r:6379`},
		{"key alone without a redis url", []string{"--redis-key=" + f.tf.ClientKey}, nil,
			`--redis-key: TLS to Redis needs a rediss:// --redis-url, got none`},
		{"cert without key", []string{tlsURL, "--redis-cert=" + f.tf.ClientCert}, nil,
			`--redis-cert: needs --redis-key, the file of the certificate's private key`},
		{"key without cert", []string{tlsURL, "--redis-key=" + f.tf.ClientKey}, nil,
			`--redis-key: needs --redis-cert, the file of the client certificate`},
		{"ca missing", []string{tlsURL, "--redis-ca=/nonexistent/ca.pem"}, nil,
			`--redis-ca: open /nonexistent/ca.pem: no such file or directory`},
		{"ca is a directory", []string{tlsURL, "--redis-ca=" + f.dir}, nil,
			`--redis-ca: read ` + f.dir + `: is a directory`},
		{"ca empty", []string{tlsURL, "--redis-ca=" + f.empty}, nil,
			`--redis-ca: ` + f.empty + ` holds no PEM certificate (-----BEGIN CERTIFICATE-----)`},
		{"ca not PEM", []string{tlsURL, "--redis-ca=" + f.garbage}, nil,
			`--redis-ca: ` + f.garbage + ` holds no PEM certificate (-----BEGIN CERTIFICATE-----)`},
		{"ca is a key", []string{tlsURL, "--redis-ca=" + f.tf.ClientKey}, nil,
			`--redis-ca: ` + f.tf.ClientKey + ` holds no PEM certificate (-----BEGIN CERTIFICATE-----)`},
		{"ca corrupt", []string{tlsURL, "--redis-ca=" + f.corrupt}, nil,
			`--redis-ca: ` + f.corrupt + `: certificate 1: x509: malformed certificate`},
		{"ca too large", []string{tlsURL, "--redis-ca=" + f.big}, nil,
			`--redis-ca: ` + f.big + ` is larger than 1048576 bytes`},
		{"cert missing", []string{tlsURL, "--redis-cert=/nonexistent/c.pem", "--redis-key=" + f.tf.ClientKey}, nil,
			`--redis-cert: open /nonexistent/c.pem: no such file or directory`},
		{"cert is a key", []string{tlsURL, "--redis-cert=" + f.tf.ClientKey, "--redis-key=" + f.tf.ClientKey}, nil,
			`--redis-cert: ` + f.tf.ClientKey + ` holds no PEM certificate (-----BEGIN CERTIFICATE-----)`},
		{"cert corrupt", []string{tlsURL, "--redis-cert=" + f.corrupt, "--redis-key=" + f.tf.ClientKey}, nil,
			`--redis-cert: ` + f.corrupt + `: certificate 1: x509: malformed certificate`},
		{"key missing", []string{tlsURL, "--redis-cert=" + f.tf.ClientCert, "--redis-key=/nonexistent/k.pem"}, nil,
			`--redis-key: open /nonexistent/k.pem: no such file or directory`},
		{"key empty", []string{tlsURL, "--redis-cert=" + f.tf.ClientCert, "--redis-key=" + f.empty}, nil,
			`--redis-key: ` + f.empty + `: failed to find any PEM data in key input (want the unencrypted PEM private key of --redis-cert)`},
		{"key is a certificate", []string{tlsURL, "--redis-cert=" + f.tf.ClientCert, "--redis-key=" + f.tf.ClientCert}, nil,
			`--redis-key: ` + f.tf.ClientCert + `: found a certificate rather than a key in the PEM for the private key (want the unencrypted PEM private key of --redis-cert)`},
		{"key of another certificate", []string{tlsURL, "--redis-cert=" + f.tf.ClientCert, "--redis-key=" + f.other.ClientKey}, nil,
			`--redis-key: ` + f.other.ClientKey + `: private key does not match public key (want the unencrypted PEM private key of --redis-cert)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if err == nil {
				t.Fatalf("Load(%q) = %v, want error %q", tc.args, c, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error\n got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(err.Error(), redisPassword) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error shows a secret: %s", err)
			}
		})
	}
}

func TestLoad_help_returns_ErrHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"--group=x", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			// Even a broken environment must not hide the help.
			_, err := Load(args, env(map[string]string{"HYVVE_CONFIG": "/nonexistent", "HYVVE_GROUP": "a b"}))
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("got %v, want flag.ErrHelp", err)
			}
		})
	}
}

func TestLoad_precedence_is_file_then_env_then_flag(t *testing.T) {
	path := writeFile(t, `
group: from-file
app-concurrency: 8
retry-schedule: [2m, 4m]
tenant: filetenant
`)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(c *Config) error
	}{
		{"file beats default", []string{"--config", path}, nil, func(c *Config) error {
			return expect(c.Group, "from-file", c.AppConcurrency, 8,
				c.RetrySchedule, []time.Duration{2 * time.Minute, 4 * time.Minute})
		}},
		{"env beats file", []string{"--config", path},
			map[string]string{"HYVVE_GROUP": "from-env", "HYVVE_RETRY_SCHEDULE": "1m"}, func(c *Config) error {
				return expect(c.Group, "from-env", c.AppConcurrency, 8, c.RetrySchedule, []time.Duration{time.Minute})
			}},
		{"flag beats env and file", []string{"--config", path, "--group=from-flag"},
			map[string]string{"HYVVE_GROUP": "from-env"}, func(c *Config) error {
				return expect(c.Group, "from-flag", c.Tenant, "filetenant")
			}},
		{"flag equal to the default still wins", []string{"--config", path, "--app-concurrency=16", "--group=hyvve-platform"},
			map[string]string{"HYVVE_APP_CONCURRENCY": "32"}, func(c *Config) error {
				return expect(c.AppConcurrency, 16, c.Group, "hyvve-platform")
			}},
		{"empty flag clears a file value", []string{"--config", path, "--tenant="}, nil, func(c *Config) error {
			return expect(c.Tenant, "")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.check(mustLoad(t, tc.args, env(tc.env))); err != nil {
				t.Error(err)
			}
		})
	}
}

// expect compares pairs of got, want values.
func expect(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !reflect.DeepEqual(pairs[i], pairs[i+1]) {
			return fmt.Errorf("got %v, want %v", pairs[i], pairs[i+1])
		}
	}
	return nil
}

func TestLoad_reads_the_file_named_by_flag_or_env(t *testing.T) {
	fromEnv := writeFile(t, "group: env-file\n")
	fromFlag := writeFile(t, "group: flag-file\n")
	tests := []struct {
		name      string
		args      []string
		wantGroup string
		wantFile  string
	}{
		{"env", nil, "env-file", fromEnv},
		{"flag beats env", []string{"--config=" + fromFlag}, "flag-file", fromFlag},
		{"empty flag disables the file", []string{"--config="}, "hyvve-platform", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.args, env(map[string]string{"HYVVE_CONFIG": fromEnv}))
			if c.Group != tc.wantGroup || c.ConfigFile != tc.wantFile {
				t.Errorf("got group %q file %q, want %q %q", c.Group, c.ConfigFile, tc.wantGroup, tc.wantFile)
			}
		})
	}
}

func TestLoad_reads_every_kind_of_value_from_the_file(t *testing.T) {
	path := writeFile(t, `# every kind of value
listen: "0.0.0.0:8080"
redis-url: rediss://u:p@r.example.com:6380
redis-pool-size: 0x20
redis-cluster: false
app-url: http://localhost:3000
app-timeout: 1m30s
app-concurrency: 4
tenant: 42
tenants:
  - 42
  - acme
retry-schedule: 2m, 3m
max-event-bytes: 2048
log-level: warn
admin-token: ~
subscriptions:
  - pattern: approval.*
    path: /events/approval
  - pattern: "**"
    path: /events
`)
	c := mustLoad(t, []string{"--config", path}, noEnv)
	if err := expect(
		c.Listen, "0.0.0.0:8080",
		c.RedisURL, "rediss://u:p@r.example.com:6380",
		c.RedisPoolSize, 32,
		c.AppURL, "http://localhost:3000",
		c.AppTimeout, 90*time.Second,
		c.AppConcurrency, 4,
		c.Tenant, "42",
		c.Tenants, []string{"42", "acme"},
		c.RetrySchedule, []time.Duration{2 * time.Minute, 3 * time.Minute},
		c.MaxEventBytes, 2048,
		c.LogLevel, slog.LevelWarn,
		c.AdminToken, "",
		c.Subscriptions, []subscription.Subscription{
			{Pattern: "approval.*", Path: "/events/approval"},
			{Pattern: "**", Path: "/events"},
		},
	); err != nil {
		t.Error(err)
	}
}

func TestLoad_accepts_an_empty_file(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		t.Run(fmt.Sprintf("%q", content), func(t *testing.T) {
			c := mustLoad(t, []string{"--config", writeFile(t, content)}, noEnv)
			if c.Group != "hyvve-platform" {
				t.Errorf("Group = %q, want the default", c.Group)
			}
		})
	}
}

func TestLoad_decodes_the_file_strictly(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string // after "config file PATH: "
	}{
		{"unknown key", "group: a\n\nredis_url: redis://r\n",
			`line 3: unknown key "redis_url" (did you mean "redis-url"?)`},
		{"unknown key without a guess", "grup: a\n", `line 1: unknown key "grup"`},
		{"duplicate key", "group: a\ngroup: b\n", `line 2: duplicate key "group" (first at line 1)`},
		{"config key", "config: other.yaml\n", `line 1: key "config" cannot be set in the config file itself`},
		{"string for int", "app-concurrency: \"16\"\n", `line 1: app-concurrency: expected an integer, got a string ("16")`},
		{"float for int", "app-concurrency: 1.5\n", `line 1: app-concurrency: expected an integer, got a number ("1.5")`},
		{"string for bool", "redis-cluster: \"true\"\n", `line 1: redis-cluster: expected true or false, got a string ("true")`},
		{"number for duration", "app-timeout: 10\n", `line 1: app-timeout: expected a duration such as "10s" or "1h30m", got an integer ("10")`},
		{"null for duration", "app-timeout:\n", `line 1: app-timeout: expected a duration such as "10s" or "1h30m", got no value`},
		{"list for string", "group: [a, b]\n", `line 1: group: expected a string, got a list`},
		{"mapping for list", "tenants: {a: 1}\n", `line 1: tenants: expected a list or a comma-separated string, got a mapping`},
		{"bad list item", "tenants:\n  - acme\n  - [x]\n", `line 3: tenants: list items must be strings, got a list`},
		{"bad duration in list", "retry-schedule:\n  - 1m\n  - 5x\n",
			`line 2: retry-schedule: "5x": time: unknown unit "x" in duration "5x"`},
		{"bool for secret hides value", "api-token: true\n", `line 1: api-token: expected a string, got a boolean`},
		{"int out of range", "redis-pool-size: 99999999999999999999999\n",
			`line 1: redis-pool-size: expected an integer, got a number ("99999999999999999999999")`},
		{"not a mapping", "- a\n- b\n", `line 1: must be a mapping of settings, got a list`},
		{"syntax error", "group: a\n  b: c\n", `line 2: mapping values are not allowed in this context`},
		{"second document", "group: a\n---\ngroup: b\n", `line 2: holds a second YAML document; put every setting in one`},
		{"subscriptions not a list", "subscriptions: {pattern: a.b}\n",
			`line 1: subscriptions: expected a list of {pattern, path}, got a mapping`},
		{"subscription not a mapping", "subscriptions:\n  - a.b\n",
			`line 2: subscriptions[0]: expected a mapping with pattern and path, got a string ("a.b")`},
		{"subscription unknown key", "subscriptions:\n  - pattern: a.b\n    topic: x\n",
			`line 3: subscriptions[0]: unknown key "topic" (want pattern and path)`},
		{"subscription missing path", "subscriptions:\n  - pattern: a.b\n  - pattern: c.d\n",
			`line 2: subscriptions[0]: path is missing or empty`},
		{"subscription empty pattern", "subscriptions:\n  - pattern: \"\"\n    path: /x\n",
			`line 2: subscriptions[0]: pattern is missing or empty`},
		{"subscription relative path", "subscriptions:\n  - pattern: a.b\n    path: /ok\n  - pattern: c.d\n    path: events\n",
			`line 4: subscriptions[1]: path must start with "/", got "events"`},
		{"subscription path not a string", "subscriptions:\n  - pattern: a.b\n    path: 12\n",
			`line 3: subscriptions[0]: path must be a string, got an integer ("12")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			_, err := Load([]string{"--config", path}, noEnv)
			want := "config file " + path + ": " + tc.want
			if err == nil {
				t.Fatalf("got no error, want %q", want)
			}
			if got := err.Error(); got != want {
				t.Errorf("error\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestLoad_file_values_are_validated_by_flag_name(t *testing.T) {
	path := writeFile(t, "app-concurrency: 0\n")
	_, err := Load([]string{"--config", path}, noEnv)
	if want := "--app-concurrency: must be 1 to 4096, got 0"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

const (
	redisPassword = "redis-pa55"
	appToken      = "app-t0ken"
	apiToken      = "api-t0ken"
	adminToken    = "admin-t0ken"
)

func TestConfig_never_shows_secrets(t *testing.T) {
	c := mustLoad(t, []string{
		"--redis-url=rediss://default:" + redisPassword + "@redis.example.com:6380/1",
		"--app-token=" + appToken, "--api-token=" + apiToken, "--admin-token=" + adminToken,
	}, noEnv)

	red := c.Redacted()
	if err := expect(
		red["redis-url"], "rediss://default@redis.example.com:6380/1",
		red["app-token"], "***",
		red["api-token"], "***",
		red["admin-token"], "***",
		red["group"], "hyvve-platform",
		red["app-timeout"], "10s",
		red["retry-schedule"], []string{"1m0s", "5m0s", "30m0s"},
		red["log-level"], "info",
	); err != nil {
		t.Error(err)
	}
	for _, s := range allSettings() {
		if _, ok := red[s.name]; !ok {
			t.Errorf("Redacted has no %q", s.name)
		}
	}
	if got := mustLoad(t, nil, noEnv).Redacted()["admin-token"]; got != "" {
		t.Errorf("unset admin-token shows as %q, want empty", got)
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", c, "ptr", *c)
	forms := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", *c), "%#v": fmt.Sprintf("%#v", *c),
		"%s": fmt.Sprintf("%s", c), "String": c.String(), "slog JSON": logged.String(),
		"Redacted": fmt.Sprint(red),
	}
	for name, out := range forms {
		for _, secret := range []string{redisPassword, appToken, apiToken, adminToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows secret %q: %s", name, secret, out)
			}
		}
	}
	if !strings.Contains(logged.String(), `"redis-url":"rediss://default@redis.example.com:6380/1"`) {
		t.Errorf("slog output lacks the redacted redis-url: %s", logged.String())
	}
}

func TestConfig_never_shows_the_NATS_password(t *testing.T) {
	const pw = "nats-pa55"
	c := mustLoad(t, []string{"--nats-url=nats://app:" + pw + "@n1:4222,tls://app:" + pw + "@n2:4222"}, noEnv)
	if got, want := c.Redacted()["nats-url"], "nats://app@n1:4222,tls://app@n2:4222"; got != want {
		t.Errorf("redacted nats-url %q, want %q", got, want)
	}
	for name, out := range map[string]string{"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", *c), "%#v": fmt.Sprintf("%#v", *c)} {
		if strings.Contains(out, pw) {
			t.Errorf("%s shows the NATS password: %s", name, out)
		}
	}
}

func TestLoad_errors_never_show_secrets(t *testing.T) {
	const pw = "hunter2"
	tests := []struct {
		name string
		args []string
	}{
		{"unparseable redis url", []string{"--redis-url=redis://u:" + pw + "#x@r:6379"}},
		{"redis url bad port", []string{"--redis-url=redis://u:" + pw + "@r:99999"}},
		{"redis url wrong scheme", []string{"--redis-url=http://u:" + pw + "@r:6379"}},
		{"redis url unknown option", []string{"--redis-url=redis://u:" + pw + "@r:6379?x=1"}},
		{"app url with user info", []string{"--app-url=http://u:" + pw + "@app:80"}},
		{"token with space", []string{"--api-token=" + pw + " x"}},
		{"bad flag syntax", []string{"---api-token=" + pw}},
		{"token with newline", []string{"--admin-token=" + pw + "\n"}},
		{"token with tab", []string{"--app-token=" + pw + "\t"}},
		{"redis ca with a redis:// url", []string{"--redis-url=redis://u:" + pw + "@r:6379", "--redis-ca=/ca.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, noEnv)
			if err == nil {
				t.Fatal("got no error")
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error shows the secret: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "--") {
				t.Errorf("error %q does not start with the flag", err)
			}
		})
	}
}

// specFlags are the flags SPEC §9 names, plus those later issues added
// (strict-types and push-format: issue 5; nats-url and embedded-listen: issue 8;
// redis-ca, redis-cert and redis-key, redis-wait-replicas and redis-wait-timeout: issue 11).
var specFlags = []string{
	"strict-types", "push-format", "nats-url", "embedded-listen", "redis-ca", "redis-cert", "redis-key",
	"redis-wait-replicas", "redis-wait-timeout",
	"listen", "socket", "redis-url", "redis-pool-size", "redis-cluster", "data-dir", "app-url", "app-token",
	"app-timeout", "app-concurrency", "group", "source", "tenant", "tenants", "key-prefix", "retry-schedule",
	"retention", "dlq-retention", "max-event-bytes", "api-token", "admin-token", "config", "log-level",
	"shutdown-timeout",
}

func TestUsage_documents_every_flag(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	out := b.String()
	flat := strings.Join(strings.Fields(out), " ") // help sentences are wrapped

	var names []string
	for _, s := range allSettings() {
		names = append(names, s.name)
		if !strings.Contains(out, "\n  --"+s.name+" ") && !strings.Contains(out, "\n  --"+s.name+"\n") {
			t.Errorf("usage does not list --%s", s.name)
		}
		if !strings.Contains(out, "env "+envName(s.name)+", default: ") {
			t.Errorf("usage does not give the env name and default of --%s", s.name)
		}
		if len(s.help) < 20 || !strings.HasSuffix(s.help, ".") {
			t.Errorf("--%s help %q is not a sentence", s.name, s.help)
		}
		if !strings.Contains(flat, strings.Join(strings.Fields(s.help), " ")) {
			t.Errorf("usage lacks the help of --%s", s.name)
		}
		if s.kind != kindBool && s.arg == "" {
			t.Errorf("--%s has no argument placeholder", s.name)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(specFlags))) {
		t.Errorf("flags %v, want SPEC's %v", names, specFlags)
	}
	for _, want := range []string{"HYVVE_REDIS_URL", "precedence", "subscriptions:", "HYVVE_CONFIG",
		"default: 127.0.0.1:4750", "default: 1m,5m,30m", "default: the value of --group"} {
		if !strings.Contains(flat, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	for i, line := range strings.Split(out, "\n") {
		if len(line) > usageWidth {
			t.Errorf("usage line %d is %d columns, want at most %d: %s", i+1, len(line), usageWidth, line)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"1", 1, false},
		{"1048576", 1 << 20, false},
		{"1MiB", 1 << 20, false},
		{"512kib", 512 << 10, false},
		{"2 GiB", 2 << 30, false},
		{"3MB", 3e6, false},
		{"10B", 10, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"1.5MiB", 0, true},
		{"1 TiB", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// FuzzLoadFile checks that no file content panics the decoder or yields an
// error of more than one line.
func FuzzLoadFile(f *testing.F) {
	for _, seed := range []string{
		"group: a\n", "tenants: [a, b]\nretry-schedule: 1m,2m\n", "subscriptions:\n  - pattern: a.*\n    path: /a\n",
		"a: &x 1\nb: *x\n", "app-concurrency: \"16\"\n", "- 1\n", "{", "x: !!binary aGk=\n",
		"group: &g a\nsource: *g\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load([]string{"--config", path}, noEnv)
		if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("error has more than one line: %q", err)
		}
	})
}
