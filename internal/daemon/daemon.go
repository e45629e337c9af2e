// Package daemon wires one sidecar process together: the broker store, the
// local API, the replay jobs, and (when the sidecar has an app) the
// dispatcher that pushes events to it. It owns their lifecycle and the
// shutdown order of SPEC §9.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hyvve/sidecar/internal/appclient"
	"github.com/hyvve/sidecar/internal/config"
	"github.com/hyvve/sidecar/internal/jsstore"
	"github.com/hyvve/sidecar/internal/localapi"
	"github.com/hyvve/sidecar/internal/metrics"
	"github.com/hyvve/sidecar/internal/redisstore"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/schema"
)

// Daemon is one running sidecar. Create it with New, run it with Run.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	store   broker
	stats   localapi.Stats
	replays replayer
	rates   *metrics.Rates
	api     *localapi.Server
	app     *appclient.Client // nil for a publish-only sidecar
	disp    *relay.Dispatcher // nil for a publish-only sidecar
	tracer  trace.Tracer      // nil: tracing off
}

// broker is what the sidecar needs of a store: the relay's interfaces, the
// admin API's dead letters, and a lifecycle. redisstore and jsstore
// implement it.
type broker interface {
	relay.Publisher
	relay.Inbox
	localapi.DeadLetters
	// Run serves the store's background work until ctx ends.
	Run(ctx context.Context) error
	Close() error
}

// replayer runs the replay jobs of one store.
type replayer interface {
	localapi.Replays
	Run(ctx context.Context) error
}

// Option changes how New builds a Daemon.
type Option func(*Daemon)

// WithTracer makes the sidecar trace (SPEC §8): a PRODUCER span per
// published event and a CONSUMER span per delivery attempt. The caller owns
// the tracer's provider and shuts it down (flushing spans) after Run
// returns. A nil tracer keeps tracing off.
func WithTracer(t trace.Tracer) Option { return func(d *Daemon) { d.tracer = t } }

// New builds every part and binds the listeners. A broker or app that is
// down makes the sidecar not ready, not fail: the only connection New makes
// is, with --redis-cluster, one bounded check that the seeds are a cluster
// (a Redis that answers without cluster support fails New).
func New(cfg *config.Config, version string, log *slog.Logger, opts ...Option) (*Daemon, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, log: log, metrics: metrics.New()}
	d.rates = d.metrics.NewRates()
	for _, o := range opts {
		o(d)
	}

	// instance names this process: its consumer in the group, and the owner
	// of the replay jobs it runs.
	instance := consumerName()
	consumer := ""
	group := ""
	if cfg.AppURL != "" {
		group = cfg.Group
		consumer = instance
	}
	policy, err := retry.NewPolicy(cfg.RetrySchedule)
	if err != nil {
		return nil, fmt.Errorf("--retry-schedule: %w", err)
	}
	if err := d.openStore(instance, group, consumer, policy); err != nil {
		return nil, err
	}

	if cfg.AppURL != "" {
		d.app, err = appclient.New(appclient.Options{
			URL:      cfg.AppURL,
			Token:    cfg.AppToken,
			Timeout:  cfg.AppTimeout,
			MaxConns: cfg.AppConcurrency + 2,
		})
		if err != nil {
			d.store.Close()
			return nil, fmt.Errorf("--app-url: %w", err)
		}
		d.disp, err = relay.NewDispatcher(relay.DispatcherConfig{
			Group:        cfg.Group,
			Static:       cfg.Subscriptions,
			Concurrency:  cfg.AppConcurrency,
			Retry:        policy,
			DrainTimeout: cfg.ShutdownTimeout,
			Tracer:       d.tracer,
			CloudEvents:  cfg.PushFormat == "cloudevents",
		}, d.store, d.app, d.metrics, log)
		if err != nil {
			d.app.Close()
			d.store.Close()
			return nil, err
		}
	}

	// The core events' schemas are embedded in the binary and compiled once.
	schemas, err := schema.New()
	if err != nil {
		d.closeClients()
		return nil, fmt.Errorf("core event schemas: %w", err)
	}

	// The admin token is kept apart from cfg: cfg.Redacted is logged, and a
	// generated token must appear in exactly one log line.
	adminToken := cfg.AdminToken
	if adminToken == "" {
		adminToken = newAdminToken()
	}
	d.api, err = localapi.New(localapi.Options{
		Listen:        cfg.Listen,
		Socket:        cfg.Socket,
		APIToken:      cfg.APIToken,
		Tenants:       cfg.Tenants,
		DefaultTenant: cfg.Tenant,
		Source:        cfg.Source,
		MaxEventBytes: cfg.MaxEventBytes,
		Ready:         d.ready,
		AdminToken:    adminToken,
		DeadLetters:   d.store,
		Replays:       d.replays,
		Stats:         d.stats,
		Rates:         d.rates,
		Schemas:       schemas,
		StrictTypes:   cfg.StrictTypes,
		Metrics:       d.metrics,
		Logger:        log,

		// A publish that waits for replicas may take --redis-wait-timeout more.
		PublishTimeout: publishTimeout(cfg),
	}, localapi.TracedPublisher(d.store, d.tracer))
	if err != nil {
		d.closeClients()
		return nil, err
	}
	log.Info("sidecar starting", "version", version, "store", storeKind(cfg), "listen", d.api.Addr(), "socket", cfg.Socket,
		"group", group, "consumer", consumer, "app_url", cfg.AppURL, "config", cfg.Redacted())
	if cfg.AdminToken == "" {
		// Logged once, like Jupyter's token URL; at warn level so that it
		// shows at any --log-level but error, and because a token that
		// changes at every start suits development, not production.
		log.Warn("no --admin-token set: generated one for this run; open the dashboard (and call /v1/admin/) with it",
			"dashboard_url", dashboardURL(d.api.Addr(), adminToken))
	}
	return d, nil
}

// openStore opens the store the configuration names (Redis, an external NATS
// server, or the embedded one) and its replay runner.
func (d *Daemon) openStore(instance, group, consumer string, policy retry.Policy) error {
	cfg := d.cfg
	if cfg.RedisURL != "" {
		rs, err := redisstore.New(redisstore.Options{
			URL:          cfg.RedisURL,
			PoolSize:     cfg.RedisPoolSize,
			CAFile:       cfg.RedisCA,
			CertFile:     cfg.RedisCert,
			KeyFile:      cfg.RedisKey,
			KeyPrefix:    cfg.KeyPrefix,
			Retention:    cfg.Retention,
			DLQRetention: cfg.DLQRetention,
			Group:        group,
			Consumer:     consumer,
			Retry:        policy,
			Cluster:      cfg.RedisCluster,
			WaitReplicas: cfg.RedisWaitReplicas,
			WaitTimeout:  cfg.RedisWaitTimeout,
			Logger:       d.log,
		})
		if err != nil {
			return err
		}
		// --redis-cluster against a Redis without cluster support is a
		// configuration error: stop at start, as for a bad flag. A Redis
		// that does not answer now is not one (the sidecar is not ready
		// until it does).
		ctx, cancel := context.WithTimeout(context.Background(), clusterCheckTimeout)
		err = rs.CheckCluster(ctx)
		cancel()
		if err != nil {
			rs.Close()
			return err
		}
		rp, err := redisstore.NewReplayer(rs, redisstore.ReplayOptions{Owner: instance, Logger: d.log})
		if err != nil {
			rs.Close()
			return err
		}
		d.store, d.stats, d.replays = rs, brokerStats{rs}, rp
		return nil
	}
	js, err := jsstore.New(jsstore.Options{
		URL:           cfg.NATSURL,
		DataDir:       cfg.DataDir,
		Listen:        cfg.EmbeddedListen,
		MaxEventBytes: cfg.MaxEventBytes,
		KeyPrefix:     cfg.KeyPrefix,
		Retention:     cfg.Retention,
		DLQRetention:  cfg.DLQRetention,
		Group:         group,
		Consumer:      consumer,
		Retry:         policy,
		Logger:        d.log,
	})
	if err != nil {
		return err
	}
	rp, err := jsstore.NewReplayer(js, jsstore.ReplayOptions{Owner: instance, Logger: d.log})
	if err != nil {
		js.Close()
		return err
	}
	d.store, d.stats, d.replays = js, js, rp
	return nil
}

// clusterCheckTimeout bounds the check at start that --redis-cluster names a
// cluster.
const clusterCheckTimeout = 3 * time.Second

// defaultPublishTimeout is the local API's bound on a publish; a publish
// that waits for replicas may take --redis-wait-timeout more.
const defaultPublishTimeout = 5 * time.Second

func publishTimeout(cfg *config.Config) time.Duration {
	if cfg.RedisURL != "" && cfg.RedisWaitReplicas > 0 {
		return defaultPublishTimeout + cfg.RedisWaitTimeout
	}
	return defaultPublishTimeout
}

// storeKind names the store for the start log line.
func storeKind(cfg *config.Config) string {
	switch {
	case cfg.RedisURL != "" && cfg.RedisCluster:
		return "redis cluster"
	case cfg.RedisURL != "":
		return "redis"
	case cfg.NATSURL != "":
		return "nats"
	}
	return "embedded (" + cfg.DataDir + ")"
}

// newAdminToken returns 32 random bytes, base64url without padding.
func newAdminToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it aborts the process instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// dashboardURL is the dashboard's URL on the bound address, carrying the
// token; an unspecified host (0.0.0.0, ::) becomes 127.0.0.1.
func dashboardURL(addr, token string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + addr + "/admin/?token=" + url.QueryEscape(token)
}

// brokerStats serves the admin stats from the store, converting its types
// to the local API's.
type brokerStats struct{ s *redisstore.Store }

func (b brokerStats) BrokerStats(ctx context.Context, limit int, cursor string) (localapi.BrokerStats, error) {
	st, err := b.s.Stats(ctx, redisstore.StatsQuery{Limit: limit, Cursor: cursor}, time.Now())
	if err != nil {
		return localapi.BrokerStats{}, err
	}
	out := localapi.BrokerStats{
		Tenants:            make([]localapi.TenantStats, len(st.Tenants)),
		TenantCount:        st.TenantCount,
		NextCursor:         st.NextCursor,
		PublishedPerMinute: make([]localapi.MinuteCount, len(st.PublishedPerMinute)),
	}
	for i, t := range st.Tenants {
		lt := localapi.TenantStats{Tenant: t.Tenant, StreamLength: t.StreamLength, DLQLength: t.DLQLength,
			Groups: make([]localapi.GroupStats, len(t.Groups))}
		for j, g := range t.Groups {
			lt.Groups[j] = localapi.GroupStats{Group: g.Name, Consumers: g.Consumers, Pending: g.Pending,
				Lag: g.Lag, LagEstimated: g.LagEstimated, LastDeliveredID: g.LastDeliveredID}
		}
		out.Tenants[i] = lt
	}
	for i, m := range st.PublishedPerMinute {
		out.PublishedPerMinute[i] = localapi.MinuteCount{Minute: m.Start.UTC(), Count: m.Count}
	}
	return out, nil
}

// consumerName is unique per process: a restarted sidecar is a new consumer,
// and what the old one held is reclaimed from the group's pending list.
func consumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "sidecar"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// ready is /readyz: the broker answers and the subscriptions are loaded.
func (d *Daemon) ready(ctx context.Context) error {
	if err := d.store.Ping(ctx); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if d.disp != nil {
		if err := d.disp.Ready(); err != nil {
			return err
		}
	}
	return nil
}

// Run serves until ctx ends, then shuts down in order: stop reading and
// cancel replay jobs (recorded as failed), finish or hand back pushes in
// flight (within --shutdown-timeout), close the local API, stop the store.
// It returns nil after a clean shutdown.
func (d *Daemon) Run(ctx context.Context) error {
	bg := context.WithoutCancel(ctx)
	storeCtx, stopStore := context.WithCancel(bg)
	apiCtx, stopAPI := context.WithCancel(bg)
	// The dispatcher and the replay jobs stop on a signal or when another
	// part failed.
	dispCtx, stopDisp := context.WithCancel(ctx)
	defer stopStore()
	defer stopAPI()
	defer stopDisp()

	var storeWG, apiWG, dispWG sync.WaitGroup
	errc := make(chan error, 4)
	storeWG.Add(1)
	go func() {
		defer storeWG.Done()
		if err := d.store.Run(storeCtx); err != nil {
			errc <- fmt.Errorf("store: %w", err)
		}
	}()
	apiWG.Add(2)
	go func() {
		defer apiWG.Done()
		if err := d.api.Run(apiCtx); err != nil {
			errc <- err
		}
	}()
	go func() {
		defer apiWG.Done()
		_ = d.rates.Run(apiCtx) // returns nil when apiCtx ends
	}()
	dispWG.Add(1)
	go func() {
		defer dispWG.Done()
		if err := d.replays.Run(dispCtx); err != nil {
			errc <- fmt.Errorf("replays: %w", err)
		}
	}()
	if d.disp != nil {
		dispWG.Add(1)
		go func() {
			defer dispWG.Done()
			if err := d.disp.Run(dispCtx); err != nil {
				errc <- fmt.Errorf("dispatcher: %w", err)
			}
		}()
	}
	d.log.Info("sidecar running", "listen", d.api.Addr())

	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down: reading stopped, draining pushes in flight", "timeout", d.cfg.ShutdownTimeout.String())
	case runErr = <-errc:
		d.log.Error("sidecar failed; shutting down", "error", runErr)
	}
	stopDisp()
	dispWG.Wait()
	stopAPI()
	apiWG.Wait()
	stopStore()
	storeWG.Wait()
	d.closeClients()
	d.log.Info("sidecar stopped")
	return runErr
}

func (d *Daemon) closeClients() {
	if d.app != nil {
		d.app.Close()
	}
	d.store.Close()
}
