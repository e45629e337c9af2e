package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

func TestProcess_help_documents_every_flag(t *testing.T) {
	out, code := sidecartest.Run(t, []string{"--help"}, nil)
	if code != 0 {
		t.Fatalf("--help exit code: got %d, want 0\n%s", code, out)
	}
	for _, f := range []string{"--listen", "--socket", "--redis-url", "--redis-pool-size", "--redis-cluster", "--data-dir",
		"--app-url", "--app-token", "--app-timeout", "--app-concurrency", "--group", "--source", "--tenant", "--tenants",
		"--key-prefix", "--retry-schedule", "--retention", "--dlq-retention", "--max-event-bytes", "--api-token",
		"--admin-token", "--config", "--log-level", "--shutdown-timeout", "HYVVE_REDIS_URL",
		"--nats-url", "--embedded-listen", "HYVVE_NATS_URL"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
	out, code = sidecartest.Run(t, []string{"version"}, nil)
	if code != 0 || !strings.HasPrefix(out, "hyvve-sidecar ") {
		t.Errorf("version: got %d %q", code, out)
	}
}

func TestProcess_bad_configuration_fails_at_start_with_one_line_naming_the_setting(t *testing.T) {
	dir := t.TempDir()
	badYAML := dir + "/bad.yaml"
	if err := os.WriteFile(badYAML, []byte("redis_url: redis://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"bad duration", []string{"--redis-url", "redis://127.0.0.1:1", "--retry-schedule", "5x"}, nil, "--retry-schedule"},
		{"bad app url", []string{"--redis-url", "redis://127.0.0.1:1", "--app-url", "ftp://x"}, nil, "--app-url"},
		{"bad tenant", []string{"--redis-url", "redis://127.0.0.1:1", "--tenant", "a}b"}, nil, "--tenant"},
		{"bad env", nil, []string{"HYVVE_REDIS_URL=redis://127.0.0.1:1", "HYVVE_APP_CONCURRENCY=lots"}, "app-concurrency"},
		{"unknown yaml key", []string{"--config", badYAML}, nil, "redis_url"},
		{"unknown flag", []string{"--redis-ur", "x"}, nil, "redis-ur"},
		{"bad redis url", []string{"--redis-url", "http://user:hunter2@x"}, nil, "--redis-url"},
		{"both stores", []string{"--redis-url", "redis://127.0.0.1:1", "--nats-url", "nats://127.0.0.1:2"}, nil, "--nats-url"},
		{"bad nats url", []string{"--nats-url", "http://user:hunter2@x:4222"}, nil, "--nats-url"},
		{"embedded listen without the embedded store", []string{"--nats-url", "nats://127.0.0.1:2", "--embedded-listen", "127.0.0.1:4222"}, nil, "--embedded-listen"},
		{"bad embedded listen", []string{"--data-dir", dir, "--embedded-listen", "nowhere"}, nil, "--embedded-listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := sidecartest.Run(t, tc.args, tc.env)
			if code != 2 {
				t.Errorf("exit code: got %d, want 2\n%s", code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if !strings.Contains(lines[0], tc.want) {
				t.Errorf("first line: got %q, want it to name %q", lines[0], tc.want)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("the password appears in the error: %s", out)
			}
		})
	}
}

// SIGTERM on each store, and on the embedded one, which also shuts down its
// in-process server.
func TestProcess_SIGTERM_exits_0_and_removes_the_socket(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"redis", func(t *testing.T) []string { return startRedis(t).args() }},
		{"jetstream", func(t *testing.T) []string { return startJetStream(t).args() }},
		{"embedded", func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} }},
	} {
		t.Run(tc.name, func(t *testing.T) { sigtermExits0(t, tc.args(t)) })
	}
}

func sigtermExits0(t *testing.T, store []string) {
	sc := sidecartest.Start(t, sidecartest.Options{Socket: true, Args: append(store, "--tenant", "acme")})
	fi, err := os.Stat(sc.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o660 {
		t.Errorf("socket mode: got %o, want 660", mode)
	}
	if code := sc.Stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, sc.Logs())
	}
	if _, err := os.Stat(sc.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("socket still exists after exit: %v", err)
	}
}
