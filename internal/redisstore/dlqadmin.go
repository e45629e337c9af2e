package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/subscription"
)

// Bounds of one ListDeadLetters call (the page sizes are relay's).
const (
	// maxDLQScan is the most dead-letter entries one call reads, matching
	// the type filter or not; maxDLQTenants the most tenant DLQs it probes
	// (XLEN, pipelined probeBatch at a time) when listing every tenant.
	maxDLQScan    = 512
	maxDLQTenants = 1000
	probeBatch    = 100
	// filterChunk is the least a filtered scan asks for per round trip.
	filterChunk = 100
)

// ListDeadLetters returns one page of dead letters, newest first. With an
// empty (or "*") q.Tenant it lists every tenant of the registry, one tenant
// after the other in sorted order. q.Type is a subscription pattern matched
// against the event type. A page may hold fewer than q.Limit items, even
// none, while NextCursor is set: one call reads at most a few hundred
// entries and probes at most maxDLQTenants tenants, so a filter that matches
// little never makes it slow. Continue with NextCursor until it is empty.
// Listing every tenant reads the registry (SMEMBERS) on each call.
//
// Malformed tenant, type or cursor give an *event.Error naming the field
// ("tenantId", "type", "cursor"). Safe for concurrent use.
func (s *Store) ListDeadLetters(ctx context.Context, q relay.DLQQuery) (relay.DLQPage, error) {
	if err := q.Normalize(); err != nil {
		return relay.DLQPage{}, err
	}
	cur, err := parseCursor(q.Cursor)
	if err != nil {
		return relay.DLQPage{}, err
	}
	if cur != nil && q.Tenant != "" && cur.tenant != q.Tenant {
		return relay.DLQPage{}, relay.BadCursor("it belongs to a listing of another tenant")
	}
	l := &lister{s: s, pattern: q.Type, limit: q.Limit}

	if q.Tenant != "" {
		end := "+"
		if cur != nil {
			end = cur.end
		}
		next, err := l.scan(ctx, q.Tenant, end)
		if err != nil {
			return relay.DLQPage{}, err
		}
		return l.page(q.Tenant, next), nil
	}

	members, err := s.rdb.SMembers(ctx, s.keys.tenants()).Result()
	if err != nil {
		return relay.DLQPage{}, fmt.Errorf("smembers %s: %w", s.keys.tenants(), classify(err))
	}
	// Anyone with write access can SADD to the registry: only a valid tenant
	// id may become part of a key name.
	tenants := slices.DeleteFunc(members, func(t string) bool {
		return event.ValidateTenantID(t) != nil || (cur != nil && t < cur.tenant)
	})
	slices.Sort(tenants)
	for i := 0; i < len(tenants); i += probeBatch {
		if i >= maxDLQTenants {
			return l.page(tenants[i], "+"), nil
		}
		batch := tenants[i:min(i+probeBatch, len(tenants))]
		lens, err := s.dlqLens(ctx, batch)
		if err != nil {
			return relay.DLQPage{}, err
		}
		for j, t := range batch {
			if lens[j] == 0 {
				continue
			}
			end := "+"
			if cur != nil && t == cur.tenant {
				end = cur.end
			}
			next, err := l.scan(ctx, t, end)
			if err != nil {
				return relay.DLQPage{}, err
			}
			if next != "" {
				return l.page(t, next), nil
			}
			if l.stopped() {
				// t is exhausted: the next page starts with the tenant after it.
				if k := i + j + 1; k < len(tenants) {
					return l.page(tenants[k], "+"), nil
				}
				return l.page("", ""), nil
			}
		}
	}
	return l.page("", ""), nil
}

// dlqLens returns XLEN of each tenant's dead-letter stream, in one round trip.
func (s *Store) dlqLens(ctx context.Context, tenants []string) ([]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(tenants))
	for i, t := range tenants {
		cmds[i] = pipe.XLen(ctx, s.keys.dlq(t))
	}
	_ = execPipe(ctx, pipe) // per-command errors are read below
	out := make([]int64, len(tenants))
	for i, c := range cmds {
		n, err := c.Result()
		if err != nil {
			return nil, fmt.Errorf("xlen %s: %w", s.keys.dlq(tenants[i]), classify(err))
		}
		out[i] = n
	}
	return out, nil
}

// lister accumulates one page of ListDeadLetters.
type lister struct {
	s       *Store
	pattern string // "" = every type
	limit   int
	items   []relay.DeadLetter
	scanned int // entries read so far, bounded by maxDLQScan
}

func (l *lister) stopped() bool { return len(l.items) == l.limit || l.scanned >= maxDLQScan }

func (l *lister) page(tenant, next string) relay.DLQPage {
	p := relay.DLQPage{Items: l.items}
	if p.Items == nil {
		p.Items = []relay.DeadLetter{}
	}
	if next != "" {
		p.NextCursor = encodeCursor(tenant, next)
	}
	return p
}

// scan reads the tenant's dead letters older than end ("+" = from the newest;
// else an exclusive entry id), newest first, and keeps those that match, until
// the page is full, the scan budget is spent or the stream is exhausted. It
// returns where the next page continues in this tenant ("" = exhausted).
//
// Each round trip asks for one entry more than the page still needs, so an
// unfiltered page that ends exactly at the oldest entry says so instead of
// sending the client to an empty last page.
func (l *lister) scan(ctx context.Context, tenant, end string) (string, error) {
	key := l.s.keys.dlq(tenant)
	for {
		need, left := l.limit-len(l.items), maxDLQScan-l.scanned
		if need == 0 || left == 0 {
			return end, nil
		}
		count := need + 1
		if l.pattern != "" {
			count = max(count, filterChunk)
		}
		count = min(count, left)
		hi := "+"
		if end != "+" {
			hi = "(" + end // exclusive
		}
		msgs, err := l.s.rdb.XRevRangeN(ctx, key, hi, "-", int64(count)).Result()
		if err != nil {
			return "", fmt.Errorf("xrevrange %s: %w", key, classify(err))
		}
		for _, m := range msgs {
			l.scanned++
			if l.pattern != "" {
				typ, _ := m.Values["type"].(string)
				if !subscription.Match(l.pattern, typ) {
					end = m.ID
					continue
				}
			}
			if len(l.items) == l.limit {
				// A match beyond the page: the next page starts with it.
				return end, nil
			}
			l.items = append(l.items, decodeDeadLetter(tenant, m))
			end = m.ID
		}
		if len(msgs) < count {
			return "", nil
		}
	}
}

// cursor is a decoded ListDeadLetters cursor: continue in tenant with the
// entries older than end ("+" = from its newest).
type cursor struct{ tenant, end string }

// encodeCursor is the opaque cursor (relay.EncodeCursor) of tenant and end.
func encodeCursor(tenant, end string) string { return relay.EncodeCursor(tenant, end) }

func parseCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	tenant, end, err := relay.DecodeCursor(s)
	if err != nil {
		return nil, err
	}
	if event.ValidateTenantID(tenant) != nil || (end != "+" && !validStreamID(end)) {
		return nil, relay.BadCursor("malformed")
	}
	return &cursor{tenant: tenant, end: end}, nil
}

// validStreamID reports whether id is a complete Redis stream id, ^\d+-\d+$
// with both parts within uint64.
func validStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || !digits(ms) || !digits(seq) {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkEntry validates a tenant and a dead-letter id before any key is built.
func checkEntry(tenant, id string) error {
	if err := event.ValidateTenantID(tenant); err != nil {
		return err
	}
	if !validStreamID(id) {
		return &event.Error{Code: event.CodeInvalidField, Field: "entryId",
			Message: fmt.Sprintf("entry id %.64q is not a stream id such as 1764000000000-0", id)}
	}
	return nil
}

// decodeDeadLetter reads one dead-letter entry. An entry whose event cannot be
// decoded (dead-lettered because it was undecodable, or written by hand) has a
// nil Event; fields it lacks are zero.
func decodeDeadLetter(tenant string, m redis.XMessage) relay.DeadLetter {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	dl := relay.DeadLetter{
		Tenant:           tenant,
		ID:               m.ID,
		OriginalStreamID: str(fieldOriginalStreamID),
		Group:            str(fieldGroup),
		LastError:        str(fieldLastError),
	}
	dl.Attempts, _ = strconv.Atoi(str(fieldAttempts))
	dl.FailedAt, _ = time.Parse(time.RFC3339Nano, str(fieldFailedAt))
	if ev, err := event.FromValues(m.Values); err == nil {
		dl.Event = ev
	}
	return dl
}

// GetDeadLetter returns one dead letter of the tenant; relay.ErrNotFound when
// it does not exist. Safe for concurrent use.
func (s *Store) GetDeadLetter(ctx context.Context, tenant, id string) (*relay.DeadLetter, error) {
	if err := checkEntry(tenant, id); err != nil {
		return nil, err
	}
	key := s.keys.dlq(tenant)
	msgs, err := s.rdb.XRangeN(ctx, key, id, id, 1).Result()
	if err != nil {
		return nil, fmt.Errorf("xrange %s %s: %w", key, id, classify(err))
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("dead letter %s of tenant %s: %w", id, tenant, relay.ErrNotFound)
	}
	dl := decodeDeadLetter(tenant, msgs[0])
	return &dl, nil
}

// retryScript re-publishes a dead letter and removes it from the DLQ,
// atomically: only when the dead letter still exists, so concurrent retries of
// one entry publish it once. Both keys share the tenant's hash slot.
//
// KEYS[1] dead-letter stream, KEYS[2] tenant stream; ARGV[1] dead-letter id,
// ARGV[2] MINID of the tenant stream, ARGV[3..] entry fields and values.
// Returns the new entry's id, or nil when the dead letter is gone.
var retryScript = redis.NewScript(`
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1], 'COUNT', 1) == 0 then return false end
local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
`)

// RetryDeadLetter re-publishes the dead letter's event to its tenant stream
// for the group that failed it only (targetGroup = that group; the event id
// and every other field unchanged) and removes it from the DLQ, in one atomic
// step. It returns the new entry; relay.ErrNotFound when the dead letter does
// not exist (or a concurrent retry or delete took it first), and
// relay.ErrNotRetryable when it holds no event that can be re-published.
// Safe for concurrent use; it does not need Run.
func (s *Store) RetryDeadLetter(ctx context.Context, tenant, id string) (relay.PublishResult, error) {
	dl, err := s.GetDeadLetter(ctx, tenant, id)
	if err != nil {
		return relay.PublishResult{}, err
	}
	ev, err := relay.RetryEvent(dl)
	if err != nil {
		return relay.PublishResult{}, err
	}
	// The tenant was registered when its event was first published; this
	// keeps a registry that lost data from hiding the stream from readers.
	if !s.registered.Contains(tenant) {
		if err := s.rdb.SAdd(ctx, s.keys.tenants(), tenant).Err(); err != nil {
			return relay.PublishResult{}, fmt.Errorf("register tenant: %w", classify(err))
		}
		s.registered.Add(tenant, struct{}{})
	}
	stream, dlq := s.keys.stream(tenant), s.keys.dlq(tenant)
	args := ev.AppendValues(append(make([]any, 0, 32), id, minID(time.Now(), s.opts.Retention)))
	newID, err := retryScript.Run(ctx, s.rdb, []string{dlq, stream}, args...).Text()
	if errors.Is(err, redis.Nil) {
		return relay.PublishResult{}, fmt.Errorf("dead letter %s of tenant %s: %w", id, tenant, relay.ErrNotFound)
	}
	if err != nil {
		return relay.PublishResult{}, fmt.Errorf("retry dead letter %s %s: %w", dlq, id, classify(err))
	}
	// Best effort: without the signal, readers find the entry at their
	// next sweep (within about a second).
	sig := s.rdb.Pipeline()
	s.signalAppended(ctx, sig, tenant)
	_ = execPipe(ctx, sig)
	return relay.PublishResult{Stream: stream, StreamID: newID, EventID: ev.ID, CorrelationID: ev.CorrelationID}, nil
}

// DeleteDeadLetter removes one dead letter; relay.ErrNotFound when it does not
// exist. Safe for concurrent use.
func (s *Store) DeleteDeadLetter(ctx context.Context, tenant, id string) error {
	if err := checkEntry(tenant, id); err != nil {
		return err
	}
	key := s.keys.dlq(tenant)
	n, err := s.rdb.XDel(ctx, key, id).Result()
	if err != nil {
		return fmt.Errorf("xdel %s %s: %w", key, id, classify(err))
	}
	if n == 0 {
		return fmt.Errorf("dead letter %s of tenant %s: %w", id, tenant, relay.ErrNotFound)
	}
	return nil
}
