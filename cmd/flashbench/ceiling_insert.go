package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale"
	"flashsale/config"
	"flashsale/dbschema"
	"flashsale/internal/batch"
	"flashsale/order/orderpg"
	"flashsale/shard"
)

// newOrder is one order of the insert ceiling, as the order store sends it
// to sql/order_create.sql.
type newOrder struct {
	shard      shard.ID
	sale       int64
	buyer, key string
	hash       []byte
	qty        int32
	price      int64
	currency   string
	window     time.Duration
	deadline   time.Time
}

// groupCommit commits orders the way the service's order store does: per
// database, the shared group commit (internal/batch) with workers
// transactions in flight, each batch the sql/order_create.sql statements
// orderpg plans for it (orderpg.Statements: one, unless the batch spans
// more than one chunk of shards), taking units from the worker's allotment
// slot; one Sync makes it one implicit transaction.
type groupCommit struct {
	pools    []*pgxpool.Pool
	m        shard.Map
	creates  []*orderpg.Statements // by database
	batchers []*batch.Batcher[newOrder, bool]
}

func newGroupCommit(pools []*pgxpool.Pool, m shard.Map, maxBatch, workers int) *groupCommit {
	g := &groupCommit{pools: pools, m: m}
	for db, p := range pools {
		g.creates = append(g.creates, orderpg.NewStatements(m.OnDatabase(db)))
		slots := make(chan int, workers)
		for w := range workers {
			slots <- w % orderpg.AllotSlots
		}
		flush := func(ctx context.Context, orders []newOrder, out []batch.Result[bool]) {
			slot := <-slots
			defer func() { slots <- slot }()
			g.commit(ctx, p, g.creates[db], orders, out, slot)
		}
		g.batchers = append(g.batchers, batch.New(flush, max(1, maxBatch), max(1, workers)))
	}
	return g
}

// Run commits queued orders until ctx ends.
func (g *groupCommit) Run(ctx context.Context) {
	done := make(chan struct{})
	for _, b := range g.batchers {
		go func() { b.Run(ctx); done <- struct{}{} }()
	}
	for range g.batchers {
		<-done
	}
}

// Create commits o with its outbox row; false when the statement did not
// create it (late, no stock, duplicate).
func (g *groupCommit) Create(ctx context.Context, o newOrder) (bool, error) {
	o.shard = g.m.ForUser(o.buyer)
	return g.batchers[g.m.Database(o.shard)].Do(ctx, o)
}

// allot gives the sale units in every allotment slot of every database
// (sql/allot_init.sql), so that no commit runs short.
func (g *groupCommit) allot(ctx context.Context, sale, units int64) error {
	q := flashsale.SQL.AllotInit
	for _, p := range g.pools {
		for slot := range orderpg.AllotSlots {
			if _, err := p.Exec(ctx, q, sale, slot, units, 0); err != nil {
				return fmt.Errorf("allot: %w", err)
			}
		}
	}
	return nil
}

// commit runs one batch of one database in slot.
func (g *groupCommit) commit(ctx context.Context, p *pgxpool.Pool, creates *orderpg.Statements, orders []newOrder,
	out []batch.Result[bool], slot int) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	shardOf := make([]shard.ID, len(orders))
	for i, o := range orders {
		shardOf[i] = o.shard
	}
	parts := creates.Plan(shardOf)
	var pb pgx.Batch
	for _, pt := range parts {
		pb.Queue(pt.SQL, orderArgs(orders, pt.Idx, slot)...)
	}
	err := readCreated(p.SendBatch(ctx, &pb), orders, parts, out)
	for i := range out {
		out[i].Err = err
	}
}

// orderArgs are order_create.sql's arguments for the orders at idx: the
// column arrays, the allotment slot and each order's shard.
func orderArgs(orders []newOrder, idx []int, slot int) []any {
	n := len(idx)
	sales, qtys, amounts, windows := make([]int64, n), make([]int32, n), make([]int64, n), make([]int64, n)
	users, keys, currencies := make([]string, n), make([]string, n), make([]string, n)
	hashes, deadlines, shards := make([][]byte, n), make([]time.Time, n), make([]int32, n)
	for j, i := range idx {
		o := orders[i]
		sales[j], users[j], keys[j], hashes[j] = o.sale, o.buyer, o.key, o.hash
		qtys[j], amounts[j], currencies[j] = o.qty, o.price*int64(o.qty), o.currency
		windows[j], deadlines[j], shards[j] = o.window.Microseconds(), o.deadline, int32(o.shard)
	}
	return []any{sales, users, keys, hashes, qtys, amounts, currencies, windows, deadlines, int16(slot), shards}
}

// readCreated marks the orders the statements created; closing the
// batch reads the pipeline's end: only then has the transaction committed.
func readCreated(br pgx.BatchResults, orders []newOrder, parts []orderpg.Part, out []batch.Result[bool]) error {
	for _, pt := range parts {
		if err := readPart(br, orders, pt.Idx, out); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

// readPart reads one statement's rows: "created" with the order's buyer
// and key for each order it inserted.
func readPart(br pgx.BatchResults, orders []newOrder, idx []int, out []batch.Result[bool]) error {
	byKey := make(map[string]int, len(idx))
	for _, i := range idx {
		byKey[field(orders[i].buyer, orders[i].key)] = i
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var outcome, buyer, key string
		var id *int64
		var created, expires *time.Time
		if err := rows.Scan(&outcome, &id, &buyer, &key, &created, &expires); err != nil {
			return err
		}
		i, ok := byKey[field(buyer, key)]
		if !ok {
			return fmt.Errorf("a row for an order not in the batch (%s)", buyer)
		}
		out[i].Val = outcome == "created"
	}
	return rows.Err()
}

// insertCeiling commits orders with their outbox rows through the order
// store's statement and group commit alone (the service's batch size and
// workers per database and pool size) on scratch databases of the same
// PostgreSQL server, laid out and migrated like the service's: the
// ceiling's tens of thousands of orders then reach neither the service's
// relay nor Kafka nor the consumers. The scratch databases are dropped
// afterwards.
func insertCeiling(ctx context.Context, cfg *config.Config, vus int, dur time.Duration, watch []Watched) Phase {
	what := fmt.Sprintf("sql/order_create.sql (order + outbox row, group commit of up to %d, %d workers per database, as orderpg.Store.Create) on %d scratch databases of the same server, %d shards",
		cfg.CommitBatch, cfg.CommitWorkers, len(cfg.DatabaseURLs), cfg.Shards)
	fail := func(err error) Phase { return Phase{Name: "insert", What: what, Error: err.Error()} }
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		return fail(err)
	}
	urls, drop, err := scratchDatabases(ctx, cfg.DatabaseURLs)
	if err != nil {
		return fail(err)
	}
	defer drop()
	if err := dbschema.New(urls, m).Up(ctx); err != nil {
		return fail(fmt.Errorf("migrate the scratch databases: %w", err))
	}
	pools, err := openPools(ctx, urls, cfg.DBMaxConns)
	defer closePools(pools)
	if err != nil {
		return fail(err)
	}
	store := newGroupCommit(pools, m, cfg.CommitBatch, cfg.CommitWorkers)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { store.Run(sctx); close(done) }()
	defer func() { stop(); <-done }()
	// The sale exists only in the allotments: the ceiling measures what a
	// commit costs PostgreSQL, allotment check included.
	if err := store.allot(ctx, 1, 1<<36); err != nil {
		return fail(err)
	}
	return runPhase(ctx, "insert", what, vus, dur, OutOK, watch, insertOp(store))
}

// insertOp creates one order of a new key per call.
func insertOp(store *groupCommit) Op {
	var fails atomic.Int64
	return func(ctx context.Context, seq int64) (Outcome, time.Time) {
		sent := time.Now()
		ok, err := store.Create(ctx, newOrder{sale: 1, buyer: "fbc-" + strconv.FormatInt(seq%100_000, 10),
			key: "fbc-" + strconv.FormatInt(seq, 36), hash: []byte("flashbench"), qty: 1, price: 100, currency: "EUR",
			window: 15 * time.Minute, deadline: time.Now().Add(10 * time.Second)})
		if err != nil || !ok {
			if fails.Add(1) == 1 {
				slog.Warn("insert ceiling: create failed", "created", ok, "err", err)
			}
			return OutOther, sent
		}
		return OutOK, sent
	}
}

// openPools opens a pool of at most maxConns connections per URL; the
// pools opened are returned with the error too, for closePools.
func openPools(ctx context.Context, urls []string, maxConns int) ([]*pgxpool.Pool, error) {
	var pools []*pgxpool.Pool
	for _, u := range urls {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			return pools, err
		}
		pc.MaxConns = int32(maxConns)
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return pools, err
		}
		pools = append(pools, p)
	}
	return pools, nil
}

func closePools(pools []*pgxpool.Pool) {
	for _, p := range pools {
		p.Close()
	}
}
