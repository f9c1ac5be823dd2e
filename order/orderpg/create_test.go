package orderpg_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/shard"
)

// TestCreateSQLWritesEachShardOnce: the statement for some shards inserts
// into those shards' tables and no other, with no placeholder left.
func TestCreateSQLWritesEachShardOnce(t *testing.T) {
	q := orderpg.CreateSQL([]shard.ID{1, 3})
	for _, want := range []string{"shard_0001.orders", "shard_0001.outbox", "shard_0003.orders", "shard_0003.outbox",
		"WHERE shard = 1\n", "WHERE shard = 3\n", "SELECT * FROM o1 UNION ALL SELECT * FROM o3"} {
		if strings.Count(q, want) != 1 {
			t.Errorf("%q appears %d times, want once", want, strings.Count(q, want))
		}
	}
	body := q[strings.Index(q, "WITH input"):]
	for _, left := range []string{"__shard__", "__n__", "__orders__", "shard_0000", "shard_0002"} {
		if strings.Contains(body, left) {
			t.Errorf("the statement holds %q", left)
		}
	}
}

// TestABatchOverManyShardsIsOneStatement: a burst over the 16 shards of
// two databases is committed one statement per transaction, transactions
// span several shards, and every order lands once, in its buyer's shard,
// with its one outbox row beside it.
func TestABatchOverManyShardsIsOneStatement(t *testing.T) {
	const buyers = 400
	cfg := testenv.Config(t, 16)
	trace := &batchSizes{open: map[*pgx.Conn]int{}}
	pools := tracedPools(t, cfg.DatabaseURLs, trace)
	m, err := shard.NewMap(cfg.Shards, len(pools))
	if err != nil {
		t.Fatal(err)
	}
	store := orderpg.New(pools, m, orderpg.Options{MaxBatch: 256, Workers: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- store.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sale := burstSale(t, ctx, store, pools[0], buyers)
	made := make([]order.Order, buyers)
	testenv.Burst(buyers, func(i int) {
		b, _ := order.ParseBuyerID(fmt.Sprintf("ms-%d", i))
		k, _ := order.ParseIdemKey("k")
		var err error
		if made[i], err = store.Create(ctx, order.NewOrder{Sale: sale, Buyer: b, Key: k, RequestHash: []byte("0123456789abcdef"),
			Qty: 1, Window: 15 * time.Minute, Deadline: time.Now().Add(time.Minute)}); err != nil {
			t.Errorf("buyer %d: %v", i, err)
		}
	})
	if n := trace.most(); n != 1 {
		t.Errorf("a commit sent %d statements; want one per transaction", n)
	}
	var spanning int
	for db, p := range pools {
		spanning += txSpanningShards(t, p, m.OnDatabase(db))
	}
	if spanning == 0 {
		t.Error("no transaction wrote to two shards: the burst was never batched across shards")
	}
	for i, o := range made {
		if o.ID.Int64() == 0 {
			continue
		}
		wantInShard(t, pools, m, o, fmt.Sprintf("ms-%d", i))
	}
}

// wantInShard checks that order o lives in buyer's shard alone, with one
// outbox row there.
func wantInShard(t *testing.T, pools []*pgxpool.Pool, m shard.Map, o order.Order, buyer string) {
	t.Helper()
	home := m.ForUser(buyer)
	for s := range shard.ID(m.Shards()) {
		var orders, events int
		err := pools[m.Database(s)].QueryRow(context.Background(), fmt.Sprintf(
			`SELECT (SELECT count(*) FROM %[1]s.orders WHERE id = $1), (SELECT count(*) FROM %[1]s.outbox WHERE aggregate_id = $1)`,
			s.Schema()), o.ID.Int64()).Scan(&orders, &events)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if s == home {
			want = 1
		}
		if orders != want || events != want {
			t.Errorf("order %d of %s: %d rows and %d outbox rows in shard %d, want %d", o.ID.Int64(), buyer, orders, events, s, want)
		}
	}
}

// txSpanningShards counts the transactions that wrote outbox rows to more
// than one of the shards.
func txSpanningShards(t *testing.T, p *pgxpool.Pool, shards []shard.ID) int {
	t.Helper()
	parts := make([]string, len(shards))
	for i, s := range shards {
		parts[i] = fmt.Sprintf("SELECT DISTINCT txid, %d AS shard FROM %s.outbox", s, s.Schema())
	}
	var n int
	q := "SELECT count(*) FROM (SELECT txid FROM (" + strings.Join(parts, " UNION ALL ") + ") x GROUP BY txid HAVING count(*) > 1) y"
	if err := p.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// burstSale creates a sale of stock units, all allotted.
func burstSale(t *testing.T, ctx context.Context, store *orderpg.Store, p *pgxpool.Pool, stock int) inventory.Sale {
	t.Helper()
	now := time.Now().UTC()
	sale, err := invpg.NewSaleStore(p).Create(ctx, inventory.NewSale{SKU: "M", Title: "Many shards", PriceCents: 100,
		Currency: "EUR", Stock: stock, PerUserLimit: 1, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Allot(ctx, sale.ID, stock); err != nil {
		t.Fatal(err)
	}
	return sale
}

// tracedPools opens a pool per URL whose connections report each
// pipeline's statements to trace; closed after the test.
func tracedPools(t *testing.T, urls []string, trace *batchSizes) []*pgxpool.Pool {
	t.Helper()
	pools := make([]*pgxpool.Pool, len(urls))
	for i, u := range urls {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		pc.ConnConfig.Tracer = trace
		if pools[i], err = pgxpool.NewWithConfig(context.Background(), pc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pools[i].Close)
	}
	return pools
}

// batchSizes records the number of statements of each pipeline (pgx's
// batch tracer); single queries it ignores.
type batchSizes struct {
	mu      sync.Mutex
	open    map[*pgx.Conn]int
	largest int
}

func (b *batchSizes) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (b *batchSizes) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (b *batchSizes) TraceBatchStart(ctx context.Context, c *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open[c] = 0
	return ctx
}

func (b *batchSizes) TraceBatchQuery(_ context.Context, c *pgx.Conn, _ pgx.TraceBatchQueryData) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open[c]++
}

func (b *batchSizes) TraceBatchEnd(_ context.Context, c *pgx.Conn, _ pgx.TraceBatchEndData) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.largest = max(b.largest, b.open[c])
	delete(b.open, c)
}

func (b *batchSizes) most() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.largest
}

// TestPlanKeepsAStatementsShardsWithinAChunk: a batch over a database of
// 40 shards is one statement per chunk of 16 it touches, a shard alone in
// its chunk gets its own statement, and every order is in exactly one.
func TestPlanKeepsAStatementsShardsWithinAChunk(t *testing.T) {
	shards := make([]shard.ID, 40)
	for i := range shards {
		shards[i] = shard.ID(2 * i) // database 0 of two
	}
	s := orderpg.NewStatements(shards)
	batch := []shard.ID{0, 2, 40, 2, 78, 30}
	parts := s.Plan(batch)
	if len(parts) != 3 {
		t.Fatalf("%d statements for shards %v; want 3 (chunks 0-30, 32-62, 64-78)", len(parts), batch)
	}
	seen := map[int]bool{}
	for _, p := range parts {
		for _, i := range p.Idx {
			if seen[i] {
				t.Errorf("order %d in two statements", i)
			}
			seen[i] = true
			if !strings.Contains(p.SQL, batch[i].Schema()+".orders") {
				t.Errorf("order %d of %s is sent to a statement without its shard", i, batch[i].Schema())
			}
		}
	}
	if len(seen) != len(batch) {
		t.Errorf("%d of %d orders planned", len(seen), len(batch))
	}
	if got := strings.Count(parts[0].SQL, ".orders\n"); got != 16 {
		t.Errorf("the first chunk's statement writes %d shards; want 16", got)
	}
	for _, p := range parts[1:] {
		if got := strings.Count(p.SQL, ".orders\n"); got != 1 {
			t.Errorf("a chunk the batch touches at one shard gets a statement over %d shards; want its own", got)
		}
	}
}
