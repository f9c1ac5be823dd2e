package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"flashsale/config"
	"flashsale/internal/testenv"
	"flashsale/lease"
	"flashsale/outbox"
	"flashsale/shard"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is two databases with shard outboxes (four unless said), a private topic and
// lease prefix, all on the real stack.
type world struct {
	t       testing.TB
	cfg     *config.Config
	pools   []*pgxpool.Pool
	targets []outbox.Target
	nodes   []*redis.Client
	topic   string
	batch   int // rows a relay loop publishes at once
}

func newWorld(t testing.TB) *world { return newShardedWorld(t, 4) }

// newShardedWorld is a world with n shard outboxes over the two databases.
func newShardedWorld(t testing.TB, n int) *world {
	t.Helper()
	w := &world{t: t, cfg: testenv.Config(t, n), batch: 50}
	w.pools = testenv.Pools(t, w.cfg)
	m, _ := shard.NewMap(n, len(w.pools))
	for s := range shard.ID(n) {
		w.targets = append(w.targets, outbox.Target{Pool: w.pools[m.Database(s)], Schema: s.Schema(), Shard: int(s)})
	}
	for i := range w.cfg.RedisAddrs {
		w.nodes = append(w.nodes, testenv.Redis(t, w.cfg, i))
	}
	w.topic = testenv.Topic(t, w.cfg)
	if err := outbox.EnsureTopic(context.Background(), w.cfg.KafkaBrokers, w.topic, 4, 1); err != nil {
		t.Fatal(err)
	}
	return w
}

// insert writes n events per aggregate on the target, each in its own
// transaction, and returns the event ids in order.
func (w *world) insert(t outbox.Target, aggregate int64, types ...string) []string {
	w.t.Helper()
	var ids []string
	for _, typ := range types {
		var id string
		err := t.Pool.QueryRow(context.Background(), fmt.Sprintf(
			`INSERT INTO %s.outbox (aggregate_id, event_type, payload) VALUES ($1, $2, $3) RETURNING event_id::text`, t.Schema),
			aggregate, typ, fmt.Sprintf(`{"n":%d,"type":%q}`, aggregate, typ)).Scan(&id)
		if err != nil {
			w.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (w *world) relay(pub outbox.Publisher, holder string) *outbox.Relay {
	return w.relayWith(pub, holder, func(*outbox.Config) {})
}

// relayWith is a relay whose config tune changes from the tests' default.
func (w *world) relayWith(pub outbox.Publisher, holder string, tune func(*outbox.Config)) *outbox.Relay {
	cfg := outbox.Config{Holder: holder, Prefix: w.cfg.RedisPrefix, Source: "/test", BatchSize: w.batch,
		Poll: 200 * time.Millisecond, Retention: time.Hour, RetryDelay: 20 * time.Millisecond}
	tune(&cfg)
	locker := lease.NewLocker(w.nodes, w.cfg.RedisPrefix, 2*time.Second, func(ctx context.Context) (int64, error) {
		var n int64
		return n, w.pools[0].QueryRow(ctx, "SELECT nextval('fencing_tokens')").Scan(&n)
	})
	return outbox.New(w.targets, pub, locker, w.nodes[0], cfg, testenv.Logger(w.t))
}

func (w *world) writer() *outbox.Writer {
	wr := outbox.NewWriter(w.cfg.KafkaBrokers, w.topic)
	w.t.Cleanup(func() { _ = wr.Close() })
	return wr
}

// run starts r and returns a stop function that waits for it.
func run(r *outbox.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// unpublished counts rows not yet marked, across every target.
func (w *world) unpublished() int {
	n := 0
	for _, t := range w.targets {
		var c int
		if err := t.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+t.Schema+".outbox WHERE published_at IS NULL").Scan(&c); err != nil {
			w.t.Fatal(err)
		}
		n += c
	}
	return n
}

func (w *world) waitDrained() {
	w.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); w.unpublished() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			w.t.Fatalf("%d rows still unpublished", w.unpublished())
		}
	}
}

type event struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        string          `json:"time"`
	Data        json.RawMessage `json:"data"`
	key         string
}

// readAll reads the topic from the start until want messages arrived.
func (w *world) readAll(want int) []event {
	w.t.Helper()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: w.cfg.KafkaBrokers, Topic: w.topic, GroupID: "reader-" + w.cfg.RedisPrefix,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []event
	for len(out) < want {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			w.t.Fatalf("read %d of %d: %v", len(out), want, err)
		}
		var e event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			w.t.Fatal(err)
		}
		e.key = string(m.Key)
		out = append(out, e)
	}
	return out
}

// TestRelayPublishesEveryRowInOrderPerAggregate: every row reaches Kafka
// as a CloudEvent keyed by its aggregate, each aggregate's events in order.
func TestRelayPublishesEveryRowInOrderPerAggregate(t *testing.T) {
	w := newWorld(t)
	want := map[string][]string{}
	for i := range 40 {
		tg := w.targets[i%len(w.targets)]
		agg := int64(1000 + i)
		want[fmt.Sprint(agg)] = w.insert(tg, agg, "flashsale.order.created", "flashsale.order.paid")
	}
	stop := run(w.relay(w.writer(), "a"))
	defer stop()
	w.waitDrained()
	got := map[string][]string{}
	for _, e := range w.readAll(80) {
		if e.SpecVersion != "1.0" || e.Subject != e.key || e.Time == "" || len(e.Data) == 0 {
			t.Fatalf("bad envelope %+v", e)
		}
		got[e.key] = append(got[e.key], e.ID)
	}
	for k, ids := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(ids) {
			t.Errorf("aggregate %s: got %v, want %v in that order", k, got[k], ids)
		}
	}
}

// crashAfterPublish publishes, then kills the relay before it can mark.
type crashAfterPublish struct {
	outbox.Publisher
	crash func()
	once  sync.Once
}

func (c *crashAfterPublish) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := c.Publisher.WriteMessages(ctx, msgs...)
	c.once.Do(c.crash)
	return err
}

// TestCrashBetweenPublishAndMarkRepublishes: nothing is lost; the rows
// published before the crash are published again, each event id at least
// once.
func TestCrashBetweenPublishAndMarkRepublishes(t *testing.T) {
	w := newWorld(t)
	var ids []string
	for i := range 10 {
		ids = append(ids, w.insert(w.targets[0], int64(i+1), "flashsale.order.created")...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	crashed := &crashAfterPublish{Publisher: w.writer(), crash: cancel}
	done := make(chan struct{})
	go func() { _ = w.relay(crashed, "doomed").Run(ctx); close(done) }()
	<-done
	if n := w.unpublished(); n != 10 {
		t.Fatalf("%d unpublished after the crash, want 10 (marked before the crash?)", n)
	}
	stop := run(w.relay(w.writer(), "survivor"))
	defer stop()
	w.waitDrained()
	seen := map[string]int{}
	for _, e := range w.readAll(20) {
		seen[e.ID]++
	}
	for _, id := range ids {
		if seen[id] != 2 {
			t.Errorf("event %s seen %d times, want 2 (once before the crash, once after)", id, seen[id])
		}
	}
}

// stall holds the first write until released, standing in for a relay
// paused past its lease (GC, a stopped VM).
type stall struct {
	outbox.Publisher
	entered, release chan struct{}
	n                atomic.Int32
}

func (s *stall) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if s.n.Add(1) == 1 {
		close(s.entered)
		<-s.release
	}
	return s.Publisher.WriteMessages(ctx, msgs...)
}

// TestPausedRelayIsFencedAndShardsHandOver: a relay stalls past its lease,
// a second relay takes the shard over and publishes; the first relay's
// marks are refused by the fencing token. Stopping the second hands every
// shard back within the lease TTL.
func TestPausedRelayIsFencedAndShardsHandOver(t *testing.T) {
	// Published rows moved to outbox_published, or deleted (no
	// retention): the fence holds either way.
	for _, keep := range []time.Duration{time.Hour, 0} {
		t.Run("retention="+keep.String(), func(t *testing.T) { pausedRelayIsFenced(t, keep) })
	}
}

func pausedRelayIsFenced(t *testing.T, keep time.Duration) {
	w := newWorld(t)
	w.targets = w.targets[:1]
	w.insert(w.targets[0], 7, "flashsale.order.created")
	st := &stall{Publisher: w.writer(), entered: make(chan struct{}), release: make(chan struct{})}
	retention := func(c *outbox.Config) { c.Retention = keep }
	paused := w.relayWith(st, "paused", retention)
	stopPaused := run(paused)
	defer stopPaused()
	<-st.entered
	time.Sleep(2500 * time.Millisecond) // past the 2 s lease
	healthy := w.relayWith(w.writer(), "healthy", retention)
	stopHealthy := run(healthy)
	w.waitDrained()
	close(st.release)
	for deadline := time.Now().Add(5 * time.Second); paused.Stats().Fenced() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the paused relay's mark was not fenced off")
		}
	}
	var holder string
	if err := w.targets[0].Pool.QueryRow(context.Background(), "SELECT holder FROM "+w.targets[0].Schema+".relay_lease").Scan(&holder); err != nil || holder != "healthy" {
		t.Errorf("lease holder %q (%v), want healthy", holder, err)
	}
	stopHealthy()
	w.insert(w.targets[0], 8, "flashsale.order.created")
	w.waitDrained() // the first relay, no longer paused, takes the shard back
}

// TestWithoutRetentionPublishedRowsAreDeleted: with outbox retention 0
// every row still reaches Kafka, in order per aggregate, and a published
// row is deleted rather than kept in outbox_published.
func TestWithoutRetentionPublishedRowsAreDeleted(t *testing.T) {
	w := newWorld(t)
	want := map[string][]string{}
	for i := range 20 {
		agg := int64(2000 + i)
		want[fmt.Sprint(agg)] = w.insert(w.targets[i%len(w.targets)], agg, "flashsale.order.created", "flashsale.order.paid")
	}
	stop := run(w.relayWith(w.writer(), "a", func(c *outbox.Config) { c.Retention = 0 }))
	defer stop()
	w.waitDrained()
	got := map[string][]string{}
	for _, e := range w.readAll(40) {
		got[e.key] = append(got[e.key], e.ID)
	}
	for k, ids := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(ids) {
			t.Errorf("aggregate %s: got %v, want %v in that order", k, got[k], ids)
		}
	}
	for _, tg := range w.targets {
		var left, kept int
		err := tg.Pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM "+tg.Schema+".outbox), (SELECT count(*) FROM "+
			tg.Schema+".outbox_published)").Scan(&left, &kept)
		if err != nil || left != 0 || kept != 0 {
			t.Errorf("%s: %d rows left in the outbox, %d kept as published (%v); want none", tg.Schema, left, kept, err)
		}
	}
}
