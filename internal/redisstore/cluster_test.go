package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

func TestSlot_is_CRC16_of_the_hash_tag_mod_16384(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		// CRC16("123456789") = 0x31C3 is the check value of CRC-16/XMODEM,
		// the one the Redis Cluster specification gives.
		{"123456789", 0x31C3 % 16384},
		{"", 0},
		{"{123456789}", 0x31C3 % 16384},
		{"hyvve:events:{123456789}", 0x31C3 % 16384},
		{"hyvve:idem:{123456789}:key-{x}", 0x31C3 % 16384}, // the first {…} only
		// The examples of Redis's CLUSTER KEYSLOT documentation.
		{"somekey", 11058},
		{"foo{hash_tag}", 2515},
		{"bar{hash_tag}", 2515},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if got := slot(tc.key); got != tc.want {
				t.Errorf("slot(%q) = %d, want %d", tc.key, got, tc.want)
			}
		})
	}
	// An empty tag does not count: the whole key is hashed.
	if got, want := slot("a{}b"), int(crc16("a{}b")%16384); got != want {
		t.Errorf(`slot("a{}b") = %d, want the slot of the whole key, %d`, got, want)
	}
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf(`crc16("123456789") = %#x, want 0x31c3`, got)
	}
}

// clusterStore is a running Store on the cluster with key prefix prefix;
// with a group, it discovers tenants every 20 ms and retries after 200 ms.
func clusterStore(t *testing.T, cl *redistest.Cluster, prefix string, o Options) *Store {
	t.Helper()
	o.URL, o.Cluster, o.KeyPrefix = cl.URL(), true, prefix
	o.Retention, o.DLQRetention = time.Hour, time.Hour
	if o.Group != "" {
		o.Retry, _ = retry.NewPolicy([]time.Duration{200 * time.Millisecond, 200 * time.Millisecond})
		o.DiscoveryInterval = 20 * time.Millisecond
		if o.Consumer == "" {
			o.Consumer = "c1"
		}
	}
	s, _ := runStore(t, o)
	return s
}

// waitReady waits until Ping succeeds (the group is registered).
func waitReady(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); s.Ping(ctx) != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 10 s: %v", s.Ping(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tenantsOnEveryMaster returns one tenant per master of the cluster (three),
// as the cluster itself places their streams.
func tenantsOnEveryMaster(t *testing.T, cl *redistest.Cluster, prefix string) ([]string, []string) {
	t.Helper()
	var tenants, masters []string
	for i := 0; len(tenants) < 3; i++ {
		if i > 100 {
			t.Fatalf("100 tenants fall on %d masters, want 3", len(masters))
		}
		tenant := fmt.Sprintf("tenant%d", i)
		m := cl.MasterOf(t, prefix+":events:{"+tenant+"}")
		if !slices.Contains(masters, m) {
			tenants, masters = append(tenants, tenant), append(masters, m)
		}
	}
	return tenants, masters
}

// publish publishes reqs and fails the test on any error.
func publish(t *testing.T, s *Store, reqs ...relay.PublishRequest) []relay.PublishResult {
	t.Helper()
	res := make([]relay.PublishResult, len(reqs))
	s.Publish(context.Background(), reqs, res)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("publish %d (tenant %s): %v", i, reqs[i].Event.TenantID, r.Err)
		}
	}
	return res
}

// fetchN calls Fetch until it got n messages or 10 s passed.
func fetchN(t *testing.T, s *Store, n int) []*relay.Message {
	t.Helper()
	got := fetchUntil(t, s, n, 10*time.Second)
	if len(got) != n {
		t.Fatalf("fetched %d messages within 10 s, want %d: %v", len(got), n, got)
	}
	return got
}

func tenantsOf(msgs []*relay.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Tenant)
	}
	slices.Sort(out)
	return out
}

// TestCluster runs the store on one Redis Cluster of 3 masters with a
// replica each; every subtest has its own key prefix. The failover subtest
// comes last: it kills a master.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	cc := cl.Client(t)
	ctx := context.Background()

	t.Run("slot agrees with CLUSTER KEYSLOT", func(t *testing.T) {
		for _, key := range []string{"hyvve:events:{acme}", "hyvve:dlq:{acme}", "hyvve:idem:{acme}:k1", "hyvve:tenants",
			"hyvve:notify", "hyvve:stats:published:29000000", "x:events:{t0042}", "{}", "a{b", "123456789"} {
			want, err := cc.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := slot(key); int64(got) != want {
				t.Errorf("slot(%q) = %d, CLUSTER KEYSLOT says %d", key, got, want)
			}
		}
	})

	t.Run("is ready and tells a cluster from a single Redis", func(t *testing.T) {
		s := clusterStore(t, cl, "ready", Options{})
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping: got %v, want nil", err)
		}
		if err := s.CheckCluster(ctx); err != nil {
			t.Errorf("CheckCluster: got %v, want nil", err)
		}
	})

	t.Run("publish, fetch and ack across tenants on every master", func(t *testing.T) {
		const p = "pfa"
		tenants, masters := tenantsOnEveryMaster(t, cl, p)
		s := clusterStore(t, cl, p, Options{Group: "g"})
		waitReady(t, s)
		var reqs []relay.PublishRequest
		for i, tenant := range tenants {
			reqs = append(reqs, relay.PublishRequest{Event: testEvent(tenant, "user.joined", i)})
		}
		reqs[0].IdempotencyKey = "k1"
		res := publish(t, s, reqs...)
		got := fetchN(t, s, len(tenants))
		if want := slices.Sorted(slices.Values(tenants)); !slices.Equal(tenantsOf(got), want) {
			t.Fatalf("fetched the tenants %v, want one event each of %v (on masters %v)", tenantsOf(got), want, masters)
		}
		for _, m := range got {
			i := slices.Index(tenants, m.Tenant)
			if m.StreamID != res[i].StreamID || m.Event.ID != reqs[i].Event.ID || m.Attempt != 1 {
				t.Errorf("tenant %s: got entry %s event %s attempt %d, want %s %s 1",
					m.Tenant, m.StreamID, m.Event.ID, m.Attempt, res[i].StreamID, reqs[i].Event.ID)
			}
		}
		if err := s.Ack(ctx, got...); err != nil {
			t.Fatal(err)
		}
		for _, tenant := range tenants {
			pe, err := cc.XPending(ctx, p+":events:{"+tenant+"}", "g").Result()
			if err != nil {
				t.Fatal(err)
			}
			if pe.Count != 0 {
				t.Errorf("tenant %s: %d entries pending after Ack, want 0", tenant, pe.Count)
			}
		}
		if n, _ := cc.SCard(ctx, p+":tenants").Result(); n != int64(len(tenants)) {
			t.Errorf("tenant registry: got %d tenants, want %d", n, len(tenants))
		}
	})

	t.Run("reads tenants that share a slot and tenants that do not", func(t *testing.T) {
		const p = "split"
		// Two tenants whose tags hash to one slot: one XREADGROUP names both.
		a := "t0"
		b := ""
		for i := 1; b == ""; i++ {
			if name := fmt.Sprintf("t%d", i); slot(name) == slot(a) {
				b = name
			}
		}
		tenants := []string{a, b, "other"}
		s := clusterStore(t, cl, p, Options{Group: "g"})
		waitReady(t, s)
		for round := range 2 {
			var reqs []relay.PublishRequest
			for i, tenant := range tenants {
				reqs = append(reqs, relay.PublishRequest{Event: testEvent(tenant, "user.joined", 10*round+i)})
			}
			publish(t, s, reqs...)
			if got := tenantsOf(fetchN(t, s, 3)); !slices.Equal(got, slices.Sorted(slices.Values(tenants))) {
				t.Errorf("round %d: fetched tenants %v, want %v", round, got, tenants)
			}
		}
		// And the split read itself: one command per slot, all streams read.
		res, missing, err := s.readBySlot(ctx, []string{s.keys.stream(a), s.keys.stream(b), s.keys.stream("other")}, 10)
		if err != nil || len(missing) != 0 || len(res) != 0 {
			t.Errorf("readBySlot after everything was read: got %v, missing %v, error %v; want nothing", res, missing, err)
		}
	})

	t.Run("retries, dead-letters and retries a dead letter by script", func(t *testing.T) {
		const p = "dlq"
		tenants, _ := tenantsOnEveryMaster(t, cl, p)
		s := clusterStore(t, cl, p, Options{Group: "g"})
		waitReady(t, s)
		var reqs []relay.PublishRequest
		for i, tenant := range tenants {
			reqs = append(reqs, relay.PublishRequest{Event: testEvent(tenant, "user.joined", i)})
		}
		publish(t, s, reqs...)
		first := fetchN(t, s, len(tenants))
		for _, m := range first {
			if err := s.Retry(ctx, m, time.Now(), "app answered 503"); err != nil {
				t.Fatal(err)
			}
		}
		second := fetchN(t, s, len(tenants))
		for _, m := range second {
			if m.Attempt != 2 || m.LastError != "app answered 503" {
				t.Errorf("tenant %s: reclaimed as attempt %d with last error %q, want 2 and the recorded error",
					m.Tenant, m.Attempt, m.LastError)
			}
			ok, err := s.DeadLetter(ctx, m, 2, "app answered 503")
			if err != nil || !ok {
				t.Fatalf("DeadLetter %s: got %v, %v; want true, nil", m.Tenant, ok, err)
			}
		}
		page, err := s.ListDeadLetters(ctx, relay.DLQQuery{Tenant: "*"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != len(tenants) {
			t.Fatalf("dead letters of every tenant: got %d, want %d", len(page.Items), len(tenants))
		}
		for _, tenant := range tenants {
			stream := p + ":events:{" + tenant + "}"
			if pe, _ := cc.XPending(ctx, stream, "g").Result(); pe.Count != 0 {
				t.Errorf("tenant %s: %d pending after dead-lettering, want 0", tenant, pe.Count)
			}
			if n, _ := cc.HLen(ctx, p+":retry:{"+tenant+"}").Result(); n != 0 {
				t.Errorf("tenant %s: %d retry states left, want 0", tenant, n)
			}
		}
		for _, dl := range page.Items {
			if _, err := s.RetryDeadLetter(ctx, dl.Tenant, dl.ID); err != nil {
				t.Fatalf("RetryDeadLetter %s %s: %v", dl.Tenant, dl.ID, err)
			}
		}
		again := fetchN(t, s, len(tenants))
		for _, m := range again {
			if m.Event.TargetGroup != "g" || m.Attempt != 1 {
				t.Errorf("tenant %s: retried dead letter arrived with targetGroup %q attempt %d, want g and 1",
					m.Tenant, m.Event.TargetGroup, m.Attempt)
			}
			if n, _ := cc.XLen(ctx, p+":dlq:{"+m.Tenant+"}").Result(); n != 0 {
				t.Errorf("tenant %s: %d dead letters left after the retry, want 0", m.Tenant, n)
			}
		}
	})

	t.Run("an idempotency key publishes once", func(t *testing.T) {
		const p = "idem"
		s := clusterStore(t, cl, p, Options{})
		ev := testEvent("acme", "user.joined", 1)
		first := publish(t, s, relay.PublishRequest{Event: ev, IdempotencyKey: "order-7"})
		again := publish(t, s, relay.PublishRequest{Event: testEvent("acme", "user.joined", 2), IdempotencyKey: "order-7"})
		if !again[0].Duplicate || again[0].StreamID != first[0].StreamID || again[0].EventID != ev.ID {
			t.Errorf("second publish: got %+v, want a duplicate of %+v", again[0], first[0])
		}
		if n, _ := cc.XLen(ctx, p+":events:{acme}").Result(); n != 1 {
			t.Errorf("stream length: got %d, want 1", n)
		}
	})

	t.Run("replays every tenant and reports stats", func(t *testing.T) {
		const p = "replay"
		tenants, _ := tenantsOnEveryMaster(t, cl, p)
		s := clusterStore(t, cl, p, Options{Group: "g"})
		waitReady(t, s)
		var reqs []relay.PublishRequest
		for i, tenant := range tenants {
			reqs = append(reqs, relay.PublishRequest{Event: testEvent(tenant, "user.joined", i)})
		}
		publish(t, s, reqs...)
		if err := s.Ack(ctx, fetchN(t, s, len(tenants))...); err != nil {
			t.Fatal(err)
		}

		r, err := NewReplayer(s, ReplayOptions{Owner: "test"})
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { r.Run(rctx); close(done) }()
		defer func() { stop(); <-done }()
		var job relay.ReplayJob
		for deadline := time.Now().Add(5 * time.Second); ; {
			job, err = r.StartReplay(ctx, relay.ReplayRequest{Tenant: relay.AllTenants, From: time.Now().Add(-time.Hour),
				To: time.Now().Add(time.Hour), Group: "g"})
			if !errors.Is(err, relay.ErrUnavailable) || time.Now().After(deadline) {
				break // unavailable until Run has started
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		ended := waitEnded(t, r, job.ID)
		if ended.Status != relay.ReplayDone || ended.Republished != int64(len(tenants)) {
			t.Fatalf("replay: got status %s republished %d (error %q), want done and %d", ended.Status,
				ended.Republished, ended.Error, len(tenants))
		}
		for _, m := range fetchN(t, s, len(tenants)) {
			if !m.Event.Replay || m.Event.ReplayID != job.ID {
				t.Errorf("tenant %s: got replay %v id %q, want a replay of job %s", m.Tenant, m.Event.Replay, m.Event.ReplayID, job.ID)
			}
		}

		st, err := s.Stats(ctx, StatsQuery{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if st.TenantCount != len(tenants) || len(st.Tenants) != len(tenants) {
			t.Fatalf("stats: got %d tenants (%d on the page), want %d", st.TenantCount, len(st.Tenants), len(tenants))
		}
		for _, ts := range st.Tenants {
			if ts.StreamLength != 2 || len(ts.Groups) != 1 || ts.Groups[0].Name != "g" || ts.Groups[0].Pending != 1 {
				t.Errorf("stats of %s: got length %d groups %+v, want 2 entries and group g with 1 pending",
					ts.Tenant, ts.StreamLength, ts.Groups)
			}
		}
		var published int64
		for _, m := range st.PublishedPerMinute {
			published += m.Count
		}
		if published != int64(len(tenants)) {
			t.Errorf("published in the last hour: got %d, want %d", published, len(tenants))
		}
	})

	t.Run("a publish waits for a replica on every master it writes to", func(t *testing.T) {
		const p = "wait"
		tenants, _ := tenantsOnEveryMaster(t, cl, p)
		var reqs []relay.PublishRequest
		for i, tenant := range tenants {
			reqs = append(reqs, relay.PublishRequest{Event: testEvent(tenant, "user.joined", i)})
		}
		s := clusterStore(t, cl, p, Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second})
		publish(t, s, reqs...)

		// Each master has one replica: waiting for two fails every event,
		// after the timeout, although each primary has it.
		s2 := clusterStore(t, cl, p, Options{WaitReplicas: 2, WaitTimeout: 200 * time.Millisecond})
		res := make([]relay.PublishResult, len(reqs))
		start := time.Now()
		s2.Publish(ctx, reqs, res)
		took := time.Since(start)
		for i, r := range res {
			if !errors.Is(r.Err, relay.ErrUnavailable) || !strings.Contains(fmt.Sprint(r.Err), "only 1 of 2 replicas confirmed it within 200ms") {
				t.Errorf("tenant %s: got error %v, want ErrUnavailable saying only 1 of 2 replicas confirmed it", tenants[i], r.Err)
			}
		}
		if took < 200*time.Millisecond || took > 3*time.Second {
			t.Errorf("the failed publish took %v, want the 200ms WAIT timeout and a little more", took)
		}
		for _, tenant := range tenants {
			if n, _ := cc.XLen(ctx, p+":events:{"+tenant+"}").Result(); n != 2 {
				t.Errorf("tenant %s: stream length %d, want 2 (the primary has the unconfirmed event)", tenant, n)
			}
		}
	})

	t.Run("works as the ACL user of docs/production.md, with WAIT", func(t *testing.T) {
		const password = "pw-cluster-1"
		args := documentedACL(t, password)
		for _, addr := range cl.Addrs() { // users are per node
			node := redis.NewClient(&redis.Options{Addr: addr})
			if err := node.Do(ctx, args...).Err(); err != nil {
				t.Fatalf("%s: ACL SETUSER: %v", addr, err)
			}
			node.ACLLogReset(ctx)
			node.Close()
		}
		url := "redis://hyvve-sidecar:" + password + "@" + strings.TrimPrefix(cl.URL(), "redis://")
		s, err := New(Options{URL: url, Cluster: true, Retention: time.Hour, DLQRetention: time.Hour, Group: "g",
			Consumer: "c1", Retry: mustPolicy(t, 200*time.Millisecond), DiscoveryInterval: 20 * time.Millisecond,
			WaitReplicas: 1, WaitTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.Run(rctx); close(done) }()
		defer func() { stop(); <-done }()
		waitReady(t, s)

		tenants, _ := tenantsOnEveryMaster(t, cl, "hyvve")
		var reqs []relay.PublishRequest
		for i, tenant := range tenants {
			reqs = append(reqs, relay.PublishRequest{Event: testEvent(tenant, "user.joined", i), IdempotencyKey: "k"})
		}
		publish(t, s, reqs...)
		got := fetchN(t, s, len(tenants))
		if ok, err := s.DeadLetter(ctx, got[0], 1, "app answered 400"); err != nil || !ok {
			t.Fatalf("DeadLetter: got %v, %v; want true, nil", ok, err)
		}
		if err := s.Ack(ctx, got[1:]...); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stats(ctx, StatsQuery{}, time.Now()); err != nil {
			t.Fatalf("Stats: %v", err)
		}
		for _, addr := range cl.Addrs() {
			node := redis.NewClient(&redis.Options{Addr: addr})
			entries, err := node.ACLLog(ctx, 10).Result()
			node.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				t.Errorf("%s: ACL LOG: %s %s refused for %s", addr, e.Reason, e.Object, e.Username)
			}
		}
	})

	// Last: it kills a master.
	t.Run("a failover makes publishes unavailable, then the store recovers by itself", func(t *testing.T) {
		const p = "failover"
		tenants, masters := tenantsOnEveryMaster(t, cl, p)
		s := clusterStore(t, cl, p, Options{Group: "g"})
		waitReady(t, s)
		publish(t, s, relay.PublishRequest{Event: testEvent(tenants[0], "user.joined", 0)})
		if err := s.Ack(ctx, fetchN(t, s, 1)...); err != nil {
			t.Fatal(err)
		}

		cl.KillNode(t, masters[0])
		if err := s.Ping(ctx); !errors.Is(err, relay.ErrUnavailable) {
			t.Errorf("Ping with a master down: got %v, want ErrUnavailable", err)
		}
		res := make([]relay.PublishResult, 1)
		start := time.Now()
		s.Publish(ctx, []relay.PublishRequest{{Event: testEvent(tenants[0], "user.joined", 1)}}, res)
		if !errors.Is(res[0].Err, relay.ErrUnavailable) {
			t.Errorf("publish to the dead master's tenant: got %v, want ErrUnavailable (503)", res[0].Err)
		}
		t.Logf("a publish to the dead master failed after %v: %v", time.Since(start), res[0].Err)

		cl.WaitHealthy(t) // the replica was promoted
		var last error
		deadline := time.Now().Add(20 * time.Second)
		for {
			s.Publish(ctx, []relay.PublishRequest{{Event: testEvent(tenants[0], "user.joined", 2)}}, res)
			if last = res[0].Err; last == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if last != nil {
			t.Fatalf("publish after the failover: still %v after 20 s", last)
		}
		// The reader meets the failover too: its errors say unavailable
		// until it has found the new master.
		want := testEvent(tenants[0], "user.joined", 2).ID
		var readErr error
		found := false
		for deadline := time.Now().Add(20 * time.Second); !found && time.Now().Before(deadline); {
			msgs, err := s.Fetch(ctx, 16)
			if err != nil {
				if !errors.Is(err, relay.ErrUnavailable) {
					t.Fatalf("Fetch after the failover: got %v, want ErrUnavailable or messages", err)
				}
				readErr = err
				time.Sleep(100 * time.Millisecond)
			}
			for _, m := range msgs {
				found = found || m.Event != nil && m.Event.ID == want
			}
		}
		if !found {
			t.Fatalf("reading after the failover: event %s did not arrive within 20 s (last error %v)", want, readErr)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping after the failover: got %v, want nil", err)
		}
	})
}

func TestCheckCluster_names_the_flag_for_a_Redis_without_cluster_support(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{URL: srv.URL(), Cluster: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	err = s.CheckCluster(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "--redis-cluster: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("CheckCluster: got %v, want one line naming --redis-cluster", err)
	}
	if perr := s.Ping(ctx); perr == nil || perr.Error() != fmt.Sprint(err) {
		t.Errorf("Ping: got %v, want the same error as CheckCluster", perr)
	}
}

func TestNew_cluster_client_verifies_each_node_and_allows_for_WAIT(t *testing.T) {
	f := redistest.NewTLSFiles(t)
	s, err := New(Options{URL: "rediss://u:pw@seed.example.com:7000?addr=other.example.com:7001", Cluster: true,
		CAFile: f.CA, WaitReplicas: 1, WaitTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.rdb.(*redis.ClusterClient).Options()
	if got, want := o.Addrs, []string{"seed.example.com:7000", "other.example.com:7001"}; !slices.Equal(got, want) {
		t.Errorf("seeds: got %v, want %v", got, want)
	}
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "" || o.TLSConfig.RootCAs == nil {
		t.Errorf("TLS: got %+v, want the CA and no fixed server name (each node is verified for its own address)", o.TLSConfig)
	}
	if o.ReadTimeout != ioTimeout+2*time.Second {
		t.Errorf("read timeout: got %v, want %v (WAIT's timeout on top)", o.ReadTimeout, ioTimeout+2*time.Second)
	}
	if s.opts.DirectRead != -1 {
		t.Errorf("DirectRead on a cluster: got %d, want -1 (always the change signals)", s.opts.DirectRead)
	}
}

func mustPolicy(t *testing.T, steps ...time.Duration) retry.Policy {
	t.Helper()
	p, err := retry.NewPolicy(steps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// documentedACL returns the ACL SETUSER line of docs/production.md as
// command arguments, with PASSWORD replaced: what users are told to run.
func documentedACL(t *testing.T, password string) []any {
	t.Helper()
	data, err := os.ReadFile("../../docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "ACL SETUSER hyvve-sidecar ") {
			continue
		}
		var args []any
		for _, f := range strings.Fields(strings.Replace(line, ">PASSWORD", ">"+password, 1)) {
			args = append(args, f)
		}
		return args
	}
	t.Fatal("docs/production.md has no line starting with ACL SETUSER hyvve-sidecar")
	return nil
}
