// Package redisstore implements the relay's Publisher and Subscriber on Redis
// Streams, with the layout of SPEC §4:
//
//	<prefix>:events:{<tenant>}   one stream per tenant (the braces are a Cluster hash tag)
//	<prefix>:tenants             set of tenants that have a stream
//	<prefix>:groups              hash group → registration time (Redis server ms)
//	<prefix>:dlq:{<tenant>}      the tenant's dead letters
//	<prefix>:retry:{<tenant>}    hash "<group> <entry id>" → retry state of a failed push
//	<prefix>:idem:{<tenant>}:<k> idempotency record of a publish, 24 h
//	<prefix>:replay:<id>         progress of a replay job (hash)
//	<prefix>:replays             replay jobs by start time (sorted set)
//	<prefix>:notify              signals "these tenants' streams got entries" (stream,
//	                             MAXLEN ~ 10000): idle readers block on it instead of
//	                             on every tenant stream
//
// A Store is safe for concurrent use. Publish needs Run to be running: Run owns
// the writer goroutines that send the publishes queued while every pipeline
// is busy (see Publish) and, for a store with a consumer group, the tenant
// discovery loop.
//
// The same layout runs on a single Redis (or a primary with replicas) and on
// a Redis Cluster (Options.Cluster). On a cluster every command that names
// several keys names keys of one slot: a tenant's keys share the slot of
// their {<tenant>} tag (the scripts), and reads of many tenant streams are
// split into one XREADGROUP per slot (readBySlot). The registries, the
// notify stream, the replay records and the stats counters are single keys,
// each on the shard that owns its slot, reached through cluster pipelines;
// no MULTI/EXEC is used anywhere.
package redisstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
)

// Options configure a Store.
type Options struct {
	URL          string // redis:// or rediss://
	PoolSize     int    // 0 = go-redis default (10 per CPU)
	KeyPrefix    string // default "hyvve"
	Retention    time.Duration
	DLQRetention time.Duration

	// CAFile, CertFile and KeyFile configure TLS to Redis and need a
	// rediss:// URL. CAFile is a PEM bundle of the CAs that verify the
	// server's certificate ("" = the system's roots); CertFile and KeyFile
	// are a client certificate and its private key, both or neither. New
	// reads them once: a renewed file takes effect at the next start.
	CAFile, CertFile, KeyFile string

	// Group and Consumer name this sidecar's consumer; an empty Group makes a
	// publish-only store whose Fetch always fails.
	Group    string
	Consumer string
	// Retry is the retry schedule: a pending entry is reclaimed for its next
	// attempt once idle past the step for its delivery count. Required with
	// a Group.
	Retry retry.Policy

	// DiscoveryInterval is how often the tenant registry is checked for new
	// streams (default 200 ms); Block is the longest a Fetch waits for new
	// entries (default 250 ms). Together they bound how long a new tenant's
	// first event waits.
	DiscoveryInterval time.Duration
	Block             time.Duration
	// DirectRead is the most tenant streams read the simple way: one
	// XREADGROUP over all of them that blocks until an entry comes (one
	// round trip per read). Above it, a reader waits on the change signals
	// of <prefix>:notify and reads only the streams they name. 0 means 100;
	// -1 always uses the signals.
	DirectRead int

	// ConsumerExpiry is how long a consumer of the group may stay silent with
	// nothing pending before it is deleted from the group (default 24 h). A
	// restarted sidecar is a new consumer; without this, every restart would
	// leave one consumer behind on every tenant stream.
	ConsumerExpiry time.Duration

	// Cluster makes URL the seed of a Redis Cluster: its host and its addr=
	// query parameters (redis.ParseClusterURL). Readers then always use the
	// change signals (DirectRead is ignored: a blocking read cannot span
	// shards).
	Cluster bool
	// WaitReplicas, when above 0, makes a publish succeed only once WAIT
	// reports that many replicas have its writes, within WaitTimeout
	// (default 1 s); fewer fail the publish with relay.ErrUnavailable
	// although the primary has the event. Dead-lettering, DLQ retries and
	// replays do not wait.
	WaitReplicas int
	WaitTimeout  time.Duration

	Logger *slog.Logger
}

// IdempotencyWindow is how long an Idempotency-Key is remembered.
const IdempotencyWindow = 24 * time.Hour

const (
	writers       = 4    // pipelines in flight at once
	maxBatch      = 256  // commands coalesced into one pipeline
	queueSize     = 1024 // publish jobs waiting for a writer
	tenantTTL     = time.Minute
	tenantLRUSize = 100_000
)

// Store is a Redis Streams broker.
type Store struct {
	opts Options
	// rdb is a *redis.Client, or the *redis.ClusterClient cluster.
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient // nil on a single Redis
	keys    keys
	log     *slog.Logger

	// registered remembers tenants this process added to the registry
	// recently, so a publish sends SADD at most once a minute per tenant.
	registered *expirable.LRU[string, struct{}]

	jobs chan *job
	// slots holds the state of each pipeline that may be in flight (writers
	// of them); taking one is the right to send a pipeline. A publisher
	// that finds one free sends its own pipeline (see Publish).
	slots chan *writer

	// ttlMinute is the minute (Unix time / 60) whose published counter this
	// process has seen get its TTL (see CountPublished).
	ttlMinute atomic.Int64

	// closeOnce guards shutting down publish intake; closed is closed when
	// Run ends so waiting publishers fail fast instead of hanging.
	closeOnce sync.Once
	closed    chan struct{}

	consumer *consumer // nil for a publish-only store
}

type keys struct{ prefix string }

func (k keys) stream(tenant string) string { return k.prefix + ":events:{" + tenant + "}" }
func (k keys) dlq(tenant string) string    { return k.prefix + ":dlq:{" + tenant + "}" }
func (k keys) retry(tenant string) string  { return k.prefix + ":retry:{" + tenant + "}" }
func (k keys) tenants() string             { return k.prefix + ":tenants" }
func (k keys) groups() string              { return k.prefix + ":groups" }
func (k keys) idem(tenant, key string) string {
	return k.prefix + ":idem:{" + tenant + "}:" + key
}

// tenantOf returns the tenant of a stream key made by keys.stream.
func (k keys) tenantOf(stream string) string {
	i := strings.IndexByte(stream, '{')
	j := strings.LastIndexByte(stream, '}')
	if i < 0 || j < i {
		return ""
	}
	return stream[i+1 : j]
}

// Timeouts of every command. Bounded retry: a Redis that is down turns into
// an error within a few seconds, never a hang.
const (
	dialTimeout = 2 * time.Second
	ioTimeout   = 3 * time.Second // read and write of one command or pipeline
	poolTimeout = 3 * time.Second
	maxRetries  = 2
	// clusterReload is how old the cached slot map of a cluster may get
	// before it is read again (CLUSTER SLOTS). A failed command reloads it
	// sooner; a failover moves slots without any MOVED to a dead master's
	// clients, so the age bound is what finds a promoted replica.
	clusterReload = 5 * time.Second
	// defaultWaitTimeout is WaitTimeout's default.
	defaultWaitTimeout = time.Second
)

// New parses the URL, reads the TLS files and builds the client. It does not
// connect: a Redis that is down at start makes the sidecar not ready, not
// fail. Its errors name the flag at fault and never hold the password.
func New(o Options) (*Store, error) {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "hyvve"
	}
	if o.DiscoveryInterval <= 0 {
		o.DiscoveryInterval = 200 * time.Millisecond
	}
	if o.DirectRead == 0 {
		o.DirectRead = 100
	}
	if o.Cluster {
		o.DirectRead = -1
	}
	if o.Block <= 0 {
		o.Block = 250 * time.Millisecond
	}
	if o.ConsumerExpiry <= 0 {
		o.ConsumerExpiry = 24 * time.Hour
	}
	if o.WaitReplicas < 0 {
		return nil, fmt.Errorf("--redis-wait-replicas: must be 0 or more, got %d", o.WaitReplicas)
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = defaultWaitTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		opts:       o,
		keys:       keys{prefix: o.KeyPrefix},
		log:        o.Logger,
		registered: expirable.NewLRU[string, struct{}](tenantLRUSize, nil, tenantTTL),
		jobs:       make(chan *job, queueSize),
		slots:      make(chan *writer, writers),
		closed:     make(chan struct{}),
	}
	if o.Group != "" && len(o.Retry.Schedule) == 0 {
		return nil, errors.New("redisstore: a consumer group needs a retry schedule")
	}
	var err error
	if o.Cluster {
		s.cluster, err = newClusterClient(o)
		s.rdb = s.cluster
	} else {
		s.rdb, err = newClient(o)
	}
	if err != nil {
		return nil, err
	}
	if o.Group != "" {
		s.consumer = newConsumer(s)
	}
	for range writers {
		s.slots <- &writer{streams: map[string]any{}}
	}
	return s, nil
}

// readTimeout is the read timeout of every command: WAIT, sent at the end of
// a publish pipeline, may take WaitTimeout on top.
func readTimeout(o Options) time.Duration {
	if o.WaitReplicas > 0 {
		return ioTimeout + o.WaitTimeout
	}
	return ioTimeout
}

// newClient builds the client of a single Redis.
func newClient(o Options) (*redis.Client, error) {
	ropts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, urlError(err)
	}
	if err := configureTLS(ropts.TLSConfig, o); err != nil {
		return nil, err
	}
	c := connSettings(o)
	ropts.PoolSize = cmp.Or(c.PoolSize, ropts.PoolSize)
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout, ropts.PoolTimeout = c.DialTimeout, c.ReadTimeout, c.WriteTimeout, c.PoolTimeout
	ropts.MaxRetries, ropts.MinRetryBackoff, ropts.MaxRetryBackoff = c.MaxRetries, c.MinRetryBackoff, c.MaxRetryBackoff
	ropts.DialerRetries, ropts.DialerRetryTimeout = c.DialerRetries, c.DialerRetryTimeout
	ropts.ContextTimeoutEnabled, ropts.DisableIdentity = c.ContextTimeoutEnabled, c.DisableIdentity
	return redis.NewClient(ropts), nil
}

// connSettings are the pool, timeout and retry settings of every
// connection, to a single Redis or to each node of a cluster (PoolSize 0:
// go-redis's default).
func connSettings(o Options) redis.Options {
	return redis.Options{
		PoolSize:        o.PoolSize,
		DialTimeout:     dialTimeout,
		ReadTimeout:     readTimeout(o),
		WriteTimeout:    ioTimeout,
		PoolTimeout:     poolTimeout,
		MaxRetries:      maxRetries,
		MinRetryBackoff: 50 * time.Millisecond,
		MaxRetryBackoff: 500 * time.Millisecond,
		// Two dial attempts, not go-redis's five: commands are retried on
		// top (MaxRetries), and a node that refuses connections, or a
		// certificate it cannot verify, is then reported within the
		// readiness check's time with its own error (five attempts on each
		// of a cluster's seeds outlasted it: "context deadline exceeded").
		DialerRetries:         2,
		DialerRetryTimeout:    100 * time.Millisecond,
		ContextTimeoutEnabled: true,
		// No CLIENT SETINFO on each new connection: the sidecar does not
		// need it, Redis before 7.2 does not know it, and the ACL user of
		// docs/production.md, which cannot name it on those versions,
		// would have it refused (and logged in ACL LOG) on every connection.
		DisableIdentity: true,
	}
}

// newClusterClient builds the client of a Redis Cluster from the seeds of
// the URL, with the same TLS, pool and timeouts as newClient (per node).
func newClusterClient(o Options) (*redis.ClusterClient, error) {
	copts, err := redis.ParseClusterURL(o.URL)
	if err != nil {
		return nil, urlError(err)
	}
	if err := configureTLS(copts.TLSConfig, o); err != nil {
		return nil, err
	}
	if copts.TLSConfig != nil {
		// Each node's certificate is verified for the address the cluster
		// announces for it (crypto/tls takes the name from the address
		// dialled), not for the seed's host name.
		copts.TLSConfig.ServerName = ""
	}
	c := connSettings(o)
	copts.PoolSize = cmp.Or(c.PoolSize, copts.PoolSize)
	copts.DialTimeout, copts.ReadTimeout, copts.WriteTimeout, copts.PoolTimeout = c.DialTimeout, c.ReadTimeout, c.WriteTimeout, c.PoolTimeout
	copts.MaxRetries, copts.MinRetryBackoff, copts.MaxRetryBackoff = c.MaxRetries, c.MinRetryBackoff, c.MaxRetryBackoff
	copts.DialerRetries, copts.DialerRetryTimeout = c.DialerRetries, c.DialerRetryTimeout
	copts.ContextTimeoutEnabled, copts.DisableIdentity = c.ContextTimeoutEnabled, c.DisableIdentity
	copts.ClusterStateReloadInterval = clusterReload
	// Route by key only. With routing policies the client fetches COMMAND
	// from the nodes (again on every command while that fails, as it does
	// for the ACL user of docs/production.md) and sends keyless commands
	// to shards of its choosing.
	copts.DisableRoutingPolicies = true
	return redis.NewClusterClient(copts), nil
}

// urlError is a URL parse error without the URL: url.Error carries the whole
// URL, password included, so only the cause is kept.
func urlError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("--redis-url: %v", err)
}

// configureTLS adds the CA and the client certificate of o to conf, the TLS
// configuration ParseURL made for a rediss:// URL (nil for redis://): that
// one already verifies the server's certificate for the URL's host
// (ServerName), asks for TLS 1.2 or later, and honours the URL's
// skip_verify.
func configureTLS(conf *tls.Config, o Options) error {
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" {
		return nil
	}
	if conf == nil {
		return errors.New("--redis-ca, --redis-cert, --redis-key: TLS to Redis needs a rediss:// --redis-url")
	}
	conf.MinVersion = max(conf.MinVersion, tls.VersionTLS12)
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return fmt.Errorf("--redis-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--redis-ca: %s holds no PEM certificate", o.CAFile)
		}
		conf.RootCAs = roots
	}
	if o.CertFile != "" || o.KeyFile != "" {
		if o.CertFile == "" || o.KeyFile == "" {
			return errors.New("--redis-cert, --redis-key: a client certificate needs both")
		}
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return fmt.Errorf("--redis-cert %s, --redis-key %s: %w", o.CertFile, o.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// Run serves publishes and, with a consumer group, discovers tenant streams,
// until ctx ends. Publishes still queued then fail with ErrUnavailable.
func (s *Store) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.writeLoop(ctx)
		}()
	}
	if s.consumer != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.consumer.discoveryLoop(ctx)
		}()
	}
	<-ctx.Done()
	s.closeOnce.Do(func() { close(s.closed) })
	wg.Wait()
	// Fail whatever is still queued: its publisher is told, not left hanging.
	for {
		select {
		case j := <-s.jobs:
			j.fail(fmt.Errorf("%w: sidecar shutting down", relay.ErrUnavailable))
		default:
			return nil
		}
	}
}

// Close releases the Redis connections. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	err := s.rdb.Close()
	if errors.Is(err, redis.ErrClosed) {
		return nil
	}
	return err
}

// Ping reports whether Redis answers (on a cluster: every master that
// serves slots) and, for a store with a consumer group, whether the group is
// registered yet (the sidecar is not ready before).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.ping(ctx); err != nil {
		return err
	}
	if c := s.consumer; c != nil {
		// Ready means the group exists: an event the app publishes once
		// its sidecar is ready must reach the app's own group.
		c.mu.Lock()
		registered := c.start != ""
		c.mu.Unlock()
		if !registered {
			return fmt.Errorf("%w: consumer group %s is not registered yet", relay.ErrUnavailable, s.opts.Group)
		}
	}
	return nil
}

func (s *Store) ping(ctx context.Context) error {
	if s.cluster == nil {
		return classify(s.rdb.Ping(ctx).Err())
	}
	// ForEachMaster reads the slot map again first (CLUSTER SLOTS), so a
	// replica promoted by a failover is the master pinged.
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if err := m.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("cluster node %s: %w", m.Options().Addr, err)
		}
		return nil
	})
	return classify(err)
}

// CheckCluster reports a Redis that contradicts Options.Cluster: with
// Cluster, a server without cluster support, as one line naming
// --redis-cluster. It returns nil when the server agrees, when it cannot be
// asked now (a Redis down at start makes the sidecar not ready, not fail),
// and without Cluster (a cluster node met without it answers MOVED, which
// classify explains).
func (s *Store) CheckCluster(ctx context.Context) error {
	if s.cluster == nil {
		return nil
	}
	if err := s.ping(ctx); errors.Is(err, errNotCluster) {
		return err
	}
	return nil
}

// errNotCluster is what a Redis without cluster support answers to the
// cluster client (classify wraps it).
var errNotCluster = errors.New("--redis-cluster: --redis-url names a Redis without cluster support " +
	"(it answered: ERR This instance has cluster support disabled); remove --redis-cluster, or point --redis-url at a node of the cluster")

// classify turns a go-redis error into the relay's vocabulary: errors that mean
// "Redis cannot serve now" wrap relay.ErrUnavailable; other replies are plain
// errors. go-redis types do not leave this package.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) {
		msg := rerr.Error()
		// During a failover or a resharding a cluster answers CLUSTERDOWN,
		// TRYAGAIN, or MOVED/ASK that the client could not follow in time.
		for _, p := range []string{"LOADING", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "OOM", "BUSY", "NOREPLICAS"} {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("%w: redis: %s", relay.ErrUnavailable, msg)
			}
		}
		if strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") {
			return fmt.Errorf("%w: redis: %s (the key's slot is served by another cluster node: "+
				"a failover or resharding in progress, or a Redis Cluster without --redis-cluster)", relay.ErrUnavailable, msg)
		}
		if strings.Contains(msg, "cluster support disabled") {
			return errNotCluster
		}
		return fmt.Errorf("redis: %s", msg)
	}
	return fmt.Errorf("%w: %v", relay.ErrUnavailable, err)
}

func minID(now time.Time, retention time.Duration) string {
	return strconv.FormatInt(now.Add(-retention).UnixMilli(), 10)
}
