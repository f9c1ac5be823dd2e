package consumer_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/ledger"
	"flashsale/order"
)

// TestEventsApplyOnceAndRedeliveriesChangeNothing consumes N created
// events, then the same events produced again, then the whole topic once
// more under a fresh group: the ledger counts each order once.
func TestEventsApplyOnceAndRedeliveriesChangeNothing(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	evs, units := createdEvents(sale, 60)
	s.produce(t, evs...)

	c := s.inventory(t)
	r := start(t, c)
	eventually(t, 30*time.Second, "every event applied", func() bool { return s.entries(t) == len(evs) })
	s.checkCreated(t, sale, evs, units)

	s.produce(t, evs...) // every event delivered twice
	eventually(t, 30*time.Second, "the duplicates skipped", func() bool { return c.Stats().Duplicates == int64(len(evs)) })
	eventually(t, 10*time.Second, "every offset committed", func() bool { return s.groupLag(t, s.group+"-inventory") == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Applied != int64(len(evs)) || st.Failures != 0 || st.DeadLettered != 0 {
		t.Errorf("stats %+v", st)
	}
	s.checkCreated(t, sale, evs, units)

	// A fresh group replays the topic from its start: all duplicates.
	replay := s.inventory(t, func(c *consumer.Config) { c.GroupID += "-replay" })
	r = start(t, replay)
	eventually(t, 30*time.Second, "the replay skipped", func() bool { return replay.Stats().Duplicates == int64(2*len(evs)) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := replay.Stats(); st.Applied != 0 {
		t.Errorf("replay applied %d events", st.Applied)
	}
	s.checkCreated(t, sale, evs, units)
}

// TestKilledConsumerResumesWithoutDoubleEffects kills a consumer in the
// middle of a batch, between the batch's commit and its offsets', then
// stops its successor by cancelling it mid-stream with fetched messages
// unacknowledged, and lets a third one finish: every event is applied once.
func TestKilledConsumerResumesWithoutDoubleEffects(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	evs, units := createdEvents(sale, 200)
	s.produce(t, evs...)

	// Small batches leave events for the next consumers.
	first := s.inventory(t, func(c *consumer.Config) { c.BatchSize = 20 })
	var seen atomic.Int64
	consumer.CrashAfterEffect(first, func(consumer.Event) bool {
		// From the 37th event on, crash at the first one with events of
		// its committed batch behind it.
		n := seen.Add(1)
		if n < 37 {
			return false
		}
		var rows int64
		_ = s.db.QueryRow(context.Background(), `SELECT count(*) FROM ledger_entries`).Scan(&rows)
		return rows > n
	})
	if err := start(t, first).wait(t); !errors.Is(err, consumer.ErrCrashed) {
		t.Fatalf("first consumer: %v", err)
	}
	crashedAt, n := seen.Load(), int64(s.entries(t))
	if n <= crashedAt {
		t.Fatalf("%d events applied after crashing at the %dth: not in the middle of a batch", n, crashedAt)
	}
	// The crashed batch is counted by no Stats of the first consumer, and
	// none of its offsets was committed.
	lost := n - first.Stats().Applied

	second := s.inventoryWith(t, s.recorder(t, 5*time.Millisecond), func(c *consumer.Config) { c.BatchSize = 10 })
	r := start(t, second)
	eventually(t, 30*time.Second, "the second consumer at work", func() bool { return second.Stats().Applied >= 60 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := s.entries(t); n == len(evs) {
		t.Fatal("the second consumer finished before it was stopped; the test proves nothing")
	}

	third := s.inventory(t)
	r = start(t, third)
	eventually(t, 30*time.Second, "every event applied", func() bool { return s.entries(t) == len(evs) })
	eventually(t, 10*time.Second, "every offset committed", func() bool { return s.groupLag(t, s.group+"-inventory") == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	s.checkCreated(t, sale, evs, units)
	st1, st2, st3 := first.Stats(), second.Stats(), third.Stats()
	t.Logf("crashed at event %d with %d applied\nfirst %+v\nsecond %+v\nthird %+v", crashedAt, n, st1, st2, st3)
	if st2.Duplicates+st3.Duplicates < lost {
		t.Errorf("%d redeliveries skipped, want at least the %d events of the crashed batch", st2.Duplicates+st3.Duplicates, lost)
	}
	if got := st1.Applied + st2.Applied + st3.Applied; got != int64(len(evs))-lost {
		t.Errorf("%d effects counted, want %d", got, int64(len(evs))-lost)
	}
}

// TestScalingOneThreeOneAppliesEachEventOnce streams events while the
// group grows from one consumer to three and shrinks back to one.
func TestScalingOneThreeOneAppliesEachEventOnce(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	const batches, per = 40, 15
	var (
		mu    sync.Mutex
		evs   []inbox.Event
		units int64
	)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for range batches {
			b, u := createdEvents(sale, per)
			if err := s.w.WriteMessages(context.Background(), messages(b)...); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			mu.Lock()
			evs, units = append(evs, b...), units+u
			mu.Unlock()
			time.Sleep(150 * time.Millisecond)
		}
	}()

	cs := []*consumer.Consumer{s.inventory(t), s.inventory(t), s.inventory(t)}
	rs := []*running{start(t, cs[0])}
	time.Sleep(1500 * time.Millisecond)
	rs = append(rs, start(t, cs[1]), start(t, cs[2]))
	time.Sleep(2500 * time.Millisecond)
	var wg sync.WaitGroup
	for _, r := range rs[:2] {
		wg.Go(func() {
			if err := r.stop(t); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
	wg.Wait()
	<-produced
	eventually(t, 60*time.Second, "every event applied", func() bool { return s.entries(t) == batches*per })
	eventually(t, 10*time.Second, "every offset committed", func() bool { return s.groupLag(t, s.group+"-inventory") == 0 })
	if err := rs[2].stop(t); err != nil {
		t.Fatal(err)
	}
	s.checkCreated(t, sale, evs, units)
	var applied, dups int64
	for i, c := range cs {
		st := c.Stats()
		t.Logf("consumer %d: %+v", i, st)
		applied, dups = applied+st.Applied, dups+st.Duplicates
		if st.Applied == 0 {
			t.Errorf("consumer %d applied nothing: the group never shared the partitions", i)
		}
	}
	if applied != batches*per {
		t.Errorf("%d effects applied, want %d", applied, batches*per)
	}
	t.Logf("%d redeliveries skipped", dups)
}

func messages(evs []inbox.Event) []kafka.Message {
	out := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		out[i] = message(ev)
	}
	return out
}

// TestPoisonMessagesAreDeadLettered sends a message that is no JSON and an
// event the ledger refuses (its sale does not exist) between good events
// of the same partition: each bad one is tried MaxAttempts times, written
// to the dead-letter topic with its error, and acknowledged; the events
// behind them are applied.
func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 100)
	missing, _ := inventory.NewSaleID(sale.Int64() + 1000)
	key := testenv.NextOrderID()
	before := testenv.OrderEvent("created", key, sale, 1, "")
	unknownSale := testenv.OrderEvent("created", testenv.NextOrderID(), missing, 1, "")
	unknownMsg := message(unknownSale)
	unknownMsg.Key = []byte(before.Subject) // same partition
	after := testenv.OrderEvent("paid", key, sale, 1, "")
	poison := kafka.Message{Key: []byte(before.Subject), Value: []byte(`{"specversion":"1.0","id":`)}
	s.write(t, message(before), poison, unknownMsg, message(after))

	c := s.inventory(t)
	r := start(t, c)
	eventually(t, 30*time.Second, "the event behind the poison applied", func() bool { return s.entries(t) == 2 })
	eventually(t, 10*time.Second, "every offset committed", func() bool { return s.groupLag(t, s.group+"-inventory") == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.DeadLettered != 2 || st.Failures != 6 || st.Applied != 2 {
		t.Errorf("stats %+v, want 2 dead-lettered after 3 attempts each", st)
	}
	dl := s.deadLetters(t, 2)
	if string(dl[0].Value) != string(poison.Value) || string(dl[1].Value) != string(unknownMsg.Value) {
		t.Fatalf("dead letters %q, %q", dl[0].Value, dl[1].Value)
	}
	for i, want := range []string{"invalid event", "foreign key"} {
		m := dl[i]
		if e := header(m, consumer.HeaderError); !strings.Contains(e, want) {
			t.Errorf("dead letter %d: error header %q, want it to mention %q", i, e, want)
		}
		if header(m, consumer.HeaderAttempts) != "3" || header(m, consumer.HeaderConsumer) != "inventory" ||
			header(m, consumer.HeaderTopic) != s.topic || header(m, consumer.HeaderOffset) != []string{"1", "2"}[i] {
			t.Errorf("dead letter %d headers %v", i, m.Headers)
		}
		if string(m.Key) != before.Subject {
			t.Errorf("dead letter %d key %q", i, m.Key)
		}
	}
	if header(dl[1], "ce_id") != unknownSale.ID {
		t.Error("the dead letter lost its own headers")
	}
	var n int
	_ = s.db.QueryRow(context.Background(), `SELECT count(*) FROM ledger_entries WHERE order_id = $1`, key).Scan(&n)
	if n != 2 {
		t.Errorf("order %d has %d entries, want created and paid", key, n)
	}
}

// TestOversoldOrderIsCancelled oversells a sale of two units by three
// orders: the canceller gets the newest order, emits its cancelled event
// as the order service does, and the ledger balances.
func TestOversoldOrderIsCancelled(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 2)
	ids := []int64{testenv.NextOrderID(), testenv.NextOrderID(), testenv.NextOrderID()}
	s.cancel.then = func(got []int64) error {
		for _, id := range got {
			if err := s.w.WriteMessages(context.Background(), message(testenv.OrderEvent("cancelled", id, sale, 1, order.ReasonOversold))); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range ids {
		s.produce(t, testenv.OrderEvent("created", id, sale, 1, ""))
	}
	c := s.inventory(t)
	r := start(t, c)
	led := ledger.New(s.db, nil, testenv.Logger(t))
	eventually(t, 30*time.Second, "the oversold order released", func() bool {
		p, err := led.Position(context.Background(), sale)
		return err == nil && p.Sold == 3 && p.Released == 1
	})
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if calls := s.cancel.all(); len(calls) != 1 || !slices.Equal(calls[0], []int64{ids[2]}) {
		t.Fatalf("canceller calls %v, want [[%d]]", calls, ids[2])
	}
	var reason string
	err := s.db.QueryRow(context.Background(), `SELECT reason FROM ledger_entries WHERE order_id = $1 AND kind = 'cancelled'`, ids[2]).Scan(&reason)
	if err != nil || reason != order.ReasonOversold {
		t.Fatalf("cancellation entry: %q, %v", reason, err)
	}
}

// TestDatabaseOutageDelaysWithoutDeadLettering cuts database 0 away from a
// consumer: its failed attempts are not counted, nothing is dead-lettered,
// and the event is applied once the database is back.
func TestDatabaseOutageDelaysWithoutDeadLettering(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 10)
	u, _ := url.Parse(s.cfg.DatabaseURLs[0])
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.ConnectTimeout = time.Second
	db, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := s.consumerConfig(t, "inventory")
	cfg.MaxAttempts = 2
	c, err := consumer.New(cfg, db, ledger.New(db, s.cancel, testenv.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	ev := testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, "")
	s.produce(t, ev)
	r := start(t, c)
	time.Sleep(3 * time.Second) // many attempts at 10-100 ms apart
	if st := c.Stats(); st.Failures != 0 || st.DeadLettered != 0 || st.Applied != 0 {
		t.Fatalf("during the outage: %+v", st)
	}
	proxy.Restore()
	eventually(t, 30*time.Second, "the event applied after the outage", func() bool { return c.Stats().Applied == 1 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := s.entries(t); n != 1 {
		t.Fatalf("%d ledger entries, want the event's", n)
	}
}

// TestLagCountsWhatIsLeft slows the handler down and watches the lag rise
// above zero and fall back to zero once everything is handled.
func TestLagCountsWhatIsLeft(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	evs, _ := createdEvents(sale, 80)
	s.produce(t, evs...)
	led := ledger.New(s.db, nil, testenv.Logger(t))
	slow := inbox.HandlerFunc(func(ctx context.Context, tx pgx.Tx, ev inbox.Event) error {
		time.Sleep(20 * time.Millisecond)
		return led.Handle(ctx, tx, ev)
	})
	c, err := consumer.New(s.consumerConfig(t, "inventory"), s.db, slow)
	if err != nil {
		t.Fatal(err)
	}
	if c.Lag() != 0 {
		t.Fatal("lag before the first fetch")
	}
	r := start(t, c)
	var peak int64
	eventually(t, 30*time.Second, "every event applied", func() bool {
		peak = max(peak, c.Lag())
		return s.inboxCount(t, "inventory") == len(evs)
	})
	eventually(t, 10*time.Second, "lag back to zero", func() bool { return c.Lag() == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if peak < 10 {
		t.Errorf("lag peaked at %d while 80 events waited for a slow handler", peak)
	}
}

// TestConsumerWaitsForItsTopic starts a consumer before its topic exists:
// it neither creates the topic (with the broker's defaults) nor ends up in
// a group without partitions, and consumes once the topic is made.
func TestConsumerWaitsForItsTopic(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 10)
	late := s.topic + "-late"
	c := s.inventory(t, func(c *consumer.Config) { c.Topic = late })
	r := start(t, c)
	time.Sleep(2 * time.Second)
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(s.cfg.KafkaBrokers...), Transport: tr}
	md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{late}})
	if err != nil || len(md.Topics) != 1 || !errors.Is(md.Topics[0].Error, kafka.UnknownTopicOrPartition) {
		t.Fatalf("the waiting consumer created its topic: %+v %v", md, err)
	}
	createTopic(t, s.cfg.KafkaBrokers, late, 2)
	ev := testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, "")
	m := message(ev)
	m.Topic = late
	w := &kafka.Writer{Addr: kafka.TCP(s.cfg.KafkaBrokers...), Transport: tr, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	eventually(t, 10*time.Second, "the event produced to the new topic", func() bool {
		return w.WriteMessages(context.Background(), m) == nil
	})
	eventually(t, 30*time.Second, "the event applied", func() bool { return c.Stats().Applied == 1 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
