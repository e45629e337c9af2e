package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
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
		"--admin-token", "--config", "--log-level", "--shutdown-timeout", "HYVVE_REDIS_URL"} {
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

func TestProcess_SIGTERM_exits_0_and_removes_the_socket(t *testing.T) {
	rdb := redistest.Start(t)
	sc := sidecartest.Start(t, sidecartest.Options{Socket: true, Args: []string{"--redis-url", rdb.URL(), "--tenant", "acme"}})
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
