package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"flashsale/internal/testenv"
	"flashsale/outbox"
)

// holdFirst holds the relay's first write past its lease and then fails it
// (a write the broker never answered in time); it counts what the relay
// writes after that.
type holdFirst struct {
	outbox.Publisher
	entered, release chan struct{}
	calls            atomic.Int32
	after            atomic.Int64 // messages written once released
}

func (h *holdFirst) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if h.calls.Add(1) == 1 {
		close(h.entered)
		<-h.release
		return errors.New("write timed out")
	}
	h.after.Add(int64(len(msgs)))
	return h.Publisher.WriteMessages(ctx, msgs...)
}

// TestRelayHeldPastItsLeasePublishesNothingAfterResuming: a relay's write
// is held past its lease while a second relay takes the shard over and
// publishes its rows. Once the first relay resumes it checks its lease
// before writing again, finds it lost, and publishes nothing: each event
// reaches Kafka once, from the successor.
func TestRelayHeldPastItsLeasePublishesNothingAfterResuming(t *testing.T) {
	w := newWorld(t)
	w.targets = w.targets[:1]
	var ids []string
	for i := range 10 {
		ids = append(ids, w.insert(w.targets[0], int64(i+1), "flashsale.order.created")...)
	}
	hold := &holdFirst{Publisher: w.writer(), entered: make(chan struct{}), release: make(chan struct{})}
	held := w.relay(hold, "held")
	stopHeld := run(held)
	defer stopHeld()
	<-hold.entered
	time.Sleep(2500 * time.Millisecond) // past the 2 s lease
	stopSuccessor := run(w.relay(w.writer(), "successor"))
	defer stopSuccessor()
	w.waitDrained()
	close(hold.release)
	for deadline := time.Now().Add(10 * time.Second); held.Stats().Fenced() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the resumed relay never noticed its lease was lost")
		}
	}
	if n := hold.after.Load(); n != 0 {
		t.Errorf("the resumed relay published %d messages its successor had published already", n)
	}
	seen := map[string]int{}
	for _, e := range w.readAll(len(ids)) {
		seen[e.ID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s seen %d times, want once", id, seen[id])
		}
	}
}

// relays is a set of running relays over one world, by holder name.
type relays struct {
	w       *world
	running map[string]*outbox.Relay
	stops   map[string]func()
}

func (rs *relays) start(name string, tune func(*outbox.Config)) {
	r := rs.w.relayWith(rs.w.writer(), name, tune)
	rs.running[name], rs.stops[name] = r, run(r)
}

func (rs *relays) stop(name string) {
	rs.stops[name]()
	delete(rs.running, name)
	delete(rs.stops, name)
}

func (rs *relays) stopAll() {
	for name := range rs.stops {
		rs.stop(name)
	}
}

// balanced says why the shards are not yet shared as they should be: every
// shard held by exactly one running relay, the one its relay_lease row
// names, and each relay's count within one of the fair share. "" when
// they are.
func (rs *relays) balanced() string {
	owner := map[int]string{}
	var counts []int
	for name, r := range rs.running {
		held := r.Held()
		counts = append(counts, len(held))
		for _, s := range held {
			if o, dup := owner[s]; dup {
				return fmt.Sprintf("shard %d held by %s and %s", s, o, name)
			}
			owner[s] = name
		}
	}
	fair := float64(len(rs.w.targets)) / float64(len(rs.running))
	for _, n := range counts {
		if d := float64(n) - fair; d <= -1 || d >= 1 {
			return fmt.Sprintf("split %v, fair %.2f", counts, fair)
		}
	}
	for _, tg := range rs.w.targets {
		var holder *string
		if err := tg.Pool.QueryRow(context.Background(), "SELECT holder FROM "+tg.Schema+".relay_lease").Scan(&holder); err != nil {
			rs.w.t.Fatal(err)
		}
		if holder == nil || *holder != owner[tg.Shard] {
			return fmt.Sprintf("shard %d held by %q, relay_lease names %v", tg.Shard, owner[tg.Shard], holder)
		}
	}
	return ""
}

// waitBalanced waits up to within for the shards to be shared, and
// returns how long it took.
func (rs *relays) waitBalanced(within time.Duration) time.Duration {
	rs.w.t.Helper()
	start := time.Now()
	for {
		why := rs.balanced()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			rs.w.t.Fatalf("not balanced over %d relays after %v: %s", len(rs.running), within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShardLeasesBalanceOverLiveRelays: ten shards on two databases. One
// relay holds them all; a second and a third each make the others give
// back what they hold beyond their share; a stopped relay's shards move to
// the others within the lease TTL. Ownership is read from each relay and
// from the relay_lease rows.
func TestShardLeasesBalanceOverLiveRelays(t *testing.T) {
	w := newShardedWorld(t, 10)
	rs := &relays{w: w, running: map[string]*outbox.Relay{}, stops: map[string]func(){}}
	defer rs.stopAll()
	keep := func(*outbox.Config) {}
	for _, name := range []string{"a", "b", "c"} {
		rs.start(name, keep)
		t.Logf("%d relays balanced in %v", len(rs.running), rs.waitBalanced(10*time.Second))
	}
	rs.stop("b")
	took := rs.waitBalanced(10 * time.Second)
	t.Logf("a stopped relay's shards moved in %v", took)
	if took > 2*time.Second {
		t.Errorf("a stopped relay's shards moved in %v, more than the 2 s lease TTL", took)
	}
}

// TestCommitInAnotherInstanceWakesTheOwner: two relays share four shards
// and poll only every 30 s. A commit made in a third instance, on a shard
// neither of its own relay's, is announced by that instance's waker, and
// the relay holding the shard publishes it long before its poll.
func TestCommitInAnotherInstanceWakesTheOwner(t *testing.T) {
	w := newWorld(t)
	rs := &relays{w: w, running: map[string]*outbox.Relay{}, stops: map[string]func(){}}
	defer rs.stopAll()
	slow := func(c *outbox.Config) { c.Poll = 30 * time.Second }
	rs.start("a", slow)
	rs.start("b", slow)
	rs.waitBalanced(10 * time.Second)
	// The committing instance's relay is not running: it holds nothing.
	waker := outbox.NewWaker(w.relayWith(w.writer(), "serve", slow), w.nodes[0], w.cfg.RedisPrefix, testenv.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = waker.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitSubscribers(t, w, 2)

	shard := rs.running["b"].Held()[0]
	tg := w.targets[slices.IndexFunc(w.targets, func(tg outbox.Target) bool { return tg.Shard == shard })]
	before := rs.running["b"].Stats().Published()
	w.insert(tg, 99, "flashsale.order.created")
	start := time.Now()
	waker.Committed(shard)
	for rs.running["b"].Stats().Published() == before {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the event waited for the 30 s poll: the commit did not wake the shard's relay")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("published %v after the commit", time.Since(start))
}

// waitSubscribers waits until n relays listen for wake-ups.
func waitSubscribers(t *testing.T, w *world, n int64) {
	t.Helper()
	channel := w.cfg.RedisPrefix + ":relay:wake"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		subs, err := w.nodes[0].PubSubNumSub(context.Background(), channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		if subs[channel] >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d relays listen on %s, want %d", subs[channel], channel, n)
		}
	}
}
