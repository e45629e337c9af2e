package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// The Redis user of docs/production.md. The password holds characters that
// must be percent-encoded in the URL: it must show up nowhere, in either form.
const (
	sidecarUser     = "hyvve-sidecar"
	sidecarPassword = "Pw:kq/zv@never-printed"
)

// passwordForms are the ways the password could leak into output: as it is,
// percent-encoded, or in part (a wrong password differs in its last letter).
var passwordForms = []string{sidecarPassword, url.QueryEscape(sidecarPassword), "never-print"}

// sidecarURL is a --redis-url for user and password on srv's address.
func sidecarURL(srv *redistest.Server, scheme, password, db string) string {
	u := url.URL{Scheme: scheme, User: url.UserPassword(sidecarUser, password), Host: srv.Addr(), Path: "/" + db}
	return u.String()
}

// documentedACL returns the ACL SETUSER line of docs/production.md, split
// into arguments, with PASSWORD replaced: the test runs exactly what the
// documentation tells users to run.
func documentedACL(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile("../docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "ACL SETUSER "+sidecarUser+" ") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/production.md: got %d lines starting with ACL SETUSER %s, want 1", len(found), sidecarUser)
	}
	args := strings.Fields(found[0])
	i := slices.Index(args, ">PASSWORD")
	if i < 0 {
		t.Fatalf("the documented ACL line has no >PASSWORD: %s", found[0])
	}
	args[i] = ">" + sidecarPassword
	return args
}

// without returns args less rule, which must be there.
func without(t testing.TB, args []string, rule string) []string {
	t.Helper()
	i := slices.Index(args, rule)
	if i < 0 {
		t.Fatalf("the ACL line has no %s", rule)
	}
	return slices.Delete(slices.Clone(args), i, i+1)
}

// setUser runs an ACL SETUSER as the default user.
func setUser(t testing.TB, c *redis.Client, args []string) {
	t.Helper()
	cmd := make([]any, len(args))
	for i, a := range args {
		cmd[i] = a
	}
	if err := c.Do(context.Background(), cmd...).Err(); err != nil {
		t.Fatalf("%s %s: %v", args[0], args[1], err)
	}
}

// aclLog returns what ACL LOG holds: one line per refused command or key.
func aclLog(t testing.TB, c *redis.Client) []string {
	t.Helper()
	entries, err := c.Do(context.Background(), "ACL", "LOG").Slice()
	if err != nil {
		t.Fatalf("ACL LOG: %v", err)
	}
	var out []string
	for _, e := range entries {
		m := map[string]any{}
		switch v := e.(type) {
		case map[any]any: // RESP3
			for k, x := range v {
				m[fmt.Sprint(k)] = x
			}
		case []any: // RESP2: a flat list of pairs
			for i := 0; i+1 < len(v); i += 2 {
				m[fmt.Sprint(v[i])] = v[i+1]
			}
		}
		out = append(out, fmt.Sprintf("%v %v by %v", m["reason"], m["object"], m["username"]))
	}
	return out
}

// secureSidecar starts the real binary as user sidecarUser with the given
// flags and, once the test has stopped it, fails the test if the password
// appears anywhere in what it wrote. Without wait it returns at once.
func secureSidecar(t testing.TB, redisURL string, app *apptest.App, wait bool, args ...string) *sidecartest.Sidecar {
	t.Helper()
	var sc *sidecartest.Sidecar
	// Registered first, so it runs after sidecartest has stopped the
	// sidecar: the shutdown lines are checked too.
	t.Cleanup(func() {
		if sc != nil {
			noPassword(t, "the sidecar's output", sc.Logs())
		}
	})
	full := []string{"--redis-url", redisURL, "--tenant", "acme", "--admin-token", adminToken, "--log-level", "debug"}
	if app != nil {
		full = append(full, "--app-url", app.URL())
	}
	sc = sidecartest.Start(t, sidecartest.Options{Args: append(full, args...), NoWait: !wait})
	return sc
}

// noPassword fails the test if out holds the Redis password in any form.
func noPassword(t testing.TB, what, out string) {
	t.Helper()
	for _, p := range passwordForms {
		if strings.Contains(out, p) {
			t.Errorf("%s shows the Redis password (%q): %s", what, p, out)
		}
	}
}

// call is do through sc, checking that the answer does not hold the password.
func call(t testing.TB, sc *sidecartest.Sidecar, method, path, body string, headers map[string]string) answer {
	t.Helper()
	a := do(t, sc.Client(), method, sc.URL()+path, body, headers)
	noPassword(t, method+" "+path, a.Raw)
	return a
}

// adminCall is call with the admin token.
func adminCall(t testing.TB, sc *sidecartest.Sidecar, method, path, body string) answer {
	t.Helper()
	return call(t, sc, method, path, body, map[string]string{"Authorization": "Bearer " + adminToken})
}

// waitNotReady polls /readyz of a sidecar started without waiting until it
// answers 503 with a message holding want, and returns that message.
func waitNotReady(t testing.TB, sc *sidecartest.Sidecar, want string) string {
	t.Helper()
	last := "no answer"
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := sc.Client().Get(sc.URL() + "/readyz")
		if err != nil { // not listening yet
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var body struct {
			Error struct{ Message string } `json:"error"`
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		noPassword(t, "/readyz", string(raw))
		last = fmt.Sprintf("%d %s", resp.StatusCode, raw)
		if resp.StatusCode == http.StatusServiceUnavailable && json.Unmarshal(raw, &body) == nil &&
			strings.Contains(body.Error.Message, want) {
			return body.Error.Message
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/readyz: got %s, want 503 with a message holding %q", last, want)
	return ""
}

// publishAndDeliver publishes one event through sc and waits until app
// answered its push 200.
func publishAndDeliver(t testing.TB, sc *sidecartest.Sidecar, app *apptest.App) {
	t.Helper()
	a := call(t, sc, "POST", "/v1/events", eventBody("invoice.paid", "acme", "data", `{"invoiceId":"inv-1"}`), nil)
	if a.Status != http.StatusAccepted {
		t.Fatalf("publish: got %d %s, want 202", a.Status, a.Raw)
	}
	app.WaitFor(t, 10*time.Second, "the event pushed and answered 200", func(ps []apptest.Push) bool {
		return slices.ContainsFunc(ps, func(p apptest.Push) bool { return p.EventID == a.Body["id"] && p.Status == 200 })
	})
}

// waitLogged waits until sc logged a warning or an error that holds reason.
func waitLogged(t testing.TB, sc *sidecartest.Sidecar, reason string) {
	t.Helper()
	eventually(t, 15*time.Second, "a logged warning or error holding "+reason, func() bool {
		for _, line := range strings.Split(sc.Logs(), "\n") {
			if (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) &&
				strings.Contains(line, reason) {
				return true
			}
		}
		return false
	})
}

func deliveringApp(t testing.TB) *apptest.App {
	return apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
}

func TestRedisTLS_publish_and_delivery_work_over_TLS_with_redis_ca(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true})
	setUser(t, srv.Client(t), documentedACL(t))
	app := deliveringApp(t)
	sc := secureSidecar(t, sidecarURL(srv, "rediss", sidecarPassword, "0"), app, true,
		"--redis-ca", srv.TLSFiles().CA)
	publishAndDeliver(t, sc, app)
	if a := call(t, sc, "GET", "/readyz", "", nil); a.Status != 200 {
		t.Errorf("/readyz: got %d %s, want 200", a.Status, a.Raw)
	}
	if !strings.Contains(sc.Logs(), `"redis-url":"rediss://`+sidecarUser+`@`+srv.Addr()+`/0"`) {
		t.Errorf("the start line lacks the redis URL without its password")
	}
}

func TestRedisTLS_without_redis_ca_the_sidecar_is_not_ready_and_says_the_certificate_is_unknown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true})
	setUser(t, srv.Client(t), documentedACL(t))
	app := deliveringApp(t)
	sc := secureSidecar(t, sidecarURL(srv, "rediss", sidecarPassword, "0"), app, false) // the system's roots

	const reason = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
	msg := waitNotReady(t, sc, reason)
	if want := "broker: broker unavailable: " + reason; msg != want {
		t.Errorf("/readyz message: got %q, want %q", msg, want)
	}
	waitLogged(t, sc, reason)
	a := call(t, sc, "POST", "/v1/events", eventBody("invoice.paid", "acme"), nil)
	if a.Status != http.StatusServiceUnavailable || !strings.Contains(a.errField("message"), reason) {
		t.Errorf("publish: got %d %s, want 503 naming the certificate error", a.Status, a.Raw)
	}
	if n := len(app.Received()); n != 0 {
		t.Errorf("pushes: got %d, want 0", n)
	}
}

func TestRedisTLS_a_server_that_requires_client_certificates_takes_redis_cert_and_key(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: "yes"})
	setUser(t, srv.Client(t), documentedACL(t))
	files := srv.TLSFiles()
	redisURL := sidecarURL(srv, "rediss", sidecarPassword, "0")

	t.Run("without a client certificate it is not ready", func(t *testing.T) {
		sc := secureSidecar(t, redisURL, deliveringApp(t), false, "--redis-ca", files.CA)
		msg := waitNotReady(t, sc, "tls: certificate required")
		if strings.Contains(msg, "\n") {
			t.Errorf("/readyz message has more than one line: %q", msg)
		}
	})
	t.Run("with --redis-cert and --redis-key it delivers", func(t *testing.T) {
		app := deliveringApp(t)
		sc := secureSidecar(t, redisURL, app, true,
			"--redis-ca", files.CA, "--redis-cert", files.ClientCert, "--redis-key", files.ClientKey)
		publishAndDeliver(t, sc, app)
	})
}

func TestRedisTLS_flags_are_checked_at_start_with_one_line(t *testing.T) {
	files := redistest.NewTLSFiles(t)
	other := redistest.NewTLSFiles(t)
	plain := "redis://" + sidecarUser + ":" + url.QueryEscape(sidecarPassword) + "@127.0.0.1:6379/0"
	tlsURL := "rediss://" + sidecarUser + ":" + url.QueryEscape(sidecarPassword) + "@127.0.0.1:6380/0"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"CA with redis://", []string{"--redis-url", plain, "--redis-ca", files.CA},
			"--redis-ca: TLS to Redis needs a rediss:// --redis-url, got redis://hyvve-sidecar@127.0.0.1:6379/0"},
		{"missing CA file", []string{"--redis-url", tlsURL, "--redis-ca", "/nonexistent/ca.pem"},
			"--redis-ca: open /nonexistent/ca.pem: no such file or directory"},
		{"CA file without a certificate", []string{"--redis-url", tlsURL, "--redis-ca", files.ClientKey},
			"--redis-ca: " + files.ClientKey + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)"},
		{"certificate without key", []string{"--redis-url", tlsURL, "--redis-cert", files.ClientCert},
			"--redis-cert: needs --redis-key, the file of the certificate's private key"},
		{"key of another certificate", []string{"--redis-url", tlsURL, "--redis-cert", files.ClientCert, "--redis-key", other.ClientKey},
			"--redis-key: " + other.ClientKey + ": private key does not match public key (want the unencrypted PEM private key of --redis-cert)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := sidecartest.Run(t, tc.args, nil)
			if code != 2 {
				t.Errorf("exit code: got %d, want 2", code)
			}
			if got, want := strings.TrimSuffix(out, "\n"), "sidecar: "+tc.want; got != want {
				t.Errorf("output\n got %q\nwant %q", got, want)
			}
			noPassword(t, "the output", out)
		})
	}
}

// TestRedisACL_the_documented_user_runs_everything runs every feature that
// touches Redis as the user of docs/production.md (on database 1, so that
// SELECT is needed too), then checks that Redis refused nothing.
func TestRedisACL_the_documented_user_runs_publish_delivery_retries_dead_letters_replay_and_stats(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	setUser(t, admin, documentedACL(t))

	// The app fails order.failed with 500 while failing is set, dead-letters
	// order.rejected with 422 at once, and takes everything else.
	var failing atomic.Bool
	failing.Store(true)
	app := deliveringApp(t)
	app.SetHandler(func(w http.ResponseWriter, r *http.Request) {
		switch typ := r.Header.Get("X-Event-Type"); {
		case typ == "order.failed" && failing.Load():
			w.WriteHeader(http.StatusInternalServerError)
		case typ == "order.rejected":
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
	})
	start := time.Now().Add(-time.Second)
	sc := secureSidecar(t, sidecarURL(srv, "redis", sidecarPassword, "1"), app, true,
		append([]string{"--group", "billing"}, scaled...)...)

	// Publish: one event, a batch, and an Idempotency-Key twice.
	publishAndDeliver(t, sc, app)
	if a := call(t, sc, "POST", "/v1/events/batch",
		`{"events":[{"type":"order.placed","tenantId":"acme"},{"type":"order.placed","tenantId":"globex"}]}`, nil); a.Status != 202 {
		t.Fatalf("batch: got %d %s, want 202", a.Status, a.Raw)
	}
	key := map[string]string{"Idempotency-Key": "order-42"}
	first := call(t, sc, "POST", "/v1/events", eventBody("order.paid", "acme"), key)
	second := call(t, sc, "POST", "/v1/events", eventBody("order.paid", "acme"), key)
	if first.Status != 202 || second.Status != 202 || second.Body["id"] != first.Body["id"] ||
		second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("idempotent publish: got %d %s then %d %s, want the first answer replayed", first.Status, first.Raw, second.Status, second.Raw)
	}

	// Retries, then a dead letter; and a dead letter at once.
	failed := call(t, sc, "POST", "/v1/events", eventBody("order.failed", "acme"), nil)
	rejected := call(t, sc, "POST", "/v1/events", eventBody("order.rejected", "acme"), nil)
	eventually(t, 15*time.Second, "two dead letters", func() bool { return dlqLength(t, sc, "acme") == 2 })
	attempts := 0
	for _, p := range app.Received() {
		if p.EventID == failed.Body["id"] {
			attempts++
		}
	}
	if attempts != 4 {
		t.Errorf("pushes of the failing event: got %d, want 4 (1 try, 3 retries)", attempts)
	}

	// The dead-letter API: list, get, retry one, delete the other.
	list := adminCall(t, sc, "GET", "/v1/admin/dlq?tenantId=acme", "")
	items, _ := list.Body["items"].([]any)
	if list.Status != 200 || len(items) != 2 {
		t.Fatalf("DLQ list: got %d %s, want 2 items", list.Status, list.Raw)
	}
	dlID := map[string]string{} // event id → dead-letter id
	for _, it := range items {
		dl, _ := it.(map[string]any)
		ev, _ := dl["event"].(map[string]any)
		dlID[fmt.Sprint(ev["id"])] = fmt.Sprint(dl["id"])
	}
	failedDL, rejectedDL := dlID[fmt.Sprint(failed.Body["id"])], dlID[fmt.Sprint(rejected.Body["id"])]
	if a := adminCall(t, sc, "GET", "/v1/admin/dlq/acme/"+failedDL, ""); a.Status != 200 {
		t.Errorf("DLQ get: got %d %s, want 200", a.Status, a.Raw)
	}
	failing.Store(false)
	if a := adminCall(t, sc, "POST", "/v1/admin/dlq/acme/"+failedDL+"/retry", ""); a.Status != 202 {
		t.Fatalf("DLQ retry: got %d %s, want 202", a.Status, a.Raw)
	}
	app.WaitFor(t, 10*time.Second, "the retried dead letter answered 200", func(ps []apptest.Push) bool {
		return slices.ContainsFunc(ps, func(p apptest.Push) bool { return p.EventID == failed.Body["id"] && p.Status == 200 })
	})
	if a := adminCall(t, sc, "DELETE", "/v1/admin/dlq/acme/"+rejectedDL, ""); a.Status != 204 {
		t.Errorf("DLQ delete: got %d %s, want 204", a.Status, a.Raw)
	}
	eventually(t, 5*time.Second, "an empty DLQ", func() bool { return dlqLength(t, sc, "acme") == 0 })

	// A replay of everything published so far, for this group.
	job := adminCall(t, sc, "POST", "/v1/admin/replays",
		replayBody("acme", start, time.Now(), "types", `["invoice.paid"]`, "group", `"billing"`))
	if job.Status != 202 {
		t.Fatalf("replay: got %d %s, want 202", job.Status, job.Raw)
	}
	if done := waitReplay(t, sc, fmt.Sprint(job.Body["id"]), 10*time.Second); done.Body["status"] != "done" || counters(done)[2] != 1 {
		t.Errorf("replay: got %s, want done with 1 republished", done.Raw)
	}
	app.WaitFor(t, 10*time.Second, "the replayed event", func(ps []apptest.Push) bool { return len(replays(ps)) == 1 })
	if a := adminCall(t, sc, "GET", "/v1/admin/replays", ""); a.Status != 200 {
		t.Errorf("replay list: got %d %s, want 200", a.Status, a.Raw)
	}

	// Stats, and every event read and acknowledged.
	waitCaughtUp(t, sc, "billing", 10*time.Second)
	stats := allStats(t, sc)
	if acme, ok := stats.tenant("acme"); !ok || acme.StreamLength < 6 {
		t.Errorf("stats of acme: got %+v, want a stream of at least 6 events", acme)
	}
	if stats.TenantCount != 2 {
		t.Errorf("stats: got %d tenants, want 2 (acme, globex)", stats.TenantCount)
	}
	if a := call(t, sc, "GET", "/readyz", "", nil); a.Status != 200 {
		t.Errorf("/readyz: got %d %s, want 200", a.Status, a.Raw)
	}

	if refused := aclLog(t, admin); len(refused) > 0 {
		t.Errorf("Redis refused the documented user: %v", refused)
	}
	for _, line := range strings.Split(sc.Logs(), "\n") {
		if strings.Contains(line, "NOPERM") {
			t.Errorf("the sidecar logged a refused command: %s", line)
			break
		}
	}
	// The sidecar really ran as that user on database 1.
	if n, err := admin.Do(context.Background(), "SELECT", "1").Result(); err != nil || n != "OK" {
		t.Fatalf("SELECT 1: %v", err)
	}
	clients, err := admin.ClientList(context.Background()).Result()
	if err != nil || !strings.Contains(clients, "user="+sidecarUser) {
		t.Errorf("CLIENT LIST: got %v %s, want connections of %s", err, clients, sidecarUser)
	}
}

func TestRedisACL_a_user_missing_a_needed_command_is_reported_clearly(t *testing.T) {
	tests := []struct {
		missing string
		check   func(t *testing.T, sc *sidecartest.Sidecar, app *apptest.App)
	}{
		{"+ping", func(t *testing.T, sc *sidecartest.Sidecar, _ *apptest.App) {
			msg := waitNotReady(t, sc, "NOPERM")
			if want := "broker: redis: NOPERM this user has no permissions to run the 'ping' command"; msg != want {
				t.Errorf("/readyz message: got %q, want %q", msg, want)
			}
		}},
		{"+xadd", func(t *testing.T, sc *sidecartest.Sidecar, _ *apptest.App) {
			a := call(t, sc, "POST", "/v1/events", eventBody("invoice.paid", "acme"), nil)
			if a.Status == 202 || !strings.Contains(a.errField("message"), "NOPERM this user has no permissions to run the 'xadd' command") {
				t.Errorf("publish: got %d %s, want an error naming NOPERM and xadd", a.Status, a.Raw)
			}
		}},
		{"+xreadgroup", func(t *testing.T, sc *sidecartest.Sidecar, app *apptest.App) {
			if a := call(t, sc, "POST", "/v1/events", eventBody("invoice.paid", "acme"), nil); a.Status != 202 {
				t.Fatalf("publish: got %d %s, want 202", a.Status, a.Raw)
			}
			// Every other check passes, but the sidecar cannot read the
			// stream it now has to: it must not say it is ready.
			msg := waitNotReady(t, sc, "xreadgroup")
			if want := "reading events fails: xreadgroup: redis: NOPERM this user has no permissions to run the 'xreadgroup' command"; msg != want {
				t.Errorf("/readyz message: got %q, want %q", msg, want)
			}
			waitLogged(t, sc, "NOPERM this user has no permissions to run the 'xreadgroup' command")
			if n := len(app.Received()); n != 0 {
				t.Errorf("pushes: got %d, want 0", n)
			}
		}},
	}
	for _, tc := range tests {
		t.Run("without "+tc.missing, func(t *testing.T) {
			srv := redistest.Start(t)
			setUser(t, srv.Client(t), without(t, documentedACL(t), tc.missing))
			app := deliveringApp(t)
			sc := secureSidecar(t, sidecarURL(srv, "redis", sidecarPassword, "0"), app, false)
			if tc.missing != "+ping" {
				sc.WaitReady(t, 15*time.Second)
			}
			tc.check(t, sc, app)
		})
	}
}

func TestRedisSecurity_a_wrong_password_is_reported_without_the_password(t *testing.T) {
	srv := redistest.Start(t)
	setUser(t, srv.Client(t), documentedACL(t))
	// The sidecar gets a wrong password that differs from the right one in
	// its last character only: neither may show.
	wrong := sidecarPassword[:len(sidecarPassword)-1] + "X"
	sc := secureSidecar(t, sidecarURL(srv, "redis", wrong, "0"), deliveringApp(t), false)
	msg := waitNotReady(t, sc, "WRONGPASS")
	if strings.Contains(msg, "\n") {
		t.Errorf("/readyz message has more than one line: %q", msg)
	}
	waitLogged(t, sc, "WRONGPASS invalid username-password pair")
}

// A password changed on the server while sidecars run makes every new
// connection fail its AUTH: a publish must then fail, never answer 202 for
// an event Redis did not store.
func TestRedisSecurity_a_publish_with_a_wrong_password_is_refused_not_acknowledged(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	setUser(t, admin, documentedACL(t))
	wrong := sidecarPassword[:len(sidecarPassword)-1] + "X"
	sc := secureSidecar(t, sidecarURL(srv, "redis", wrong, "0"), nil, false)
	waitNotReady(t, sc, "WRONGPASS")
	a := call(t, sc, "POST", "/v1/events", eventBody("invoice.paid", "acme"), nil)
	if a.Status == 202 || !strings.Contains(a.errField("message"), "WRONGPASS") {
		t.Errorf("publish: got %d %s, want an error naming WRONGPASS", a.Status, a.Raw)
	}
	if n, err := admin.Exists(context.Background(), "hyvve:events:{acme}").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS hyvve:events:{acme}: got %d %v, want 0: nothing was stored", n, err)
	}
}
