// Package e2e holds the black-box tests: they build the real sidecar binary,
// start real brokers (redis-server, nats-server with JetStream) and fake apps,
// and drive everything over HTTP the way an app would.
//
// Every semantic test runs against both stores through forEachStore, and
// inspects only what a user can see through the sidecar: publish answers,
// the pushes the app received, GET /v1/admin/stats and the dead-letter API.
// The tests listed in onRedisCluster (publish, delivery, retry, dead letters,
// replay) run a third time on a Redis Cluster of 3 masters with a replica
// each. Tests named TestRedis_… or TestJetStream_… check one store's layout
// or a behaviour that truly differs between the stores; TestRedisCluster_…
// check what only a cluster has, such as a failover.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/natstest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// broker is the store under test: a real server process owned by the test.
type broker interface {
	// name is the store, "redis" or "jetstream", for tests whose
	// expectations differ between them; a Redis Cluster is "redis" (same
	// layout and ids, only spread over several masters).
	name() string
	// args are the flags that point a sidecar at this broker.
	args() []string
	// kill ends the broker's process with SIGKILL; restart starts it again
	// on the same address with the data it had written.
	kill(t testing.TB)
	restart(t testing.TB)
	// stream is the "stream" field of a publish answer for tenant.
	stream(tenant string) string
}

// redisBroker is a redis-server; tests that assert the Redis layout use
// client.
type redisBroker struct{ srv *redistest.Server }

// startRedis starts a redis-server (see redistest.Start).
func startRedis(t testing.TB, opts ...redistest.Options) *redisBroker {
	t.Helper()
	return &redisBroker{srv: redistest.Start(t, opts...)}
}

func (b *redisBroker) name() string                      { return "redis" }
func (b *redisBroker) args() []string                    { return []string{"--redis-url", b.srv.URL()} }
func (b *redisBroker) kill(t testing.TB)                 { t.Helper(); b.srv.Kill(t) }
func (b *redisBroker) restart(t testing.TB)              { t.Helper(); b.srv.Restart(t) }
func (b *redisBroker) stream(tenant string) string       { return "hyvve:events:{" + tenant + "}" }
func (b *redisBroker) client(t testing.TB) *redis.Client { t.Helper(); return b.srv.Client(t) }

// redisClusterBroker is a Redis Cluster (--redis-cluster), seeded with every
// node; kill and restart stop and start the whole cluster.
type redisClusterBroker struct{ cluster *redistest.Cluster }

// startRedisCluster starts a Redis Cluster (see redistest.StartCluster).
func startRedisCluster(t testing.TB, opts ...redistest.ClusterOptions) *redisClusterBroker {
	t.Helper()
	return &redisClusterBroker{cluster: redistest.StartCluster(t, opts...)}
}

func (b *redisClusterBroker) name() string { return "redis" }
func (b *redisClusterBroker) args() []string {
	return []string{"--redis-url", b.cluster.URL(), "--redis-cluster"}
}
func (b *redisClusterBroker) kill(t testing.TB)           { t.Helper(); b.cluster.Kill(t) }
func (b *redisClusterBroker) restart(t testing.TB)        { t.Helper(); b.cluster.Restart(t) }
func (b *redisClusterBroker) stream(tenant string) string { return "hyvve:events:{" + tenant + "}" }

// jetStreamBroker is an external nats-server with JetStream (--nats-url).
// Its store is on disk, so whatever it acknowledged survives kill.
type jetStreamBroker struct{ srv *natstest.Server }

// startJetStream starts a nats-server with JetStream (see natstest.Start).
func startJetStream(t testing.TB) *jetStreamBroker {
	t.Helper()
	return &jetStreamBroker{srv: natstest.Start(t)}
}

func (b *jetStreamBroker) name() string                { return "jetstream" }
func (b *jetStreamBroker) args() []string              { return []string{"--nats-url", b.srv.URL()} }
func (b *jetStreamBroker) kill(t testing.TB)           { t.Helper(); b.srv.Kill(t) }
func (b *jetStreamBroker) restart(t testing.TB)        { t.Helper(); b.srv.Restart(t) }
func (b *jetStreamBroker) stream(tenant string) string { return "hyvve.events." + tenant }

// forEachStore runs test once per store, as the subtests "redis" and
// "jetstream", one after the other, each with its own fresh broker; a test
// listed in onRedisCluster also runs as "redis-cluster".
func forEachStore(t *testing.T, test func(t *testing.T, b broker)) {
	t.Helper()
	runStores(t, false, test)
}

// forEachDurableStore is forEachStore for tests that kill and restart the
// broker: every redis-server writes its append-only file on every write, as a
// production Redis that must not lose acknowledged events does.
func forEachDurableStore(t *testing.T, test func(t *testing.T, b broker)) {
	t.Helper()
	runStores(t, true, test)
}

// onRedisCluster lists the tests that forEachStore and forEachDurableStore
// also run on a Redis Cluster: publish, delivery, retry, dead letters, replay
// and stats, whose keys spread over the masters there. Not every test: each
// cluster takes 2–3 s to start, and this list already adds about as much
// time to the suite as CI can spare. Left out are tests of what does not
// depend on where the keys live (validation, push headers, subscriptions,
// CloudEvents) and the slowest ones.
var onRedisCluster = map[string]bool{
	"TestPublish_idempotency_key_returns_the_first_result_and_writes_once":              true,
	"TestPublish_batch_answers_one_result_per_event_in_order":                           true,
	"TestDelivery_fans_out_to_every_group_exactly_once":                                 true,
	"TestDelivery_shares_load_within_a_group_without_duplicates_or_loss":                true,
	"TestDelivery_of_events_published_while_the_subscriber_was_stopped":                 true,
	"TestDelivery_of_a_new_tenants_first_event_within_one_second":                       true,
	"TestRetry_an_app_failing_twice_then_answering_200_gets_attempts_1_2_3_on_schedule": true,
	"TestRetry_an_app_always_answering_500_gets_4_attempts_then_one_dead_letter":        true,
	"TestCrash_SIGKILL_with_500_deliveries_in_flight_loses_nothing":                     true,
	"TestCrash_broker_restarted_mid_stream_loses_nothing_accepted":                      true,
	"TestAdmin_DLQ_lists_filters_pages_gets_and_deletes":                                true,
	"TestAdmin_DLQ_retry_delivers_to_the_failed_group_only":                             true,
	"TestAdmin_DLQ_concurrent_retries_of_one_entry_deliver_it_once":                     true,
	"TestReplay_of_a_range_with_a_type_filter_redelivers_exactly_the_matching_events":   true,
	"TestReplay_to_a_target_group_reaches_only_that_group":                              true,
	"TestStats_match_what_was_published_and_dead_lettered":                              true,
}

func runStores(t *testing.T, durable bool, test func(t *testing.T, b broker)) {
	t.Helper()
	t.Run("redis", func(t *testing.T) { test(t, startRedis(t, redistest.Options{AppendOnly: durable})) })
	if onRedisCluster[t.Name()] {
		t.Run("redis-cluster", func(t *testing.T) {
			test(t, startRedisCluster(t, redistest.ClusterOptions{AppendOnly: durable}))
		})
	}
	t.Run("jetstream", func(t *testing.T) { test(t, startJetStream(t)) })
}

// answer is a decoded local API response.
type answer struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// errField returns error.<name> of an error body ("" when absent).
func (a answer) errField(name string) string {
	e, _ := a.Body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

func do(t testing.TB, c *http.Client, method, url string, body string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &a.Body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v: %s", method, url, err, raw)
		}
	}
	return a
}

// publish posts one event to a sidecar over TCP and fails the test unless it
// was accepted (202).
func publish(t testing.TB, sc *sidecartest.Sidecar, body string) answer {
	t.Helper()
	a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", body, nil)
	if a.Status != http.StatusAccepted {
		t.Fatalf("publish %s: got %d %s, want 202", body, a.Status, a.Raw)
	}
	return a
}

// startSidecar starts the real binary against b with the given extra flags.
// Unless args set one, the admin token is adminToken, so that the test can
// inspect the store through the admin API.
func startSidecar(t testing.TB, b broker, app *apptest.App, args ...string) *sidecartest.Sidecar {
	t.Helper()
	full := append(b.args(), "--tenant", "acme", "--log-level", "debug")
	if app != nil {
		full = append(full, "--app-url", app.URL())
	}
	if !slices.Contains(args, "--admin-token") {
		full = append(full, "--admin-token", adminToken)
	}
	return sidecartest.Start(t, sidecartest.Options{Args: append(full, args...)})
}

// ids returns the X-Event-Id of every push.
func ids(ps []apptest.Push) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.EventID
	}
	return out
}

// countIDs counts pushes per event id.
func countIDs(ps []apptest.Push) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		m[p.EventID]++
	}
	return m
}

// answered returns the ids of the events the app answered 200.
func answered(ps []apptest.Push) map[string]bool {
	m := map[string]bool{}
	for _, p := range ps {
		if p.Status == http.StatusOK {
			m[p.EventID] = true
		}
	}
	return m
}

func eventBody(typ, tenant string, extra ...string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"type":%q`, typ)
	if tenant != "" {
		fmt.Fprintf(&b, `,"tenantId":%q`, tenant)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		fmt.Fprintf(&b, `,%q:%s`, extra[i], extra[i+1])
	}
	b.WriteString("}")
	return b.String()
}

// eventually polls cond every 20 ms until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const adminToken = "adm-7f3c9e-secret"

// admin calls the admin API of sc with token ("" = no Authorization header).
func admin(t testing.TB, sc *sidecartest.Sidecar, method, path, token string) answer {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return do(t, sc.Client(), method, sc.URL()+path, "", h)
}

// groupStats is one consumer group in GET /v1/admin/stats.
type groupStats struct {
	Group        string `json:"group"`
	Consumers    int64  `json:"consumers"`
	Lag          int64  `json:"lag"`
	LagEstimated bool   `json:"lagEstimated"`
	Pending      int64  `json:"pending"`
}

// tenantStats is one tenant in GET /v1/admin/stats.
type tenantStats struct {
	TenantID     string       `json:"tenantId"`
	StreamLength int64        `json:"streamLength"`
	DLQLength    int64        `json:"dlqLength"`
	Groups       []groupStats `json:"groups"`
}

// statsAnswer is the part of GET /v1/admin/stats the tests check.
type statsAnswer struct {
	Tenants     []tenantStats `json:"tenants"`
	TenantCount int           `json:"tenantCount"`
	NextCursor  string        `json:"nextCursor"`
	// Groups is set by a store with one consumer per group over all
	// tenants (JetStream); on Redis the groups are per tenant.
	Groups   []groupStats `json:"groups"`
	DLQTotal int64        `json:"dlqTotal"`
	LagTotal int64        `json:"lagTotal"`
	Sidecar  struct {
		PublishedPerSec float64 `json:"publishedPerSec"`
		DeliveredPerSec float64 `json:"deliveredPerSec"`
		FailedPerSec    float64 `json:"failedPerSec"`
		PerMinute       []struct {
			Published int64 `json:"published"`
			Delivered int64 `json:"delivered"`
		} `json:"perMinute"`
	} `json:"sidecar"`
	Cluster struct {
		PublishedPerMinute []struct {
			Minute string `json:"minute"`
			Count  int64  `json:"count"`
		} `json:"publishedPerMinute"`
	} `json:"cluster"`
}

// getStats reads GET /v1/admin/stats<query> through sc (which must have
// adminToken) and fails the test unless it answers 200.
func getStats(t testing.TB, sc *sidecartest.Sidecar, query string) statsAnswer {
	t.Helper()
	a := admin(t, sc, "GET", "/v1/admin/stats"+query, adminToken)
	if a.Status != 200 {
		t.Fatalf("stats: got %d %s, want 200", a.Status, a.Raw)
	}
	var s statsAnswer
	if err := json.Unmarshal([]byte(a.Raw), &s); err != nil {
		t.Fatalf("stats %s: %v", a.Raw, err)
	}
	return s
}

// tenant returns the stats of one tenant (zero and false when absent).
func (s statsAnswer) tenant(id string) (tenantStats, bool) {
	for _, tn := range s.Tenants {
		if tn.TenantID == id {
			return tn, true
		}
	}
	return tenantStats{}, false
}

// group sums a consumer group's pending and lag over the whole answer,
// wherever the store reports it: per tenant on Redis (tenants[].groups[]),
// once over all tenants on JetStream (the top-level groups). found is false
// when nothing lists the group.
func (s statsAnswer) group(name string) (pending, lag int64, found bool) {
	all := slices.Clone(s.Groups)
	for _, tn := range s.Tenants {
		all = append(all, tn.Groups...)
	}
	for _, g := range all {
		if g.Group == name {
			pending += g.Pending
			lag += g.Lag
			found = true
		}
	}
	return pending, lag, found
}

// allStats reads every tenant at once (the tests have a handful).
func allStats(t testing.TB, sc *sidecartest.Sidecar) statsAnswer {
	t.Helper()
	return getStats(t, sc, "?limit=1000")
}

// caughtUp reports whether group has read every event of every tenant and
// holds none of them pending: each was pushed and acknowledged, acknowledged
// without a push, or dead-lettered.
func caughtUp(t testing.TB, sc *sidecartest.Sidecar, group string) bool {
	t.Helper()
	pending, lag, found := allStats(t, sc).group(group)
	return found && pending == 0 && lag == 0
}

// waitCaughtUp waits until caughtUp(group) holds.
func waitCaughtUp(t testing.TB, sc *sidecartest.Sidecar, group string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "group "+group+" to have read and acknowledged everything", func() bool {
		return caughtUp(t, sc, group)
	})
}

// pendingOf returns how many events group holds unacknowledged.
func pendingOf(t testing.TB, sc *sidecartest.Sidecar, group string) int64 {
	t.Helper()
	p, _, found := allStats(t, sc).group(group)
	if !found {
		t.Fatalf("stats list no group %s", group)
	}
	return p
}

// streamLength returns the number of events of tenant the store keeps.
func streamLength(t testing.TB, sc *sidecartest.Sidecar, tenant string) int64 {
	t.Helper()
	tn, _ := allStats(t, sc).tenant(tenant)
	return tn.StreamLength
}

// dlqLength returns the number of dead letters of tenant.
func dlqLength(t testing.TB, sc *sidecartest.Sidecar, tenant string) int64 {
	t.Helper()
	tn, _ := allStats(t, sc).tenant(tenant)
	return tn.DLQLength
}

// deadLetters lists the dead letters of GET /v1/admin/dlq<query> (one page).
func deadLetters(t testing.TB, sc *sidecartest.Sidecar, query string) []map[string]any {
	t.Helper()
	a := admin(t, sc, "GET", "/v1/admin/dlq"+query, adminToken)
	if a.Status != 200 {
		t.Fatalf("GET /v1/admin/dlq%s: got %d %s, want 200", query, a.Status, a.Raw)
	}
	items, ok := a.Body["items"].([]any)
	if !ok {
		t.Fatalf("list answer has no items array: %s", a.Raw)
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i], _ = it.(map[string]any)
	}
	return out
}
