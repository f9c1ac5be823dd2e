package orderpg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/internal/batch"
	"flashsale/inventory"
	"flashsale/order"
	"flashsale/shard"
)

// ErrStopped is returned for an order submitted after the store stopped.
var ErrStopped = batch.ErrStopped

// pending is one order waiting for its commit.
type pending struct {
	shard shard.ID
	o     order.NewOrder
}

type result struct {
	outcome   string // one of the outcome constants
	slot      int    // the allotment slot the order's transaction used
	id        order.ID
	createdAt time.Time
	expiresAt time.Time
}

// What sql/order_create.sql says of each order.
const (
	outcomeCreated   = "created"
	outcomeLate      = "late"      // its reservation outlived the commit deadline
	outcomeNoStock   = "no-stock"  // this database's allotment of the sale lacks its units
	outcomeDuplicate = "duplicate" // the buyer's key already made an order
)

// committer is the group commit of one database (internal/batch): each
// worker takes every order queued while its previous transaction was
// committing and commits them with one statement (one round trip, one
// implicit transaction, one fsync) over the shards they belong to.
type committer struct {
	pool     *pgxpool.Pool
	creates  *Statements
	onCommit func(shard.ID)
	// slots hands each transaction in flight an allotment slot of its
	// own, so that concurrent commits lock different allotment rows.
	slots chan int
	db    int // this committer's database, in shard-map order
	// refill moves need free units of a sale onto an allotment of this
	// database (Store.refillUnits); nil: short orders are left to Create.
	refill func(ctx context.Context, sale inventory.SaleID, need int64, to pot) error
}

// newCommitter returns the group commit of one database, whose workers
// transactions take the allotment slots from first on (modulo AllotSlots).
func newCommitter(pool *pgxpool.Pool, creates *Statements, onCommit func(shard.ID), workers, first int) *committer {
	c := &committer{pool: pool, creates: creates, onCommit: onCommit, slots: make(chan int, workers)}
	for w := range workers {
		c.slots <- (first + w) % AllotSlots
	}
	return c
}

// commitTimeout bounds one batch; the orders' own commit deadline is
// enforced by PostgreSQL's clock inside the statement.
const commitTimeout = 5 * time.Second

// commit runs the batch as one implicit transaction, in a slot no other
// transaction of this committer uses meanwhile.
func (b *committer) commit(ctx context.Context, orders []pending, out []batch.Result[result]) {
	slot := <-b.slots // never waits: there are as many slots as workers
	defer func() { b.slots <- slot }()
	b.commitIn(ctx, orders, out, slot)
	b.refillShort(ctx, orders, out, slot)
}

// refillShort gives the orders its allotment was short for one refill per
// sale, for their units together, and one more commit together, in the
// same slot. Near a sale's end whole batches come back short: each order
// moving units and committing alone would queue them on the slot's row
// lock, one fsync each. What is still short goes one order at a time
// (Store.Create), as before.
func (b *committer) refillShort(ctx context.Context, orders []pending, out []batch.Result[result], slot int) {
	var short []int
	for i := range out {
		if out[i].Err == nil && out[i].Val.outcome == outcomeNoStock {
			short = append(short, i)
		}
	}
	if len(short) < 2 || b.refill == nil {
		return
	}
	need := map[inventory.SaleID]int64{}
	for _, i := range short {
		need[orders[i].o.Sale.ID] += int64(orders[i].o.Qty)
	}
	refilled := make(map[inventory.SaleID]bool, len(need))
	for sale, n := range need {
		// A sale refused here (too few units for all) leaves its orders to
		// Create, which tries each alone.
		refilled[sale] = b.refill(ctx, sale, n, pot{b.db, slot}) == nil
	}
	var again []pending
	var at []int
	for _, i := range short {
		if refilled[orders[i].o.Sale.ID] {
			again, at = append(again, orders[i]), append(at, i)
		}
	}
	if len(again) == 0 {
		return
	}
	res := make([]batch.Result[result], len(again))
	b.commitIn(ctx, again, res, slot)
	for j, i := range at {
		out[i] = res[j]
	}
}

// overAllotted tells the refusal of CHECK allotments_within: a commit
// would have taken an allotment past what it was given. The statement
// grants only what the allotment it locked holds, so this is the net
// under it when a concurrent commit raced its read.
func overAllotted(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23514" && pg.ConstraintName == "allotments_within"
}

// alone commits one order by itself in slot, outside the group commit: an
// order whose allotment was short, once units moved there.
func (b *committer) alone(ctx context.Context, p pending, slot int) (result, error) {
	out := make([]batch.Result[result], 1)
	b.commitIn(ctx, []pending{p}, out, slot)
	return out[0].Val, out[0].Err
}

// commitIn runs the batch as one implicit transaction that takes its
// units from the allotments of slot.
func (b *committer) commitIn(ctx context.Context, orders []pending, out []batch.Result[result], slot int) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	results, err := b.exec(ctx, orders, slot)
	if err != nil && notSent(err) {
		// Nothing reached the server (no connection, dial refused): the
		// batch certainly did not commit, so its units may go back now.
		for i := range orders {
			out[i].Err = unavailable(err)
		}
		return
	}
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) {
		// A network error or timeout leaves the outcome unknown: the
		// transaction may have committed. Nobody may return the stock now;
		// the reconciler settles it against what PostgreSQL holds.
		for i := range orders {
			out[i].Err = fmt.Errorf("%w: %w", order.ErrCommitUnknown, err)
		}
		return
	}
	if err != nil && len(orders) > 1 {
		// PostgreSQL refused the batch, so none of it committed: retry each
		// order alone so one bad order cannot sink the others.
		for i := range orders {
			b.commitIn(ctx, orders[i:i+1], out[i:i+1], slot)
		}
		return
	}
	for i := range orders {
		switch {
		case overAllotted(err):
			// Its allotment could not hold it after all (the CHECK under
			// the statement's own test): this order wants units moved.
			out[i].Val = result{outcome: outcomeNoStock, slot: slot}
		case err != nil:
			out[i].Err = translate(err)
		default:
			out[i].Val = results[i]
		}
	}
}

// exec commits the batch with one statement per chunk of shards it
// touches (one, mostly), all in one pipeline ended by one Sync, which
// PostgreSQL runs as one implicit transaction.
func (b *committer) exec(ctx context.Context, orders []pending, slot int) ([]result, error) {
	shardOf := make([]shard.ID, len(orders))
	for i, o := range orders {
		shardOf[i] = o.shard
	}
	parts := b.creates.Plan(shardOf)
	var pb pgx.Batch
	for _, p := range parts {
		pb.Queue(p.SQL, createArgs(orders, p.Idx, slot)...)
	}
	br := b.pool.SendBatch(ctx, &pb)
	results := make([]result, len(orders))
	for _, p := range parts {
		if err := readCreated(br, orders, p.Idx, results, slot); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("orderpg: commit batch: %w", err)
		}
	}
	// Close reads the pipeline's final ReadyForQuery: only now has the
	// implicit transaction committed, and only now may anyone hear "201".
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("orderpg: commit batch: %w", err)
	}
	created := map[shard.ID]bool{} // a shard whose orders were all refused has no new outbox row
	for i, r := range results {
		if r.outcome == outcomeCreated && !created[orders[i].shard] {
			created[orders[i].shard] = true
			b.onCommit(orders[i].shard)
		}
	}
	return results, nil
}

// createArgs are the statement's column arrays for the orders at idx, the
// allotment slot and each order's shard.
func createArgs(orders []pending, idx []int, slot int) []any {
	n := len(idx)
	sales, qtys, amounts, windows := make([]int64, n), make([]int32, n), make([]int64, n), make([]int64, n)
	users, keys, currencies := make([]string, n), make([]string, n), make([]string, n)
	hashes, deadlines, shards := make([][]byte, n), make([]time.Time, n), make([]int32, n)
	for j, i := range idx {
		o := orders[i].o
		sales[j], users[j], keys[j], hashes[j] = o.Sale.ID.Int64(), o.Buyer.String(), o.Key.String(), o.RequestHash
		qtys[j], amounts[j], currencies[j] = int32(o.Qty), o.Sale.PriceCents*int64(o.Qty), o.Sale.Currency
		windows[j], deadlines[j], shards[j] = o.Window.Microseconds(), o.Deadline, int32(orders[i].shard)
	}
	return []any{sales, users, keys, hashes, qtys, amounts, currencies, windows, deadlines, int16(slot), shards}
}

// readCreated matches one statement's rows to its orders (at idx) by
// (buyer, key): a row says an order was created or refused; an order with
// no row was a duplicate of one that exists.
func readCreated(br pgx.BatchResults, orders []pending, idx []int, results []result, slot int) error {
	byKey := make(map[string]int, len(idx))
	for _, i := range idx {
		o := orders[i].o
		byKey[o.Buyer.String()+"\x00"+o.Key.String()] = i
		results[i] = result{outcome: outcomeDuplicate, slot: slot}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id *int64
		var buyer, key string
		var created, expires *time.Time
		r := result{slot: slot}
		if err := rows.Scan(&r.outcome, &id, &buyer, &key, &created, &expires); err != nil {
			return err
		}
		i, ok := byKey[buyer+"\x00"+key]
		if !ok {
			return fmt.Errorf("row for an order not in the batch (%s)", buyer)
		}
		if r.outcome == outcomeCreated {
			if r.id, err = order.NewID(*id); err != nil {
				return err
			}
			r.createdAt, r.expiresAt = created.UTC(), expires.UTC()
		}
		results[i] = r
	}
	return rows.Err()
}
