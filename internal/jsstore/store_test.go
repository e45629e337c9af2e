package jsstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/hyvve/sidecar/internal/event"
	"github.com/hyvve/sidecar/internal/relay"
	"github.com/hyvve/sidecar/internal/retry"
	"github.com/hyvve/sidecar/internal/testutil/freeport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// policy is a retry schedule for tests; its first step is the ack wait.
func policy(t testing.TB, steps ...time.Duration) retry.Policy {
	t.Helper()
	p, err := retry.NewPolicy(steps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fastRetry is a schedule short enough to watch redeliveries in a test.
func fastRetry(t testing.TB) retry.Policy {
	return policy(t, 200*time.Millisecond, 400*time.Millisecond, 800*time.Millisecond)
}

// slowRetry is a schedule under which nothing is redelivered during a test.
func slowRetry(t testing.TB) retry.Policy { return policy(t, time.Minute) }

// testStore is a Store run by a test; stop ends Run and closes the store
// (as a sidecar that exits or dies); it is safe to call twice and runs at
// the end of the test anyway.
type testStore struct {
	*Store
	stop func()
}

// withDefaults fills what every test store needs.
func withDefaults(t testing.TB, o Options) Options {
	if o.URL == "" && o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Retention == 0 {
		o.Retention = time.Hour
	}
	if o.DLQRetention == 0 {
		o.DLQRetention = time.Hour
	}
	if o.Group != "" && o.Consumer == "" {
		o.Consumer = "c-" + uuid.NewString()[:8]
	}
	return o
}

// open starts a Store (an embedded one in t.TempDir() unless o has a URL or
// DataDir), runs it and waits until it is ready.
func open(t testing.TB, o Options) *testStore {
	t.Helper()
	s, err := New(withDefaults(t, o))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	ts := &testStore{Store: s, stop: func() {
		once.Do(func() {
			cancel()
			<-done
			s.Close()
		})
	}}
	t.Cleanup(ts.stop)
	select {
	case <-s.ready:
	case <-time.After(15 * time.Second):
		t.Fatal("store not ready after 15s")
	}
	return ts
}

// openSetupOnly is a ready Store without Run's background work (the stats
// flush), so a test can read what Publish counted.
func openSetupOnly(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := New(withDefaults(t, o))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.setup(ctx); err != nil {
		t.Fatal(err)
	}
	close(s.ready)
	return s
}

// openServer runs an embedded store that also listens on a free port, and
// returns it with the URL other stores connect to.
func openServer(t testing.TB) (*testStore, string) {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return open(t, Options{Listen: addr}), "nats://" + addr
}

// newEvent is a filled, valid event of tenant.
func newEvent(tenant string, n int) *event.Event {
	e := &event.Event{
		Type:     "order.created",
		Source:   "test",
		TenantID: tenant,
		Data:     fmt.Appendf(nil, `{"n":%d}`, n),
	}
	e.Fill(event.Defaults{})
	return e
}

// publish publishes evs without idempotency keys and fails the test on any
// error.
func publish(t testing.TB, s *Store, evs ...*event.Event) []relay.PublishResult {
	t.Helper()
	reqs := make([]relay.PublishRequest, len(evs))
	for i, e := range evs {
		reqs[i] = relay.PublishRequest{Event: e}
	}
	res := make([]relay.PublishResult, len(reqs))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Publish(ctx, reqs, res)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("publish %d: %v", i, r.Err)
		}
	}
	return res
}

// fetchN fetches until n messages came (failing after within) and returns
// them.
func fetchN(t testing.TB, s *Store, n int, within time.Duration) []*relay.Message {
	t.Helper()
	var got []*relay.Message
	deadline := time.Now().Add(within)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %d messages in %s, want %d", len(got), within, n)
		}
		msgs, err := s.Fetch(context.Background(), n-len(got))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		got = append(got, msgs...)
	}
	return got
}

// fetchNone fetches for d and fails the test if anything came.
func fetchNone(t testing.TB, s *Store, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		msgs, err := s.Fetch(context.Background(), 10)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		for _, m := range msgs {
			id := "(undecodable)"
			if m.Event != nil {
				id = m.Event.ID
			}
			t.Fatalf("got message %s (event %s, attempt %d), want none", m.StreamID, id, m.Attempt)
		}
	}
}

func ack(t testing.TB, s *Store, msgs ...*relay.Message) {
	t.Helper()
	if err := s.Ack(context.Background(), msgs...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

func eventIDs(msgs []*relay.Message) map[string]int {
	ids := map[string]int{}
	for _, m := range msgs {
		if m.Event != nil {
			ids[m.Event.ID]++
		}
	}
	return ids
}

// eventually polls cond every 50 ms until it holds, failing after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two embedded servers on one directory would corrupt the store: the second
// is refused with an error naming the directory and the owner, and the
// directory is free again once the first closed.
func TestNew_refuses_a_data_dir_another_store_uses(t *testing.T) {
	dir := t.TempDir()
	first, err := New(withDefaults(t, Options{DataDir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(withDefaults(t, Options{DataDir: dir}))
	if err == nil || !strings.Contains(err.Error(), "--data-dir "+dir+": in use by another sidecar (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second store on %s: got %v, want the directory in use by this pid", dir, err)
	}
	first.Close()
	again, err := New(withDefaults(t, Options{DataDir: dir}))
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
