package redistest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// keyPerMaster returns one key per master, stored in that master's slot
// range, as the cluster itself reports its masters.
func keyPerMaster(t *testing.T, ctx context.Context, cc *redis.ClusterClient) map[string]string {
	t.Helper()
	ranges, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	keys := map[string]string{} // master → key
	for i := 0; len(keys) < len(ranges) && i < 10000; i++ {
		key := fmt.Sprintf("key-%d", i)
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
		}
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) {
				if _, ok := keys[r.Nodes[0].Addr]; !ok {
					keys[r.Nodes[0].Addr] = key
				}
			}
		}
	}
	return keys
}

func TestStartCluster_serves_a_key_in_every_masters_slot_range(t *testing.T) {
	tests := []struct {
		name         string
		opts         []redistest.ClusterOptions
		wantMasters  int
		wantReplicas int
	}{
		{"default: 3 masters with 1 replica each", nil, 3, 1},
		{"4 masters without replicas", []redistest.ClusterOptions{{Masters: 4, Replicas: -1}}, 4, 0},
		{"TLS everywhere", []redistest.ClusterOptions{{TLS: true}}, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			start := time.Now()
			c := redistest.StartCluster(t, tt.opts...)
			t.Logf("StartCluster took %v", time.Since(start).Round(time.Millisecond))

			var tlsConf *tls.Config // for the direct clients below
			if len(tt.opts) == 1 && tt.opts[0].TLS {
				var err error
				if tlsConf, err = c.TLSFiles().Config(); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(c.URL(), "rediss://") {
					t.Errorf("URL() = %q, want rediss://", c.URL())
				}
				plain := redis.NewClient(&redis.Options{Addr: c.Addrs()[0], MaxRetries: -1})
				if err := plain.Ping(ctx).Err(); err == nil {
					t.Errorf("PING without TLS on %s: got an answer, want the node to refuse it", c.Addrs()[0])
				}
				_ = plain.Close()
			}

			addrs := c.Addrs()
			if got, want := len(addrs), tt.wantMasters*(1+tt.wantReplicas); got != want {
				t.Fatalf("Addrs() has %d nodes, want %d", got, want)
			}
			if got := len(slices.Compact(slices.Sorted(slices.Values(addrs)))); got != len(addrs) {
				t.Errorf("Addrs() = %v: %d distinct, want %d", addrs, got, len(addrs))
			}
			opt, err := redis.ParseClusterURL(c.URL())
			if err != nil {
				t.Fatalf("ParseClusterURL(%q): %v", c.URL(), err)
			}
			if !slices.Equal(opt.Addrs, addrs) {
				t.Errorf("ParseClusterURL(URL()).Addrs = %v, want every node %v", opt.Addrs, addrs)
			}

			cc := c.Client(t)
			ranges, err := cc.ClusterSlots(ctx).Result()
			if err != nil {
				t.Fatalf("CLUSTER SLOTS: %v", err)
			}
			masters := map[string]bool{}
			for _, r := range ranges {
				masters[r.Nodes[0].Addr] = true
			}
			if len(masters) != tt.wantMasters {
				t.Errorf("got %d masters %v, want %d", len(masters), masters, tt.wantMasters)
			}
			for m := range masters {
				direct := redis.NewClient(&redis.Options{Addr: m, TLSConfig: tlsConf})
				repl, err := direct.Info(ctx, "replication").Result()
				_ = direct.Close()
				if err != nil {
					t.Fatalf("INFO replication on %s: %v", m, err)
				}
				if want := fmt.Sprintf("connected_slaves:%d\r\n", tt.wantReplicas); !strings.Contains(repl, want) {
					t.Errorf("master %s: INFO replication = %q, want %q", m, repl, want)
				}
				if n := strings.Count(repl, "state=online"); n != tt.wantReplicas {
					t.Errorf("master %s: %d replicas online, want %d: %q", m, n, tt.wantReplicas, repl)
				}
			}

			keys := keyPerMaster(t, ctx, cc)
			if len(keys) != len(masters) {
				t.Fatalf("found keys for %d masters, want %d", len(keys), len(masters))
			}
			for master, key := range keys {
				if err := cc.Set(ctx, key, "v-"+key, 0).Err(); err != nil {
					t.Fatalf("SET %s through Client: %v", key, err)
				}
				if got, err := cc.Get(ctx, key).Result(); err != nil || got != "v-"+key {
					t.Errorf("GET %s through Client = %q, %v; want %q", key, got, err, "v-"+key)
				}
				if got := c.MasterOf(t, key); got != master {
					t.Errorf("MasterOf(%s) = %s, want %s", key, got, master)
				}
				// The master itself holds it: no redirect for a plain client.
				direct := redis.NewClient(&redis.Options{Addr: master, TLSConfig: tlsConf})
				got, err := direct.Get(ctx, key).Result()
				_ = direct.Close()
				if err != nil || got != "v-"+key {
					t.Errorf("GET %s on master %s = %q, %v; want %q", key, master, got, err, "v-"+key)
				}
			}
		})
	}
}

func TestCluster_KillNode_of_a_master_promotes_its_replica_with_the_data(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t)
	cc := c.Client(t)

	const key, value = "{acme}:before", "written-before-the-kill"
	old := c.MasterOf(t, key)
	m := redis.NewClient(&redis.Options{Addr: old})
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Set(ctx, key, value, 0).Err(); err != nil {
		t.Fatalf("SET on master %s: %v", old, err)
	}
	if n, err := m.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on master %s = %d, %v; want 1 replica", old, n, err)
	}

	c.KillNode(t, old)
	killed := time.Now()
	c.WaitHealthy(t)
	t.Logf("failover took %v", time.Since(killed).Round(time.Millisecond))

	promoted := c.MasterOf(t, key)
	if promoted == old {
		t.Fatalf("MasterOf(%s) = %s after its master was killed, want its replica", key, promoted)
	}
	if got, err := cc.Get(ctx, key).Result(); err != nil || got != value {
		t.Errorf("GET %s through Client after the failover = %q, %v; want %q", key, got, err, value)
	}
	if err := cc.Set(ctx, key, "after", 0).Err(); err != nil {
		t.Errorf("SET %s through Client after the failover: %v", key, err)
	}

	// The old master comes back as a replica of the one that took over.
	c.RestartNode(t, old)
	c.WaitHealthy(t)
	repl, err := m.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication on %s: %v", old, err)
	}
	if !strings.Contains(repl, "role:slave") || !strings.Contains(repl, "master_port:"+promoted[strings.LastIndex(promoted, ":")+1:]) {
		t.Errorf("restarted old master %s: INFO replication = %q, want role:slave of %s", old, repl, promoted)
	}
	if got := c.MasterOf(t, key); got != promoted {
		t.Errorf("MasterOf(%s) after the old master came back = %s, want %s", key, got, promoted)
	}
}

func TestCluster_Kill_and_Restart_keep_the_data_with_AppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, redistest.ClusterOptions{AppendOnly: true})
	cc := c.Client(t)

	keys := keyPerMaster(t, ctx, cc)
	for _, key := range keys {
		if err := cc.Set(ctx, key, "v-"+key, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}

	c.Kill(t)
	for _, addr := range c.Addrs() {
		p := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		err := p.Ping(ctx).Err()
		_ = p.Close()
		if err == nil {
			t.Errorf("PING %s after Kill succeeded, want the node down", addr)
		}
	}

	start := time.Now()
	c.Restart(t)
	t.Logf("Restart took %v", time.Since(start).Round(time.Millisecond))
	for master, key := range keys {
		if got, err := cc.Get(ctx, key).Result(); err != nil || got != "v-"+key {
			t.Errorf("GET %s (master %s) after Restart = %q, %v; want %q", key, master, got, err, "v-"+key)
		}
	}
}

func TestStartCluster_refuses_fewer_than_3_masters(t *testing.T) {
	ft := &fatalTB{TB: t}
	ft.run(func() { redistest.StartCluster(ft, redistest.ClusterOptions{Masters: 2}) })
	if !strings.Contains(ft.fatal, "Masters is 2, want at least 3") {
		t.Errorf("fatal message = %q, want it to name Masters and the minimum 3", ft.fatal)
	}
}
