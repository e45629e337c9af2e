package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/apptest"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
	"github.com/hyvve/sidecar/internal/testutil/sidecartest"
)

// tenantsPerMaster returns perMaster tenants for each of the 3 masters of
// the cluster, as the cluster places their streams.
func tenantsPerMaster(t *testing.T, b *redisClusterBroker, perMaster int) []string {
	t.Helper()
	count := map[string]int{}
	var tenants []string
	for i := 0; len(tenants) < 3*perMaster && i < 1000; i++ {
		tenant := fmt.Sprintf("t%d", i)
		m := b.cluster.MasterOf(t, b.stream(tenant))
		if count[m] == perMaster {
			continue
		}
		count[m]++
		tenants = append(tenants, tenant)
	}
	if len(count) != 3 || len(tenants) != 3*perMaster {
		t.Fatalf("tenants over the masters: got %v, want %d on each of 3 masters", count, perMaster)
	}
	return tenants
}

// clusterPublisher publishes events the way a careful client does through a
// failover: each event has its own id and Idempotency-Key, and a 503
// broker_unavailable is retried with both until it is answered 202.
type clusterPublisher struct {
	sc *sidecartest.Sidecar

	mu       sync.Mutex           // guards accepted and last
	accepted map[string]bool      // ids answered 202
	last     map[string]time.Time // per tenant, when a publish was last answered 202

	unavailable atomic.Int64 // 503 broker_unavailable answers
}

// publish publishes event n of tenant until it is answered 202, for at most
// a minute, and returns its id ("" when it never was). Safe for concurrent
// use; failures are reported with t.Errorf.
func (p *clusterPublisher) publish(t *testing.T, tenant string, n int) string {
	id := fmt.Sprintf("%s-%d", tenant, n)
	body := eventBody("order.created", tenant, "id", fmt.Sprintf("%q", id), "data", fmt.Sprintf(`{"n":%d}`, n))
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		req, err := http.NewRequest("POST", p.sc.URL()+"/v1/events", strings.NewReader(body))
		if err != nil {
			t.Errorf("publish %s: %v", id, err)
			return ""
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", id)
		resp, err := p.sc.Client().Do(req)
		if err != nil {
			t.Errorf("publish %s: %v", id, err)
			return ""
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var a struct {
			ID    string `json:"id"`
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &a)
		switch {
		case resp.StatusCode == http.StatusAccepted && a.ID == id:
			p.mu.Lock()
			p.accepted[id] = true
			p.last[tenant] = time.Now()
			p.mu.Unlock()
			return id
		case resp.StatusCode == http.StatusServiceUnavailable && a.Error.Code == "broker_unavailable":
			p.unavailable.Add(1)
			time.Sleep(100 * time.Millisecond)
		default:
			t.Errorf("publish %s during the failover: got %d %s, want 202 with its id or 503 broker_unavailable", id, resp.StatusCode, raw)
			return ""
		}
	}
	t.Errorf("publish %s: still 503 after a minute of retries", id)
	return ""
}

// acceptedIDs returns a copy of the ids answered 202.
func (p *clusterPublisher) acceptedIDs() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.accepted)
}

// lastAccepted returns when a publish of tenant was last answered 202 (zero
// when none was).
func (p *clusterPublisher) lastAccepted(tenant string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[tenant]
}

// failoverRun is one failover test: a sidecar on a cluster and an app
// subscribed to everything.
type failoverRun struct {
	b       *redisClusterBroker
	app     *apptest.App
	sc      *sidecartest.Sidecar
	pub     *clusterPublisher
	tenants []string
	// victim is the tenant whose master is killed; victimMaster that master.
	victim, victimMaster string
}

func startFailoverRun(t *testing.T, opts redistest.ClusterOptions, args ...string) *failoverRun {
	t.Helper()
	r := &failoverRun{b: startRedisCluster(t, opts)}
	r.tenants = tenantsPerMaster(t, r.b, 2)
	r.victim = r.tenants[0]
	r.victimMaster = r.b.cluster.MasterOf(t, r.b.stream(r.victim))
	r.app = apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	r.sc = startSidecar(t, r.b, r.app, append(slices.Clone(scaled), args...)...)
	r.pub = &clusterPublisher{sc: r.sc, accepted: map[string]bool{}, last: map[string]time.Time{}}
	return r
}

// publishAll starts one publisher per tenant, each publishing its events one
// after the other from event first on. The returned stop ends them and
// waits for them; it also runs at cleanup, so no publisher outlives the
// test.
func (r *failoverRun) publishAll(t *testing.T, first int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, tenant := range r.tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := first; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				if r.pub.publish(t, tenant, n) == "" {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
	t.Cleanup(stop)
	return stop
}

// settle waits until the cluster has promoted the victim's replica and the
// sidecar is ready again by itself, checks that the victim's stream moved
// and that the sidecar never restarted, and returns when it was ready.
func (r *failoverRun) settle(t *testing.T, killed time.Time, pid int) (ready time.Time) {
	t.Helper()
	r.b.cluster.WaitHealthy(t)
	promoted := r.b.cluster.MasterOf(t, r.b.stream(r.victim))
	t.Logf("cluster healthy %v after the kill; %s's stream moved from %s to %s",
		time.Since(killed).Round(time.Millisecond), r.victim, r.victimMaster, promoted)
	if promoted == r.victimMaster {
		t.Fatalf("MasterOf(%s) = %s, the killed master; want its replica", r.b.stream(r.victim), promoted)
	}
	eventually(t, 30*time.Second, "/readyz to be 200 again without a restart", func() bool {
		return do(t, r.sc.Client(), "GET", r.sc.URL()+"/readyz", "", nil).Status == http.StatusOK
	})
	ready = time.Now()
	t.Logf("sidecar ready %v after the kill", ready.Sub(killed).Round(time.Millisecond))
	if got := r.sc.PID(); got != pid {
		t.Errorf("sidecar pid: got %d, want %d (no restart)", got, pid)
	}
	return ready
}

// checkDelivered checks that every tenant, the victim too, had a publish
// answered 202 after ready, and waits until the app has received every event
// answered 202 (at-least-once: duplicates are counted once).
func (r *failoverRun) checkDelivered(t *testing.T, ready time.Time) {
	t.Helper()
	for _, tenant := range r.tenants {
		if last := r.pub.lastAccepted(tenant); !last.After(ready) {
			t.Errorf("tenant %s: last publish answered 202 at %v, want one after the sidecar was ready again (%v)",
				tenant, last.Format(time.StampMilli), ready.Format(time.StampMilli))
		}
	}
	accepted := r.pub.acceptedIDs()
	var missing []string
	deadline := time.Now().Add(time.Minute)
	for {
		got := countIDs(r.app.Received())
		missing = missing[:0]
		for id := range accepted {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(missing)
	t.Logf("%d events accepted, %d publishes answered 503 and retried, %d pushes",
		len(accepted), r.pub.unavailable.Load(), len(r.app.Received()))
	if len(missing) > 0 {
		t.Errorf("%d of %d accepted events never reached the app: %v", len(missing), len(accepted), missing)
	}
}

// The cluster's own promise: when a master dies its replica takes over, and
// the sidecar goes on by itself. Redis replicates asynchronously, so without
// --redis-wait-replicas an event the master accepted in its last
// microseconds may be lost with it; this test makes every event accepted
// before the kill reach the replica (WAIT on the master) and publishes again
// only after the kill, through the failover, so it can demand every event
// answered 202. The --redis-wait-replicas test below needs no such help.
func TestRedisCluster_a_master_fails_over_and_the_sidecar_delivers_every_accepted_event_without_a_restart(t *testing.T) {
	r := startFailoverRun(t, redistest.ClusterOptions{})
	pid := r.sc.PID()

	stop := r.publishAll(t, 0)
	time.Sleep(time.Second)
	stop()
	for _, tenant := range r.tenants {
		if r.pub.lastAccepted(tenant).IsZero() {
			t.Fatalf("tenant %s: nothing published before the kill", tenant)
		}
	}
	waitReplicated(t, r.victimMaster, r.victim)

	r.b.cluster.KillNode(t, r.victimMaster)
	killed := time.Now()
	stop = r.publishAll(t, 1000)
	ready := r.settle(t, killed, pid)
	time.Sleep(time.Second) // publishing goes on after the failover
	stop()
	r.checkDelivered(t, ready)
}

// With --redis-wait-replicas 1 a publish is answered 202 only once a replica
// has the event, so no accepted event may be lost even when the master dies
// in the middle of publishing. Each master has 2 replicas: the one that is
// not promoted follows the new master, which can confirm publishes again.
func TestRedisCluster_with_wait_replicas_a_master_killed_mid_publish_loses_no_accepted_event(t *testing.T) {
	r := startFailoverRun(t, redistest.ClusterOptions{Replicas: 2}, "--redis-wait-replicas", "1")
	pid := r.sc.PID()

	stop := r.publishAll(t, 0)
	time.Sleep(time.Second)
	r.b.cluster.KillNode(t, r.victimMaster)
	killed := time.Now()
	ready := r.settle(t, killed, pid)
	time.Sleep(time.Second) // publishing goes on after the failover
	stop()
	r.checkDelivered(t, ready)
}

// Managed Redis Clusters run over TLS: the sidecar reaches them with
// rediss:// and the provider's CA (--redis-ca), and verifies every node's
// certificate, for the address that node announces, on every master it
// writes to and reads from.
func TestRedisCluster_over_TLS_publishes_and_delivers_on_every_master(t *testing.T) {
	b := startRedisCluster(t, redistest.ClusterOptions{TLS: true})
	if !strings.HasPrefix(b.cluster.URL(), "rediss://") {
		t.Fatalf("cluster URL %q, want rediss://", b.cluster.URL())
	}
	tenants := tenantsPerMaster(t, b, 1)
	app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
	sc := startSidecar(t, b, app, "--redis-ca", b.cluster.TLSFiles().CA)
	pub := &clusterPublisher{sc: sc, accepted: map[string]bool{}, last: map[string]time.Time{}}
	for i, tenant := range tenants {
		if pub.publish(t, tenant, i) == "" {
			t.FailNow()
		}
	}
	eventually(t, 10*time.Second, "every tenant's event pushed", func() bool {
		got := countIDs(app.Received())
		for id := range pub.acceptedIDs() {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	if n := pub.unavailable.Load(); n != 0 {
		t.Errorf("got %d publishes answered 503, want none on a healthy cluster", n)
	}

	// Without the CA no node is trusted: not ready, saying why.
	untrusting := sidecartest.Start(t, sidecartest.Options{NoWait: true,
		Args: append(b.args(), "--tenant", "acme", "--admin-token", adminToken)})
	msg := waitNotReady(t, untrusting, "certificate signed by unknown authority")
	if !strings.HasPrefix(msg, "broker: ") {
		t.Errorf("/readyz message without --redis-ca: got %q, want it to name the broker", msg)
	}
}

func TestRedisCluster_flag_with_a_Redis_without_cluster_support_fails_at_start_naming_it(t *testing.T) {
	rb := startRedis(t)
	out, code := sidecartest.Run(t, []string{"--redis-url", rb.srv.URL(), "--redis-cluster"}, nil)
	if code == 0 {
		t.Fatalf("exit code: got 0, want a failure\n%s", out)
	}
	line := strings.Split(strings.TrimSpace(out), "\n")[0]
	for _, want := range []string{"--redis-cluster", "without cluster support"} {
		if !strings.Contains(line, want) {
			t.Errorf("first line of the output: got %q, want it to contain %q", line, want)
		}
	}
}

// onRedisCluster names tests by string: a renamed test would silently stop
// running on the cluster.
func TestRedisCluster_tests_listed_to_run_on_the_cluster_exist_and_run_on_every_store(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	onStores := map[string]bool{} // tests that call forEachStore or forEachDurableStore
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && (id.Name == "forEachStore" || id.Name == "forEachDurableStore") {
						onStores[fn.Name.Name] = true
					}
				}
				return true
			})
		}
	}
	for name := range onRedisCluster {
		if !onStores[name] {
			t.Errorf("onRedisCluster lists %s, want a test that calls forEachStore or forEachDurableStore", name)
		}
	}
}

// waitReplicated makes sure every write the master at addr acknowledged so
// far has reached a replica: a write of its own in tenant's slot, then WAIT
// 1, which covers every earlier write of the master.
func waitReplicated(t *testing.T, addr, tenant string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "e2e:sync:{"+tenant+"}", "1", 0).Err(); err != nil {
		t.Fatalf("SET on master %s: %v", addr, err)
	}
	if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 on master %s: got %d, %v; want the replica to have every write", addr, n, err)
	}
}
