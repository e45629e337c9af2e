// Package jsstore implements the relay's broker interfaces on NATS JetStream:
// either a JetStream server embedded in the sidecar process (file storage in
// --data-dir; the default when no --redis-url is given) or an external NATS
// server (--nats-url). Both use the same code; the embedded server is reached
// through an in-process connection.
//
// Layout (P is --key-prefix, default "hyvve"):
//
//	stream   P_events    subjects P.events.<tenant>   the tenants' events; MaxAge = --retention
//	stream   P_dlq       subjects P.dlq.<tenant>      dead letters; MaxAge = --dlq-retention
//	consumer on P_events, one durable per consumer group (name from the group, see durableName),
//	         filter P.events.>, created with DeliverPolicy new: it starts when the group is
//	         first registered, and covers every tenant, whenever its first event comes
//	kv       P_replays   replay job id → job record (JSON)
//	kv       P_stats     published events per minute (cluster-wide), for the admin stats
//
// A message holds the event the way a Redis stream entry does: one header per
// event attribute (the names of event.AppendValues: id, type, …, traceparent)
// and the data object as the body, so another NATS client can read the stream
// without the sidecar.
//
// Delivery state lives in JetStream, not in the sidecar: the attempt is the
// consumer's delivery count; a failed push is negatively acknowledged with the
// retry schedule's delay (NakWithDelay); an entry held by a sidecar that died is
// redelivered once its ack wait (the schedule's first step) has passed.
package jsstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
)

// Options configure a Store. Exactly one of URL and DataDir is set.
type Options struct {
	// URL is an external NATS server with JetStream enabled (nats:// or
	// tls://, credentials in the URL). Empty = run an embedded server.
	URL string
	// DataDir is where the embedded server keeps its file storage.
	DataDir string
	// Listen, for the embedded server, is a host:port where it also accepts
	// NATS clients (other sidecars with --nats-url, the nats CLI). Empty = no
	// network port: only this process can reach it.
	Listen string

	KeyPrefix string // default "hyvve"
	// MaxEventBytes is the largest event the local API accepts
	// (--max-event-bytes): the embedded server's largest message is set
	// above it, with room for the headers of a dead letter.
	MaxEventBytes int
	Retention     time.Duration
	DLQRetention  time.Duration

	// Group and Consumer name this sidecar's consumer; an empty Group makes a
	// publish-only store whose Fetch always fails.
	Group    string
	Consumer string
	// Retry is the retry schedule. Its first step is also the ack wait: an
	// entry held that long without an answer (its sidecar died) is delivered
	// again. Required with a Group.
	Retry retry.Policy

	Logger *slog.Logger
}

// IdempotencyWindow is how long an Idempotency-Key is remembered (the events
// stream's duplicate window), unless --retention is shorter: JetStream keeps
// no duplicate window longer than the stream keeps messages.
const IdempotencyWindow = 24 * time.Hour

// setupTimeout bounds one attempt to create the streams, buckets and consumer.
const setupTimeout = 5 * time.Second

// Store is a JetStream broker. It is safe for concurrent use. Run must be
// running for the store to become ready: it creates the streams and the
// consumer (retrying while the server cannot be reached).
type Store struct {
	opts  Options
	log   *slog.Logger
	names names

	srv    *server.Server // the embedded server; nil with an external URL
	unlock func()         // releases the lock on the embedded server's DataDir
	nc     *nats.Conn
	js     jetstream.JetStream

	// ready is closed once setup succeeded; events, dlq and cons are set
	// before that and never change afterwards.
	ready chan struct{}
	// repair asks Run to create what an error said is missing (see lost).
	repair chan struct{}
	events jetstream.Stream
	dlq    jetstream.Stream
	cons   jetstream.Consumer // nil for a publish-only store
	// replays and stats are the KV buckets (kv.go), set like events.
	replays jetstream.KeyValue
	stats   jetstream.KeyValue

	// published counts events written since the stats were last flushed
	// to the stats bucket (stats.go).
	published atomic.Int64

	closeOnce sync.Once
}

// names are the JetStream names derived from the key prefix.
type names struct{ prefix string }

func (n names) eventsStream() string { return n.prefix + "_events" }
func (n names) dlqStream() string    { return n.prefix + "_dlq" }
func (n names) replaysBucket() string {
	return n.prefix + "_replays"
}
func (n names) statsBucket() string             { return n.prefix + "_stats" }
func (n names) subject(tenant string) string    { return n.prefix + ".events." + tenant }
func (n names) dlqSubject(tenant string) string { return n.prefix + ".dlq." + tenant }
func (n names) allEvents() string               { return n.prefix + ".events.>" }
func (n names) allDLQ() string                  { return n.prefix + ".dlq.>" }

// tenantOf returns the tenant of an events or dead-letter subject.
func (n names) tenantOf(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// durableName is the durable consumer of a group. Group names may hold '.',
// which consumer names may not: '_' is written "__" and '.' "_d", so distinct
// groups keep distinct names. The group itself is kept in the consumer's
// metadata (groupMetadataKey).
func durableName(group string) string {
	var b strings.Builder
	b.WriteString("g-")
	for i := 0; i < len(group); i++ {
		switch c := group[i]; c {
		case '_':
			b.WriteString("__")
		case '.':
			b.WriteString("_d")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// groupMetadataKey is the consumer metadata key holding the group name.
const groupMetadataKey = "hyvve.group"

// New starts the embedded server (when no URL is given) and connects to the
// server. It creates nothing in JetStream yet (Run does), so an external
// server that is down makes the sidecar not ready, not fail.
func New(o Options) (*Store, error) {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "hyvve"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Group != "" && len(o.Retry.Schedule) == 0 {
		return nil, errors.New("jsstore: a consumer group needs a retry schedule")
	}
	s := &Store{opts: o, log: o.Logger, names: names{o.KeyPrefix}, ready: make(chan struct{}), repair: make(chan struct{}, 1)}
	copts := []nats.Option{
		nats.Name("hyvve-sidecar " + o.Consumer),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Nothing is buffered while disconnected: a publish the local API
		// answered 503 must not be sent later, when the connection is back.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("lost the connection to NATS; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info("reconnected to NATS") }),
	}
	url := o.URL
	if url == "" {
		unlock, err := lockDataDir(o.DataDir)
		if err != nil {
			return nil, err
		}
		srv, err := startEmbedded(o)
		if err != nil {
			unlock()
			return nil, err
		}
		s.srv, s.unlock = srv, unlock
		copts = append(copts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, copts...)
	if err != nil {
		s.shutdownServer()
		return nil, fmt.Errorf("--nats-url: %w", err)
	}
	s.nc = nc
	s.js, err = jetstream.New(nc)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startEmbedded starts an in-process JetStream server storing in o.DataDir.
func startEmbedded(o Options) (*server.Server, error) {
	sopts := &server.Options{
		ServerName: "hyvve-sidecar",
		JetStream:  true,
		StoreDir:   o.DataDir,
		DontListen: o.Listen == "",
		NoSigs:     true,
		// Nobody but this process may reach a server without a listener;
		// with --embedded-listen, clients are whatever can reach that port.
		MaxPayload: maxPayload(o.MaxEventBytes),
		// A client's outbound buffer must hold a few of the largest messages.
		MaxPending: max(64<<20, 4*int64(maxPayload(o.MaxEventBytes))),
	}
	if o.Listen != "" {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("--embedded-listen: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("--embedded-listen: port %q is not a number", port)
		}
		sopts.Host, sopts.Port = host, p
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded store in --data-dir %s: %w", o.DataDir, err)
	}
	srv.SetLoggerV2(serverLogger{o.Logger.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded store in --data-dir %s: the JetStream server did not start within 10s (is the port of --embedded-listen taken?)", o.DataDir)
	}
	return srv, nil
}

// headerRoom is what a message needs beyond the event's data: its
// attribute headers and, for a dead letter, the failure headers (lastError
// up to 2 KiB).
const headerRoom = 64 << 10

// maxPayload is the embedded server's largest message for events of up to
// maxEventBytes: never below NATS's default of 1 MB.
func maxPayload(maxEventBytes int) int32 {
	const natsDefault = 1 << 20
	return int32(max(natsDefault, maxEventBytes+headerRoom))
}

// serverLogger sends the embedded server's log to slog: notices at debug
// level (they are chatty), warnings and errors as such.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

// Embedded reports whether the store runs its own server.
func (s *Store) Embedded() bool { return s.srv != nil }

// Run creates the streams, buckets and consumer (again and again until it
// succeeds, while the server cannot be reached), then serves the store's
// background work until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := s.setup(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("JetStream setup failed; trying again", "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	close(s.ready)
	bg := make(chan error, 1)
	go func() { bg <- s.runBackground(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return <-bg
		case <-s.repair:
		}
		// A stream or the consumer is gone (deleted by hand, or a server
		// that lost its files): create them again. The handles work by
		// name, so they stay valid. At most once a second.
		if _, err := s.create(ctx); err != nil {
			s.log.Warn("a JetStream stream or consumer is missing and could not be created again; trying again", "error", err)
		} else {
			s.log.Warn("a JetStream stream or consumer was missing: created it again; events published while it was " +
				"missing may not reach the group")
		}
		select {
		case <-ctx.Done():
			return <-bg
		case <-time.After(time.Second):
		}
	}
}

// lost asks Run to create the streams and the consumer again when err says
// one of them does not exist. It never blocks.
func (s *Store) lost(err error) {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) {
		select {
		case s.repair <- struct{}{}:
		default:
		}
	}
}

// handles are what create made; the JetStream client addresses streams,
// consumers and buckets by name, so a handle stays valid when what it names
// is created again.
type handles struct {
	events, dlq    jetstream.Stream
	cons           jetstream.Consumer // nil without a group
	replays, stats jetstream.KeyValue
}

// setup creates or updates the streams, the buckets and this sidecar's
// consumer, and keeps their handles.
func (s *Store) setup(ctx context.Context) error {
	h, err := s.create(ctx)
	if err != nil {
		return err
	}
	s.events, s.dlq, s.cons, s.replays, s.stats = h.events, h.dlq, h.cons, h.replays, h.stats
	return nil
}

// create creates or updates the streams, the buckets and this sidecar's
// consumer.
func (s *Store) create(ctx context.Context) (handles, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	var h handles
	if limit, need := s.nc.MaxPayload(), int64(s.opts.MaxEventBytes+headerRoom); s.srv == nil && limit > 0 && limit < need {
		s.log.Warn("the NATS server's max_payload is smaller than --max-event-bytes plus room for headers: "+
			"larger events will fail to publish; raise max_payload or lower --max-event-bytes",
			"max_payload", limit, "max_event_bytes", s.opts.MaxEventBytes)
	}
	var err error
	h.events, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.names.eventsStream(),
		Description: "HYVVE events, one subject per tenant",
		Subjects:    []string{s.names.allEvents()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      s.opts.Retention,
		Duplicates:  min(IdempotencyWindow, s.opts.Retention),
	})
	if err != nil {
		return h, fmt.Errorf("stream %s: %w", s.names.eventsStream(), err)
	}
	h.dlq, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.names.dlqStream(),
		Description: "HYVVE dead letters, one subject per tenant",
		Subjects:    []string{s.names.allDLQ()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      s.opts.DLQRetention,
		Duplicates:  min(IdempotencyWindow, s.opts.DLQRetention),
	})
	if err != nil {
		return h, fmt.Errorf("stream %s: %w", s.names.dlqStream(), err)
	}
	if err := s.setupBuckets(ctx, &h); err != nil {
		return h, err
	}
	if s.opts.Group != "" {
		h.cons, err = s.js.CreateOrUpdateConsumer(ctx, s.names.eventsStream(), jetstream.ConsumerConfig{
			Durable:       durableName(s.opts.Group),
			Description:   "HYVVE consumer group " + s.opts.Group,
			DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       s.opts.Retry.Shortest(),
			MaxDeliver:    -1,
			MaxAckPending: -1,
			FilterSubject: s.names.allEvents(),
			Metadata:      map[string]string{groupMetadataKey: s.opts.Group},
		})
		if err != nil {
			return h, fmt.Errorf("consumer group %s: %w", s.opts.Group, err)
		}
	}
	return h, nil
}

// waitReady blocks until setup succeeded; relay.ErrUnavailable when ctx
// ends first.
func (s *Store) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: JetStream is not set up yet (%v)", relay.ErrUnavailable, s.nc.Status())
	}
}

// Ping reports whether the server answers and the streams exist.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.ready:
	default:
		return fmt.Errorf("%w: JetStream is not set up yet (connection %v)", relay.ErrUnavailable, s.nc.Status())
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("%w: not connected to NATS (%v)", relay.ErrUnavailable, s.nc.Status())
	}
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", relay.ErrUnavailable, err)
	}
	return nil
}

// Close flushes what is buffered (acks), closes the connection and stops the
// embedded server.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.nc != nil {
			// Flush waits for the server's answer: only when connected, and
			// not long (Flush alone waits 10 s for a server that is away).
			if s.nc.IsConnected() {
				_ = s.nc.FlushTimeout(2 * time.Second)
			}
			s.nc.Close()
		}
		s.shutdownServer()
	})
	return nil
}

func (s *Store) shutdownServer() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.unlock()
	}
}

// classify maps a NATS error to relay.ErrUnavailable when the server could
// not be reached or did not answer in time; other errors are returned as is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", relay.ErrUnavailable, err)
	}
	return err
}
