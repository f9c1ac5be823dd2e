package orderpg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/order"
)

// ErrStopped is returned for an order submitted after the store stopped.
var ErrStopped = errors.New("orderpg: store stopped")

// pending is one order waiting for its commit.
type pending struct {
	sql  string
	args []any
	done chan result // buffered: the committer never blocks on a caller
}

type result struct {
	inserted  bool
	id        order.ID
	createdAt time.Time
	expiresAt time.Time
	err       error
}

// batcher is the group commit of one database: each worker takes every
// order queued while the previous transaction was committing and commits
// them as one pipelined batch (one round trip, one implicit transaction,
// one fsync). Under light load a batch is one order and nothing waits; under
// a burst batches grow up to max.
type batcher struct {
	pool    *pgxpool.Pool
	queue   chan *pending
	max     int
	workers int
	stopped chan struct{}
}

func newBatcher(pool *pgxpool.Pool, maxBatch, workers int) *batcher {
	return &batcher{pool: pool, queue: make(chan *pending, maxBatch*workers*4), max: maxBatch, workers: workers,
		stopped: make(chan struct{})}
}

// submit queues p and waits for its outcome. It keeps waiting when ctx is
// cancelled: once queued the order may commit, and the caller must not
// return its stock unless it knows the order did not.
func (b *batcher) submit(ctx context.Context, p *pending) (result, error) {
	select {
	case b.queue <- p:
	case <-b.stopped:
		return result{}, ErrStopped
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	select {
	case r := <-p.done:
		return r, r.err
	case <-b.stopped:
		select {
		case r := <-p.done:
			return r, r.err
		default:
			return result{}, ErrStopped
		}
	}
}

func (b *batcher) run(ctx context.Context) {
	done := make(chan struct{})
	for range b.workers {
		go func() { b.work(ctx); done <- struct{}{} }()
	}
	for range b.workers {
		<-done
	}
	close(b.stopped)
}

func (b *batcher) work(ctx context.Context) {
	batch := make([]*pending, 0, b.max)
	for {
		select {
		case p := <-b.queue:
			batch = b.fill(append(batch[:0], p))
		case <-ctx.Done():
			// Commit what is already queued, then stop.
			for batch = b.fill(batch[:0]); len(batch) > 0; batch = b.fill(batch[:0]) {
				b.commit(context.WithoutCancel(ctx), batch)
			}
			return
		}
		b.commit(context.WithoutCancel(ctx), batch)
	}
}

// fill adds whatever is queued, without waiting, up to max.
func (b *batcher) fill(batch []*pending) []*pending {
	for len(batch) < b.max {
		select {
		case p := <-b.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// commitTimeout bounds one batch; the orders' own commit deadline is
// enforced by PostgreSQL's clock inside the statement.
const commitTimeout = 5 * time.Second

// commit runs the batch as one implicit transaction.
func (b *batcher) commit(ctx context.Context, batch []*pending) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	results, err := b.exec(ctx, batch)
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) {
		// A network error or timeout leaves the outcome unknown: the
		// transaction may have committed. Nobody may return the stock now;
		// the reconciler settles it against what PostgreSQL holds.
		for _, p := range batch {
			p.done <- result{err: fmt.Errorf("%w: %w", order.ErrCommitUnknown, err)}
		}
		return
	}
	if err != nil && len(batch) > 1 {
		// PostgreSQL refused the batch, so none of it committed: retry each
		// order alone so one bad order cannot sink the others.
		for _, p := range batch {
			b.commit(ctx, []*pending{p})
		}
		return
	}
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: translate(err)}
			continue
		}
		p.done <- results[i]
	}
}

func (b *batcher) exec(ctx context.Context, batch []*pending) ([]result, error) {
	var pb pgx.Batch
	for _, p := range batch {
		pb.Queue(p.sql, p.args...)
	}
	br := b.pool.SendBatch(ctx, &pb)
	results := make([]result, len(batch))
	for i := range batch {
		var id int64
		r := &results[i]
		err := br.QueryRow().Scan(&id, &r.createdAt, &r.expiresAt)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("orderpg: commit batch: %w", err)
		}
		r.inserted = true
		r.id, err = order.ParseID(fmt.Sprint(id))
		if err != nil {
			_ = br.Close()
			return nil, err
		}
		r.createdAt, r.expiresAt = r.createdAt.UTC(), r.expiresAt.UTC()
	}
	// Close reads the pipeline's final ReadyForQuery: only now has the
	// implicit transaction committed, and only now may anyone hear "201".
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("orderpg: commit batch: %w", err)
	}
	return results, nil
}
