package consumer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"flashsale/config"
	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/ledger"
)

// stack is one test's share of the real services: fresh databases, a topic
// with four partitions and a one-partition dead-letter topic of its own,
// and a synchronous writer.
type stack struct {
	cfg    *config.Config
	db     *pgxpool.Pool
	topic  string
	dlq    string
	group  string
	w      *kafka.Writer
	sales  *invpg.SaleStore
	cancel *cancellations
}

func newStack(t testing.TB) *stack {
	t.Helper()
	cfg := testenv.Config(t, 2)
	s := &stack{cfg: cfg, db: testenv.Pools(t, cfg)[0], group: "test-" + randHex(6), cancel: &cancellations{}}
	s.topic = createTopic(t, cfg.KafkaBrokers, "test-"+randHex(6), 4)
	s.dlq = createTopic(t, cfg.KafkaBrokers, s.topic+".dlq", 1)
	s.sales = invpg.NewSaleStore(s.db)
	tr := &kafka.Transport{}
	s.w = &kafka.Writer{Addr: kafka.TCP(cfg.KafkaBrokers...), Topic: s.topic, Transport: tr, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	t.Cleanup(func() {
		_ = s.w.Close()
		tr.CloseIdleConnections()
	})
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// controller dials the cluster's controller, which creates and deletes
// topics.
func controller(ctx context.Context, brokers []string) (*kafka.Conn, error) {
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return nil, err
	}
	return kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
}

func createTopic(t testing.TB, brokers []string, name string, partitions int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := controller(ctx, brokers)
	if err != nil {
		t.Fatalf("kafka (is the stack up? run scripts/stack.sh up): %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cc, err := controller(ctx, brokers); err == nil {
			_ = cc.DeleteTopics(name)
			_ = cc.Close()
		}
	})
	return name
}

// consumerConfig is a consumer of the stack's topic with quick retries.
func (s *stack) consumerConfig(t testing.TB, name string) consumer.Config {
	return consumer.Config{Name: name, Brokers: s.cfg.KafkaBrokers, Topic: s.topic, GroupID: s.group + "-" + name,
		DeadLetterTopic: s.dlq, MaxAttempts: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		CloseTimeout: 15 * time.Second, Log: testenv.Logger(t)}
}

// inventory is an inventory consumer over the stack's ledger; edit changes
// its configuration.
func (s *stack) inventory(t testing.TB, edit ...func(*consumer.Config)) *consumer.Consumer {
	t.Helper()
	return s.inventoryWith(t, ledger.New(s.db, s.cancel, testenv.Logger(t)), edit...)
}

// inventoryWith is an inventory consumer over h, a wrapped ledger.
func (s *stack) inventoryWith(t testing.TB, h consumer.Handler, edit ...func(*consumer.Config)) *consumer.Consumer {
	t.Helper()
	cfg := s.consumerConfig(t, "inventory")
	for _, e := range edit {
		e(&cfg)
	}
	c, err := consumer.New(cfg, s.db, h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// running is a consumer's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func start(t testing.TB, c *consumer.Consumer) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { _ = r.stop(t) })
	return r
}

// stop cancels Run and returns its error; Run must end within 20 s.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t testing.TB) error {
	t.Helper()
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(20 * time.Second):
			r.err = errors.New("Run did not return within 20 s of its context ending")
			t.Error(r.err)
		}
	})
	return r.err
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
	}
}

func (s *stack) sale(t testing.TB, stock int) inventory.SaleID {
	t.Helper()
	now := time.Now().UTC()
	v, err := s.sales.Create(context.Background(), inventory.NewSale{SKU: "S", Title: "T", PriceCents: 100, Currency: "EUR",
		Stock: stock, PerUserLimit: 5, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return v.ID
}

// message is ev as the relay publishes it.
func message(ev inbox.Event) kafka.Message {
	v, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": ev.ID, "source": ev.Source, "type": ev.Type,
		"subject": ev.Subject, "time": ev.Time.Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"dataschema": "https://flashsale.example/schemas/order-event/v1", "data": ev.Data})
	return kafka.Message{Key: []byte(ev.Subject), Value: v,
		Headers: []kafka.Header{{Key: "ce_id", Value: []byte(ev.ID)}, {Key: "ce_type", Value: []byte(ev.Type)}}}
}

func (s *stack) produce(t testing.TB, evs ...inbox.Event) {
	t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = message(ev)
	}
	s.write(t, msgs...)
}

func (s *stack) write(t testing.TB, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// createdEvents makes n created events of one sale with 1-3 units each.
func createdEvents(sale inventory.SaleID, n int) (evs []inbox.Event, units int64) {
	for i := range n {
		q := i%3 + 1
		evs = append(evs, testenv.OrderEvent("created", testenv.NextOrderID(), sale, q, ""))
		units += int64(q)
	}
	return evs, units
}

func (s *stack) inboxIDs(t *testing.T, name string) []string {
	t.Helper()
	rows, _ := s.db.Query(context.Background(), `SELECT event_id::text FROM inbox WHERE consumer = $1 ORDER BY 1`, name)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// entries counts the ledger's entries: the events an inventory consumer
// applied (the ledger keeps no inbox rows).
func (s *stack) entries(t testing.TB) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM ledger_entries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *stack) inboxCount(t testing.TB, name string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE consumer = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkCreated checks the ledger after the created events evs: sold is the
// sum of their units, every order has exactly one entry, under its event's
// id, and the ledger wrote no inbox rows.
func (s *stack) checkCreated(t *testing.T, sale inventory.SaleID, evs []inbox.Event, units int64) {
	t.Helper()
	ctx := context.Background()
	p, err := ledger.New(s.db, nil, testenv.Logger(t)).Position(ctx, sale)
	if err != nil {
		t.Fatal(err)
	}
	if p.Sold != units || p.Released != 0 {
		t.Errorf("position %+v, want sold %d", p, units)
	}
	perOrder := map[string]int{}
	rows, _ := s.db.Query(ctx, `SELECT order_id::text, count(*) FROM ledger_entries WHERE sale_id = $1 GROUP BY 1`, sale.Int64())
	var order string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&order, &n}, func() error { perOrder[order] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ev := range evs {
		want = append(want, ev.ID)
		if perOrder[ev.Subject] != 1 {
			t.Errorf("order %s has %d ledger entries, want 1", ev.Subject, perOrder[ev.Subject])
		}
	}
	if len(perOrder) != len(evs) {
		t.Errorf("%d orders in the ledger, want %d", len(perOrder), len(evs))
	}
	slices.Sort(want)
	rows, _ = s.db.Query(ctx, `SELECT event_id::text FROM ledger_entries WHERE sale_id = $1 ORDER BY 1`, sale.Int64())
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the ledger holds %d event ids, want the %d produced (equal: %v)", len(got), len(want), slices.Equal(got, want))
	}
	if n := s.inboxCount(t, "inventory"); n != 0 {
		t.Errorf("the ledger's consumer wrote %d inbox rows", n)
	}
}

// groupLag is what the group has not committed on the topic: zero once
// every message was handled and acknowledged.
func (s *stack) groupLag(t testing.TB, group string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(s.cfg.KafkaBrokers...), Transport: tr}
	parts := []int{0, 1, 2, 3}
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{s.topic: parts}})
	if err != nil {
		t.Fatal(err)
	}
	var req []kafka.OffsetRequest
	for _, p := range parts {
		req = append(req, kafka.LastOffsetOf(p))
	}
	last, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{s.topic: req}})
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	for _, po := range last.Topics[s.topic] {
		c := int64(0)
		for _, cp := range committed.Topics[s.topic] {
			if cp.Partition == po.Partition && cp.CommittedOffset > 0 {
				c = cp.CommittedOffset
			}
		}
		lag += po.LastOffset - c
	}
	return lag
}

// deadLetters reads n messages of the stack's dead-letter topic.
func (s *stack) deadLetters(t *testing.T, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.cfg.KafkaBrokers, Topic: s.dlq, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("dead-letter topic: %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// cancellations is the test's OversoldCanceller; then, when set, runs with
// the ids like the order service would (emitting cancelled events).
type cancellations struct {
	mu    sync.Mutex
	calls [][]int64
	then  func(ids []int64) error
}

func (c *cancellations) CancelOversold(_ context.Context, ids []int64) error {
	c.mu.Lock()
	c.calls = append(c.calls, slices.Clone(ids))
	then := c.then
	c.mu.Unlock()
	if then != nil {
		return then(ids)
	}
	return nil
}

func (c *cancellations) all() [][]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}
