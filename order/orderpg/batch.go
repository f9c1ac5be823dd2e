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
	inserted  bool
	id        order.ID
	createdAt time.Time
	expiresAt time.Time
}

// committer is the group commit of one database (internal/batch): each
// worker takes every order queued while its previous transaction was
// committing and commits them as one pipelined batch (one round trip, one
// implicit transaction, one fsync) holding one multi-row statement per
// shard.
type committer struct {
	pool     *pgxpool.Pool
	create   func(shard.ID) string
	onCommit func(shard.ID)
}

// commitTimeout bounds one batch; the orders' own commit deadline is
// enforced by PostgreSQL's clock inside the statement.
const commitTimeout = 5 * time.Second

// commit runs the batch as one implicit transaction.
func (b *committer) commit(ctx context.Context, orders []pending, out []batch.Result[result]) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	results, err := b.exec(ctx, orders)
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
			b.commit(ctx, orders[i:i+1], out[i:i+1])
		}
		return
	}
	for i := range orders {
		if err != nil {
			out[i].Err = translate(err)
			continue
		}
		out[i].Val = results[i]
	}
}

// exec commits the batch: the orders of each shard go into one statement,
// all statements into one pipeline ended by one Sync, which PostgreSQL runs
// as one implicit transaction.
func (b *committer) exec(ctx context.Context, orders []pending) ([]result, error) {
	groups := groupByShard(orders)
	var pb pgx.Batch
	for _, g := range groups {
		pb.Queue(b.create(g.shard), g.args()...)
	}
	br := b.pool.SendBatch(ctx, &pb)
	results := make([]result, len(orders))
	for _, g := range groups {
		if err := g.read(br, results); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("orderpg: commit batch: %w", err)
		}
	}
	// Close reads the pipeline's final ReadyForQuery: only now has the
	// implicit transaction committed, and only now may anyone hear "201".
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("orderpg: commit batch: %w", err)
	}
	for _, g := range groups {
		b.onCommit(g.shard)
	}
	return results, nil
}

// group is the orders of one shard in a batch, by their index in it.
type group struct {
	shard shard.ID
	idx   []int
	batch []pending
}

func groupByShard(orders []pending) []*group {
	var groups []*group
	byShard := map[shard.ID]*group{}
	for i, p := range orders {
		g, ok := byShard[p.shard]
		if !ok {
			g = &group{shard: p.shard, batch: orders}
			byShard[p.shard] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	return groups
}

// args are the statement's column arrays.
func (g *group) args() []any {
	n := len(g.idx)
	sales, qtys, amounts, windows := make([]int64, n), make([]int32, n), make([]int64, n), make([]int64, n)
	users, keys, currencies := make([]string, n), make([]string, n), make([]string, n)
	hashes, deadlines := make([][]byte, n), make([]time.Time, n)
	for j, i := range g.idx {
		o := g.batch[i].o
		sales[j], users[j], keys[j], hashes[j] = o.Sale.ID.Int64(), o.Buyer.String(), o.Key.String(), o.RequestHash
		qtys[j], amounts[j], currencies[j] = int32(o.Qty), o.Sale.PriceCents*int64(o.Qty), o.Sale.Currency
		windows[j], deadlines[j] = o.Window.Microseconds(), o.Deadline
	}
	return []any{sales, users, keys, hashes, qtys, amounts, currencies, windows, deadlines}
}

// read matches the inserted rows to the group's orders by (buyer, key);
// an order with no row was not inserted.
func (g *group) read(br pgx.BatchResults, results []result) error {
	byKey := make(map[string]int, len(g.idx))
	for _, i := range g.idx {
		o := g.batch[i].o
		byKey[o.Buyer.String()+"\x00"+o.Key.String()] = i
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var buyer, key string
		var r result
		if err := rows.Scan(&id, &buyer, &key, &r.createdAt, &r.expiresAt); err != nil {
			return err
		}
		i, ok := byKey[buyer+"\x00"+key]
		if !ok {
			return fmt.Errorf("row for an order not in the batch (%s)", buyer)
		}
		if r.id, err = order.NewID(id); err != nil {
			return err
		}
		r.inserted = true
		r.createdAt, r.expiresAt = r.createdAt.UTC(), r.expiresAt.UTC()
		results[i] = r
	}
	return rows.Err()
}
