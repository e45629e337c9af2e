package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/testutil/proc"
)

const (
	// clusterSlots is the number of hash slots of every Redis Cluster.
	clusterSlots = 16384
	// clusterNodeTimeout is --cluster-node-timeout: a node that has not
	// answered for this long is failing, and its replica takes over about
	// one to two timeouts later. Redis's default is 15 s; 2 s keeps a
	// failover test at a few seconds without a busy test machine's pause
	// being taken for a dead node.
	clusterNodeTimeout = 2 * time.Second
	// clusterWaitTimeout bounds StartCluster, Restart, WaitHealthy and
	// MasterOf waiting for the nodes to agree on a healthy cluster.
	clusterWaitTimeout = 30 * time.Second
	// clusterCreateTimeout bounds `redis-cli --cluster create`.
	clusterCreateTimeout = time.Minute
	// clusterPollInterval is how often the waits ask the nodes again.
	clusterPollInterval = 50 * time.Millisecond
	// logTailLines is how much of each node's log a failure message shows.
	logTailLines = 15
)

// ClusterOptions configure StartCluster. Zero values: 3 masters, 1 replica each.
type ClusterOptions struct {
	// Masters is the number of masters, at least 3 (redis-cli's minimum);
	// 0 means 3.
	Masters int
	// Replicas is the number of replicas per master; 0 means 1 and a
	// negative number means none.
	Replicas int
	// AppendOnly gives every node an append-only file with appendfsync
	// always, like Options.AppendOnly: what a master acknowledged survives
	// Kill and is there again after Restart.
	AppendOnly bool
	// TLS makes every node accept only TLS connections, clients, the
	// cluster bus and replication alike (--tls-cluster, --tls-replication),
	// with one CA and one server certificate for all (Cluster.TLSFiles). URL
	// is then rediss://, and Client speaks TLS.
	TLS bool
}

// Cluster is a Redis Cluster of redis-server processes owned by a test. It
// is safe for concurrent use; like the rest of the package, its methods
// report failures with t.Fatal, so they must be called from the goroutine
// running the test.
type Cluster struct {
	nodes []*Server // in the order given to redis-cli --cluster create
	// admins[i] talks to nodes[i] alone (not a cluster client): the waits
	// ask every node for its own view of the cluster.
	admins []*redis.Client
	// tlsFiles and tlsConf are set with ClusterOptions.TLS (see Server).
	tlsFiles TLSFiles
	tlsConf  *tls.Config
}

// StartCluster starts a Redis Cluster of real redis-server processes on free
// ports in t.TempDir(), creates it with `redis-cli --cluster create …
// --cluster-replicas N --cluster-yes`, waits until cluster_state:ok on every
// node and every slot is served, and stops every process at t.Cleanup.
//
// Every node binds 127.0.0.1, has its own dir (nodes.conf, append-only file),
// saves no RDB file, and uses a 2 s cluster-node-timeout, so a failover
// takes a few seconds. Replicas may fail over whatever their replication lag
// (cluster-replica-validity-factor 0). StartCluster also waits until every
// replica has synced with its master and is streamed its writes (see
// WaitHealthy), so a replica can take over at once. At most one
// ClusterOptions value is used.
func StartCluster(t testing.TB, opts ...ClusterOptions) *Cluster {
	t.Helper()
	if len(opts) > 1 {
		t.Fatalf("redistest.StartCluster: got %d ClusterOptions, want at most 1", len(opts))
	}
	var o ClusterOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	switch {
	case o.Masters == 0:
		o.Masters = 3
	case o.Masters < 3:
		t.Fatalf("redistest.StartCluster: Masters is %d, want at least 3 (redis-cli --cluster create needs 3)", o.Masters)
	}
	switch {
	case o.Replicas == 0:
		o.Replicas = 1
	case o.Replicas < 0:
		o.Replicas = 0
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest.StartCluster: %v", err)
	}

	nodeOpts := Options{
		AppendOnly: o.AppendOnly,
		Args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // in the node's dir
			"--cluster-node-timeout", strconv.FormatInt(clusterNodeTimeout.Milliseconds(), 10),
			"--cluster-replica-validity-factor", "0",
			// A replica's first sync starts at once, not 5 s later.
			"--repl-diskless-sync-delay", "0",
		},
	}
	c := &Cluster{}
	if o.TLS {
		c.tlsFiles = NewTLSFiles(t)
		if c.tlsConf, err = c.tlsFiles.Config(); err != nil {
			t.Fatalf("redistest.StartCluster: %v", err)
		}
		nodeOpts.TLS, nodeOpts.files = true, &c.tlsFiles
		// A node accepts another on the cluster bus only with a client
		// certificate, whatever --tls-auth-clients says.
		nodeOpts.Args = append(nodeOpts.Args, "--tls-cluster", "yes", "--tls-replication", "yes",
			"--tls-client-cert-file", c.tlsFiles.ClientCert, "--tls-client-key-file", c.tlsFiles.ClientKey)
	}
	t.Cleanup(func() {
		for _, a := range c.admins {
			_ = a.Close()
		}
	})
	for range o.Masters * (1 + o.Replicas) {
		s := startServer(t, "redistest.StartCluster", nodeOpts, true)
		c.nodes = append(c.nodes, s)
		c.admins = append(c.admins, redis.NewClient(&redis.Options{
			Addr:         s.Addr(),
			DialTimeout:  time.Second,
			ReadTimeout:  time.Second,
			WriteTimeout: time.Second,
			MaxRetries:   -1, // the waits poll again
			PoolSize:     2,
			TLSConfig:    c.clientTLS(),
		}))
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(o.Replicas), "--cluster-yes")
	if o.TLS {
		args = append(args, "--tls", "--cacert", c.tlsFiles.CA, "--cert", c.tlsFiles.ClientCert, "--key", c.tlsFiles.ClientKey)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.SysProcAttr = proc.SysProcAttr()
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redistest.StartCluster: redis-cli %s: %v\n%s\n%s", strings.Join(args, " "), err, out, c.logTails())
	}
	if err := c.waitHealthy(); err != nil {
		t.Fatalf("redistest.StartCluster: %v\n%s", err, c.logTails())
	}
	return c
}

// URL returns the cluster's --redis-url: the first node as the host and
// every other node as an addr= seed, the form go-redis ParseClusterURL takes:
// "redis://127.0.0.1:P1?addr=127.0.0.1:P2&addr=…" (rediss:// with
// ClusterOptions.TLS).
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	var b strings.Builder
	if c.tlsConf != nil {
		b.WriteString("rediss://" + addrs[0])
	} else {
		b.WriteString("redis://" + addrs[0])
	}
	for i, a := range addrs[1:] {
		if i == 0 {
			b.WriteString("?addr=")
		} else {
			b.WriteString("&addr=")
		}
		b.WriteString(a)
	}
	return b.String()
}

// Addrs returns every node's address, masters and replicas, "127.0.0.1:port".
// They stay the same across Kill and Restart.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// TLSFiles returns the certificate files of a cluster started with
// ClusterOptions.TLS: one CA, and one server certificate for 127.0.0.1 that
// every node presents.
func (c *Cluster) TLSFiles() TLSFiles { return c.tlsFiles }

// clientTLS is a fresh client configuration with ClusterOptions.TLS, else nil.
func (c *Cluster) clientTLS() *tls.Config {
	if c.tlsConf == nil {
		return nil
	}
	return c.tlsConf.Clone()
}

// Client returns a go-redis cluster client seeded with every node, closed
// when t ends. It follows failovers and survives Kill and Restart: commands
// fail while the slot's master is down and work again after.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), TLSConfig: c.clientTLS()})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterOf returns the address of the master now serving key's slot. It
// waits (at most 30 s) until every running node names the same running
// master for the slot, so called during a failover it returns the new
// master once the cluster has settled on it.
func (c *Cluster) MasterOf(t testing.TB, key string) string {
	t.Helper()
	var master string
	err := c.waitFor(func(ctx context.Context) error {
		live := c.live()
		if len(live) == 0 {
			return fmt.Errorf("no node is running")
		}
		slot, err := c.admins[live[0]].ClusterKeySlot(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("%s: cluster keyslot %q: %w", c.nodes[live[0]].Addr(), key, err)
		}
		master = ""
		for _, i := range live {
			owners, err := c.slotOwners(ctx, i)
			if err != nil {
				return err
			}
			o := owners[slot]
			switch {
			case o == "":
				return fmt.Errorf("%s: slot %d of %q is served by no master", c.nodes[i].Addr(), slot, key)
			case master == "":
				master = o
			case o != master:
				return fmt.Errorf("%s says slot %d of %q is served by %s, %s says %s",
					c.nodes[live[0]].Addr(), slot, key, master, c.nodes[i].Addr(), o)
			}
		}
		if j := c.index(master); j < 0 || !c.nodes[j].running() {
			return fmt.Errorf("slot %d of %q is served by %s, which is down", slot, key, master)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest.MasterOf(%q): %v\n%s", key, err, c.logTails())
	}
	return master
}

// KillNode sends SIGKILL to the node at addr and waits for it to exit. The
// other nodes notice after the node timeout; a killed master's replica then
// takes over (see WaitHealthy).
func (c *Cluster) KillNode(t testing.TB, addr string) {
	t.Helper()
	c.node(t, addr).Kill(t)
}

// RestartNode starts the node at addr again on the same port with the same
// nodes.conf and data dir, and waits until it answers PING. It does not wait
// for the node to rejoin: a master that was failed over comes back as a
// replica of its successor once WaitHealthy passes.
func (c *Cluster) RestartNode(t testing.TB, addr string) {
	t.Helper()
	c.node(t, addr).Restart(t)
}

// Kill sends SIGKILL to every node and waits for them to exit.
func (c *Cluster) Kill(t testing.TB) {
	t.Helper()
	for _, s := range c.nodes {
		s.Kill(t)
	}
}

// Restart kills the nodes still running, starts every node again on the
// same ports with the same files and waits until the cluster is healthy (see
// WaitHealthy). With AppendOnly the data the masters acknowledged is there
// again.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Kill(t)
	for _, s := range c.nodes {
		s.Restart(t)
	}
	c.WaitHealthy(t)
}

// WaitHealthy waits (at most 30 s) until the cluster has settled: every
// running node says cluster_state:ok, every one of the 16384 slots is served
// by a running master and all running nodes agree on which, and every
// running replica has synced and is streamed its master's writes. Use it
// after KillNode of a master (the replica's promotion) and after RestartNode.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	if err := c.waitHealthy(); err != nil {
		t.Fatalf("redistest.WaitHealthy: %v\n%s", err, c.logTails())
	}
}

func (c *Cluster) waitHealthy() error {
	return c.waitFor(c.healthy)
}

// healthy reports the first thing that keeps the cluster from being
// healthy, nil when there is none.
func (c *Cluster) healthy(ctx context.Context) error {
	live := c.live()
	if len(live) == 0 {
		return fmt.Errorf("no node is running")
	}
	running := map[string]bool{}
	for _, i := range live {
		running[c.nodes[i].Addr()] = true
	}
	views := make([][]string, len(live)) // slot owners as each running node sees them
	for k, i := range live {
		addr := c.nodes[i].Addr()
		info, err := c.admins[i].ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: cluster info: %w", addr, err)
		}
		if state := infoField(info, "cluster_state"); state != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", addr, state)
		}
		if views[k], err = c.slotOwners(ctx, i); err != nil {
			return err
		}
		repl, err := c.admins[i].Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("%s: info replication: %w", addr, err)
		}
		switch infoField(repl, "role") {
		case "slave":
			if link := infoField(repl, "master_link_status"); link != "up" {
				return fmt.Errorf("%s: replica's link to its master %s:%s is %s",
					addr, infoField(repl, "master_host"), infoField(repl, "master_port"), link)
			}
		case "master":
			// A replica that has loaded its first copy is online (streamed
			// every write) once its first REPLCONF ACK arrives.
			for r := range strings.SplitSeq(repl, "\n") {
				if strings.HasPrefix(r, "slave") && strings.Contains(r, ",state=") && !strings.Contains(r, ",state=online,") {
					return fmt.Errorf("%s: replica not online yet: %s", addr, strings.TrimSpace(r))
				}
			}
		}
	}
	for k, v := range views {
		addr := c.nodes[live[k]].Addr()
		for slot, o := range v {
			if o == "" {
				return fmt.Errorf("%s: slot %d is served by no master", addr, slot)
			}
			if !running[o] {
				return fmt.Errorf("%s: slot %d is served by %s, which is down", addr, slot, o)
			}
			if first := views[0][slot]; first != o {
				return fmt.Errorf("%s says slot %d is served by %s, %s says %s",
					c.nodes[live[0]].Addr(), slot, first, addr, o)
			}
		}
	}
	return nil
}

// slotOwners returns, as node i sees it, the address of the master of each
// slot ("" when none serves it).
func (c *Cluster) slotOwners(ctx context.Context, i int) ([]string, error) {
	ranges, err := c.admins[i].ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: cluster slots: %w", c.nodes[i].Addr(), err)
	}
	owners := make([]string, clusterSlots)
	for _, r := range ranges {
		if len(r.Nodes) == 0 || r.Start < 0 || r.End >= clusterSlots || r.Start > r.End {
			return nil, fmt.Errorf("%s: cluster slots: bad range %d-%d with %d nodes",
				c.nodes[i].Addr(), r.Start, r.End, len(r.Nodes))
		}
		for slot := r.Start; slot <= r.End; slot++ {
			owners[slot] = r.Nodes[0].Addr // the master comes first
		}
	}
	return owners, nil
}

// waitFor calls check every clusterPollInterval until it returns nil or
// clusterWaitTimeout passes; then it returns check's last error.
func (c *Cluster) waitFor(check func(ctx context.Context) error) error {
	deadline := time.Now().Add(clusterWaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not settled within %v: %w", clusterWaitTimeout, err)
		}
		time.Sleep(clusterPollInterval)
	}
}

// live returns the indexes of the running nodes.
func (c *Cluster) live() []int {
	var live []int
	for i, s := range c.nodes {
		if s.running() {
			live = append(live, i)
		}
	}
	return live
}

// index returns the index of the node at addr, -1 when none is.
func (c *Cluster) index(addr string) int {
	for i, s := range c.nodes {
		if s.Addr() == addr {
			return i
		}
	}
	return -1
}

// node returns the node at addr and fails the test when there is none.
func (c *Cluster) node(t testing.TB, addr string) *Server {
	t.Helper()
	i := c.index(addr)
	if i < 0 {
		t.Fatalf("redistest: no node %s in the cluster, want one of %s", addr, strings.Join(c.Addrs(), ", "))
	}
	return c.nodes[i]
}

// logTails returns the last lines of every node's log, for failure messages.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, s := range c.nodes {
		state := "down"
		if s.running() {
			state = "running"
		}
		fmt.Fprintf(&b, "--- redis-server %s (%s), last lines of its log:\n%s\n", s.Addr(), state, tail(s.run.Out.String(), logTailLines))
	}
	return b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// infoField returns the value of "name:value" in an INFO or CLUSTER INFO
// answer, "" when absent.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
