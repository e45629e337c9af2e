package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/testutil/redistest"
)

// waitStore is a running publish-only Store on url that waits for replicas.
func waitStore(t *testing.T, url string, replicas int, timeout time.Duration) *Store {
	t.Helper()
	s, _ := runStore(t, Options{URL: url, Retention: time.Hour, DLQRetention: time.Hour, WaitReplicas: replicas, WaitTimeout: timeout})
	return s
}

func TestPublish_waiting_for_a_replica_a_lone_Redis_lacks_fails_with_a_clear_error(t *testing.T) {
	srv := redistest.Start(t)
	s := waitStore(t, srv.URL(), 1, 300*time.Millisecond)
	reqs := []relay.PublishRequest{
		{Event: testEvent("acme", "user.joined", 1)},
		{Event: testEvent("acme", "user.joined", 2), IdempotencyKey: "k2"},
		{Event: testEvent("globex", "user.joined", 3)},
	}
	res := make([]relay.PublishResult, len(reqs))
	start := time.Now()
	s.Publish(context.Background(), reqs, res)
	took := time.Since(start)
	for i, r := range res {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		if !errors.Is(r.Err, relay.ErrUnavailable) ||
			!strings.Contains(msg, "accepted by the primary, but only 0 of 1 replicas confirmed it within 300ms") ||
			!strings.Contains(msg, "retry with the same Idempotency-Key") {
			t.Errorf("event %d: got %v, want ErrUnavailable saying 0 of 1 replicas confirmed it and to retry with the key", i, r.Err)
		}
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("the publish took %v, want the 300ms WAIT timeout and a little more", took)
	}
	// The primary has every event: a retry with the same key finds it.
	c := srv.Client(t)
	if n, _ := c.XLen(context.Background(), "hyvve:events:{acme}").Result(); n != 2 {
		t.Errorf("acme's stream: got %d entries, want 2 (written, only not confirmed)", n)
	}
	if ok, _ := c.SIsMember(context.Background(), "hyvve:tenants", "globex").Result(); !ok {
		t.Errorf("globex is not in the tenant registry")
	}
	if s.registered.Contains("globex") {
		t.Errorf("a registration WAIT did not confirm is remembered: the next publish would not register the tenant again")
	}
}

func TestPublish_waits_for_a_replica_and_succeeds_when_it_confirms(t *testing.T) {
	// No delay before the full sync the replica asks for (Redis waits 5 s
	// by default, for more replicas to join it).
	primary := redistest.Start(t, redistest.Options{Args: []string{"--repl-diskless-sync-delay", "0"}})
	host, port, _ := strings.Cut(primary.Addr(), ":")
	redistest.Start(t, redistest.Options{Args: []string{"--replicaof", host, port}})
	c := primary.Client(t)
	ctx := context.Background()
	// Online in INFO is not enough: the primary streams writes only once
	// the replica's first REPLCONF ACK came. Synced is when WAIT sees it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.Set(ctx, "synced", 1, 0)
		if n, _ := c.Wait(ctx, 1, 100*time.Millisecond).Result(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			info, _ := c.Info(ctx, "replication").Result()
			t.Fatalf("the replica did not confirm a write within 10 s:\n%s", info)
		}
	}

	tests := []struct {
		name     string
		replicas int
		wantErr  string
	}{
		{"one replica asked, one confirms", 1, ""},
		{"two asked, one confirms", 2, "only 1 of 2 replicas confirmed it within 200ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := waitStore(t, primary.URL(), tc.replicas, 200*time.Millisecond)
			ev := testEvent("acme", "user.joined", tc.replicas)
			res := make([]relay.PublishResult, 1)
			s.Publish(ctx, []relay.PublishRequest{{Event: ev, IdempotencyKey: "key-" + strconv.Itoa(tc.replicas)}}, res)
			switch {
			case tc.wantErr == "" && res[0].Err != nil:
				t.Errorf("got %v, want the event published", res[0].Err)
			case tc.wantErr != "" && (!errors.Is(res[0].Err, relay.ErrUnavailable) || !strings.Contains(res[0].Err.Error(), tc.wantErr)):
				t.Errorf("got %v, want ErrUnavailable saying %q", res[0].Err, tc.wantErr)
			}
		})
	}
}
