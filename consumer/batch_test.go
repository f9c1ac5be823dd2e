package consumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"flashsale"
	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/ledger"
)

// recorder is the stack's ledger, slowed down by delay per event, that
// records how often each event was handled and which events each batch
// gave AfterCommitBatch.
type recorder struct {
	*ledger.Ledger
	delay   time.Duration
	mu      sync.Mutex
	handled map[string]int
	batches [][]string
}

func (s *stack) recorder(t testing.TB, delay time.Duration) *recorder {
	return &recorder{Ledger: ledger.New(s.db, s.cancel, testenv.Logger(t)), delay: delay, handled: map[string]int{}}
}

// HandleNew is the ledger's, which the consumer calls for a batch and
// for a lone event: it records every event of evs the ledger applied.
func (r *recorder) HandleNew(ctx context.Context, tx pgx.Tx, evs []inbox.Event) ([]bool, error) {
	time.Sleep(time.Duration(len(evs)) * r.delay)
	applied, err := r.Ledger.HandleNew(ctx, tx, evs)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range evs {
		if applied[i] {
			r.handled[ev.ID]++
		}
	}
	return applied, nil
}

func (r *recorder) AfterCommitBatch(ctx context.Context, evs []inbox.Event) error {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	r.mu.Lock()
	r.batches = append(r.batches, ids)
	r.mu.Unlock()
	return r.Ledger.AfterCommitBatch(ctx, evs)
}

// transactions counts the transactions that wrote the ledger entries of
// evs: a row's xmin is the id of the transaction that inserted it.
func (s *stack) transactions(t testing.TB, evs []inbox.Event) int {
	t.Helper()
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	var n int
	err := s.db.QueryRow(context.Background(), `SELECT count(DISTINCT xmin::text) FROM ledger_entries
		WHERE event_id = ANY($1::uuid[])`, ids).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// statements counts the statements run on a pool, by their text.
type statements struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[data.SQL]++
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) count(sql string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[sql]
}

// traced is a pool on the stack's database 0 that counts its statements.
func (s *stack) traced(t testing.TB) (*pgxpool.Pool, *statements) {
	t.Helper()
	pc, err := pgxpool.ParseConfig(s.cfg.DatabaseURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	st := &statements{n: map[string]int{}}
	pc.ConnConfig.Tracer = st
	db, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db, st
}

// TestBatchesApplyManyEventsPerTransaction consumes 500 events produced
// at once: each is applied exactly once, far fewer transactions than
// events record them, and each transaction runs one ledger statement.
func TestBatchesApplyManyEventsPerTransaction(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	evs, units := createdEvents(sale, 500)
	s.produce(t, evs...)

	db, st := s.traced(t)
	c, err := consumer.New(s.consumerConfig(t, "inventory"), db, ledger.New(db, s.cancel, testenv.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, c)
	s.consumeAll(t, r, len(evs))
	s.checkCreated(t, sale, evs, units)
	if st := c.Stats(); st.Applied != int64(len(evs)) || st.Duplicates != 0 || st.Failures != 0 || st.DeadLettered != 0 ||
		st.Committed != int64(len(evs)) {
		t.Errorf("stats %+v, want %d applied and committed", st, len(evs))
	}
	txs := s.transactions(t, evs)
	t.Logf("%d events in %d transactions", len(evs), txs)
	if txs >= len(evs)/5 {
		t.Errorf("%d events took %d transactions, want fewer than %d", len(evs), txs, len(evs)/5)
	}
	// No inbox statement: the entries record the ids. Nothing was a
	// redelivery, so no look-up of known ids either.
	if n, known, ins := st.count(flashsale.SQL.LedgerApplyBatch), st.count(flashsale.SQL.LedgerKnown), st.count(flashsale.SQL.InboxInsertBatch); n != txs || known != 0 || ins != 0 {
		t.Errorf("%d ledger statements in %d transactions (want one each), %d look-ups of known ids, %d inbox statements", n, txs, known, ins)
	}
}

// TestDuplicateWithinABatchAppliesOnce delivers an event twice in a row,
// in one batch: the handler runs for its first copy only, and the second
// counts as a duplicate.
func TestDuplicateWithinABatchAppliesOnce(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	evs, units := createdEvents(sale, 100)
	dup := evs[40].ID
	msgs := messages(evs)
	msgs = slices.Insert(msgs, 41, msgs[40]) // same key: right behind its first copy
	s.write(t, msgs...)

	rec := s.recorder(t, 0)
	// A long window puts everything produced into one or two batches.
	c := s.inventoryWith(t, rec, func(c *consumer.Config) { c.BatchWait = 500 * time.Millisecond })
	r := start(t, c)
	s.consumeAll(t, r, len(evs))
	s.checkCreated(t, sale, evs, units)
	if st := c.Stats(); st.Applied != int64(len(evs)) || st.Duplicates != 1 || st.Committed != int64(len(msgs)) {
		t.Errorf("stats %+v, want %d applied, 1 duplicate, %d committed", st, len(evs), len(msgs))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.ContainsFunc(rec.batches, func(b []string) bool { return len(b) > 1 && countOf(b, dup) == 2 }) {
		t.Fatalf("no batch held both copies of %s; the test proves nothing", dup)
	}
	for _, ev := range evs {
		if n := rec.handled[ev.ID]; n != 1 {
			t.Errorf("event %s handled %d times", ev.ID, n)
		}
	}
}

func countOf(ids []string, id string) (n int) {
	for _, v := range ids {
		if v == id {
			n++
		}
	}
	return n
}

// TestPoisonWithinABatchIsDeadLetteredAlone puts a message that is no
// JSON and an event the ledger refuses (its sale does not exist) among
// 100 good events produced at once: the batch holding them falls back to
// one message at a time, each bad one is dead-lettered after MaxAttempts,
// every good one is applied exactly once, and the next events are batched
// again.
func TestPoisonWithinABatchIsDeadLetteredAlone(t *testing.T) {
	s := newStack(t)
	sale := s.sale(t, 1_000_000)
	missing, _ := inventory.NewSaleID(sale.Int64() + 1000)
	evs, units := createdEvents(sale, 100)
	msgs := messages(evs)
	poison := kafka.Message{Key: msgs[30].Key, Value: []byte(`{"specversion":"1.0","id":`)}
	unknown := message(testenv.OrderEvent("created", testenv.NextOrderID(), missing, 1, ""))
	unknown.Key = msgs[60].Key
	msgs = slices.Insert(msgs, 60, unknown)
	msgs = slices.Insert(msgs, 30, poison)
	s.write(t, msgs...)

	c := s.inventory(t, func(c *consumer.Config) { c.BatchWait = 500 * time.Millisecond })
	r := start(t, c)
	eventually(t, 30*time.Second, "every good event applied", func() bool { return s.entries(t) == len(evs) })
	dl := s.deadLetters(t, 2)
	got := []string{string(dl[0].Value), string(dl[1].Value)}
	slices.Sort(got)
	want := []string{string(poison.Value), string(unknown.Value)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dead letters %q, want %q", got, want)
	}

	more, moreUnits := createdEvents(sale, 100)
	s.produce(t, more...)
	eventually(t, 30*time.Second, "the next events applied", func() bool { return s.entries(t) == len(evs)+len(more) })
	eventually(t, 10*time.Second, "every offset committed", func() bool { return s.groupLag(t, s.group+"-inventory") == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	good, all := int64(len(evs)+len(more)), int64(len(msgs)+len(more))
	if st := c.Stats(); st.Applied != good || st.Duplicates != 0 || st.DeadLettered != 2 || st.Failures != 6 || st.Committed != all {
		t.Errorf("stats %+v, want %d applied, 2 dead-lettered after 3 attempts each, %d committed", st, good, all)
	}
	s.checkCreated(t, sale, append(evs, more...), units+moreUnits)
	if txs := s.transactions(t, more); txs >= len(more)/5 {
		t.Errorf("after the poison, %d events took %d transactions", len(more), txs)
	}
}

// waitApplied polls more tightly than eventually: a batched run lasts
// about a second.
func waitApplied(b *testing.B, c *consumer.Consumer, n int64) {
	b.Helper()
	for deadline := time.Now().Add(2 * time.Minute); c.Stats().Applied < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events applied after 2 minutes", c.Stats().Applied, n)
		}
	}
}

// consumeAll waits until the inventory inbox holds n events and every
// offset is committed, then stops r.
func (s *stack) consumeAll(t *testing.T, r *running, n int) {
	t.Helper()
	eventually(t, 30*time.Second, "every event applied", func() bool { return s.entries(t) == n })
	eventually(t, 10*time.Second, "every offset committed", func() bool { return s.groupLag(t, s.group+"-inventory") == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
