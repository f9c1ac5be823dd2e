package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ExpiryStore is the store side of the sweeper. A partition is one of the
// store's logical shards; the sweeper visits every one.
type ExpiryStore interface {
	// Partitions is the number of partitions, numbered from 0.
	Partitions() int
	// ExpireDue expires up to limit pending orders of the partition whose
	// expires_at has passed by the store's clock, each with its
	// OrderExpired event, in one statement, and returns them once that
	// committed. Rows another transaction holds are skipped, so sweepers
	// of several instances may run at once.
	ExpireDue(ctx context.Context, part, limit int) ([]Order, error)
	// RecentlyClosed lists, oldest first, the partition's cancelled and
	// expired orders closed within the last `within` by the store's
	// clock, limit at a time after the given one (nil: from the start).
	RecentlyClosed(ctx context.Context, part int, within time.Duration, after *Closed, limit int) ([]Closed, error)
}

// Closed is a cancelled or expired order with the store's time of its
// transition.
type Closed struct {
	Order
	ClosedAt time.Time
}

// ExpirerConfig tunes the sweeper; zero fields take the defaults.
type ExpirerConfig struct {
	Interval      time.Duration // between sweeps (1s)
	Batch         int           // most orders one statement expires, or one repair page lists (500)
	RepairEvery   time.Duration // between repair passes of Run (10s)
	RepairWindow  time.Duration // how far back the first repair pass after start looks (1h)
	RepairOverlap time.Duration // how far each later pass reaches back before the previous one began (1m)
}

func (c ExpirerConfig) withDefaults() ExpirerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Second)
	def(&c.RepairEvery, 10*time.Second)
	def(&c.RepairWindow, time.Hour)
	def(&c.RepairOverlap, time.Minute)
	if c.Batch <= 0 {
		c.Batch = 500
	}
	return c
}

// Swept counts what one sweep did.
type Swept struct {
	Expired       int // orders expired
	Repaired      int // closed orders whose units were still held and came back in the repair pass
	UnitsReturned int // units returned to stock by either pass
}

// Expirer is the sweeper: it expires unpaid orders whose payment window
// has closed and returns their units, and repairs releases lost between a
// transition's commit and its Redis call.
//
// Expiry. Each statement takes a bounded batch of due orders of one
// partition through the partial index on pending expiries, locks them with
// SKIP LOCKED and expires them with their events; the units go back to
// Redis only after that committed. The due test (expires_at <= now()) is
// PostgreSQL's, in the UPDATE itself, so a clock-skewed instance cannot
// expire an order early and a payment that committed first wins.
//
// Repair. A cancellation or expiry commits in PostgreSQL, then releases in
// Redis: a crash, a timeout or a Redis outage in between leaves the units
// held by a closed order. The repair pass lists the orders closed since
// shortly before its previous pass (RepairOverlap covers statements that
// committed after their now(); the first pass after start reaches back
// RepairWindow, covering an outage of every instance that long) and
// releases each again. The release is idempotent, keyed by buyer and
// idempotency key, so an order already released returns nothing; the
// sweeper also remembers the orders it released, so that it calls Redis
// about each closed order about once, not once per pass. Several instances
// repairing the same order is harmless for the same reason.
type Expirer struct {
	store   ExpiryStore
	stock   Stock
	soldOut SoldOut
	cfg     ExpirerConfig
	log     *slog.Logger

	mu       sync.Mutex         // one sweep at a time
	repaired []time.Time        // by partition: start of the last complete repair pass
	released []map[ID]time.Time // by partition: orders released by this sweeper, and when
	now      func() time.Time
}

// NewExpirer returns a sweeper over the store's partitions.
func NewExpirer(store ExpiryStore, stock Stock, soldOut SoldOut, cfg ExpirerConfig, log *slog.Logger) *Expirer {
	n := store.Partitions()
	e := &Expirer{store: store, stock: stock, soldOut: soldOut, cfg: cfg.withDefaults(), log: log,
		repaired: make([]time.Time, n), released: make([]map[ID]time.Time, n), now: time.Now}
	for i := range e.released {
		e.released[i] = map[ID]time.Time{}
	}
	return e
}

// Run sweeps every Interval, repairing every RepairEvery, until ctx ends.
func (e *Expirer) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	var lastRepair time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		repair := lastRepair.IsZero() || e.now().Sub(lastRepair) >= e.cfg.RepairEvery
		if repair {
			lastRepair = e.now()
		}
		out, err := e.sweep(ctx, repair)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			e.log.ErrorContext(ctx, "expiry sweep failed", "err", err)
		}
		if out.Repaired > 0 {
			e.log.WarnContext(ctx, "sweeper returned units of closed orders whose release was lost",
				"orders", out.Repaired)
		}
	}
}

// Sweep expires every due order and runs a repair pass, now.
func (e *Expirer) Sweep(ctx context.Context) (Swept, error) {
	return e.sweep(ctx, true)
}

func (e *Expirer) sweep(ctx context.Context, repair bool) (Swept, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out Swept
	err := e.expire(ctx, &out)
	if repair {
		err = errors.Join(err, e.repair(ctx, &out))
	}
	return out, err
}

// expire runs batches on each partition until one comes back short.
func (e *Expirer) expire(ctx context.Context, out *Swept) error {
	var errs []error
	for part := range e.store.Partitions() {
		for ctx.Err() == nil {
			orders, err := e.store.ExpireDue(ctx, part, e.cfg.Batch)
			if err != nil {
				// Had the statement committed unseen, the repair pass
				// returns its units.
				errs = append(errs, fmt.Errorf("order: expire partition %d: %w", part, err))
				break
			}
			out.Expired += len(orders)
			e.returnAll(ctx, part, orders, out)
			if len(orders) < e.cfg.Batch {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// returnAll releases the units of orders that just expired. It finishes
// even when ctx ends: the transitions committed.
func (e *Expirer) returnAll(ctx context.Context, part int, orders []Order, out *Swept) {
	if len(orders) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	for _, o := range orders {
		n, err := returnStock(rctx, e.stock, e.soldOut, o)
		if err != nil {
			e.log.ErrorContext(ctx, "release after expiry failed; the repair pass will return the units",
				"order_id", o.ID.String(), "sale_id", o.SaleID.String(), "err", err)
			continue
		}
		out.UnitsReturned += n
		e.released[part][o.ID] = e.now()
	}
}

// repair releases, again, the orders closed since shortly before the
// previous complete pass on each partition.
func (e *Expirer) repair(ctx context.Context, out *Swept) error {
	start := e.now()
	var errs []error
	for part := range e.store.Partitions() {
		if ctx.Err() != nil {
			break
		}
		within := e.cfg.RepairWindow
		if last := e.repaired[part]; !last.IsZero() {
			within = start.Sub(last) + e.cfg.RepairOverlap
		}
		if err := e.repairPartition(ctx, part, within, out); err != nil {
			errs = append(errs, fmt.Errorf("order: repair partition %d: %w", part, err))
			continue // the next pass reaches back to the last complete one
		}
		e.repaired[part] = start
		// What was released before the window of the next pass cannot be
		// listed again; twice the overlap absorbs clock drift.
		for id, at := range e.released[part] {
			if at.Before(start.Add(-2 * e.cfg.RepairOverlap)) {
				delete(e.released[part], id)
			}
		}
	}
	return errors.Join(errs...)
}

func (e *Expirer) repairPartition(ctx context.Context, part int, within time.Duration, out *Swept) error {
	var after *Closed
	var errs []error
	for {
		page, err := e.store.RecentlyClosed(ctx, part, within, after, e.cfg.Batch)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, c := range page {
			if _, done := e.released[part][c.ID]; done {
				continue
			}
			n, err := returnStock(ctx, e.stock, e.soldOut, c.Order)
			if err != nil {
				errs = append(errs, fmt.Errorf("release order %s: %w", c.ID, err))
				continue
			}
			if n > 0 {
				out.Repaired++
				out.UnitsReturned += n
			}
			e.released[part][c.ID] = e.now()
		}
		if len(page) < e.cfg.Batch {
			return errors.Join(errs...)
		}
		after = &page[len(page)-1]
	}
}
