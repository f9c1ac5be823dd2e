package chaos

import (
	"context"
	"strconv"
	"time"
)

// gather waits for the service to settle, then reads every fact the
// checker judges: PostgreSQL, the API's remaining stock (Redis), the whole
// Kafka topic and the ledger.
func (r *Run) gather(ctx context.Context, buyers []Buyer) (Facts, error) {
	f := Facts{Buyers: buyers, EventsRead: true}
	r.mu.Lock()
	f.Windows = append([]Window(nil), r.windows...)
	f.Early = r.early
	r.mu.Unlock()
	books, err := r.books(ctx)
	if err != nil {
		return f, err
	}
	defer books.Close()
	if f.Stock, err = books.Stock(ctx); err != nil {
		return f, err
	}
	r.settle(ctx, books, &f)
	r.drain(ctx, books, &f)
	if f.Orders, err = books.Orders(ctx); err != nil {
		return f, err
	}
	events, err := CreatedEvents(ctx, r.Stack.KafkaBrokers[0], r.Topic, r.SaleID)
	if err != nil {
		r.Logf("%s: reading topic %s: %v", r.Name, r.Topic, err)
		f.EventsRead = false
	}
	f.Events = events
	f.Ledger = r.ledger(ctx, books, len(f.Orders))
	return f, nil
}

// settle waits past the reservation grace and a reconciler run after the
// fault was undone, then until units in live orders plus the remaining
// stock make the stock again.
func (r *Run) settle(ctx context.Context, b *Books, f *Facts) {
	r.mu.Lock()
	undone := r.undone
	r.mu.Unlock()
	if sleepUntil(ctx, undone.Add(ReservationGrace+ReconcileInterval)) != nil {
		return
	}
	timeout := CommitDeadline + ReservationGrace + 3*ReconcileInterval + 10*time.Second
	ok, took := poll(ctx, timeout, 500*time.Millisecond, func() bool {
		gap, rem, err := r.gap(ctx, b, f.Stock)
		if err == nil {
			f.Remaining = rem
		}
		return err == nil && gap == 0
	})
	f.Settled = ok
	r.Logf("%s: settled %t after %.1fs (remaining %d)", r.Name, ok, took.Seconds(), f.Remaining)
}

// gap is the units neither in a live order nor for sale (the API's
// remaining, read from any instance), and that remaining.
func (r *Run) gap(ctx context.Context, b *Books, stock int) (gap, remaining int, err error) {
	live, err := b.LiveUnits(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, in := range r.Insts {
		if remaining, err = Remaining(ctx, in.URL, r.SaleID); err == nil {
			return stock - live - remaining, remaining, nil
		}
	}
	return 0, 0, err
}

// watchBalance polls the gap from the fault's end for the scenario's
// Balanced, while the buyers run, and keeps what it found.
func (r *Run) watchBalance(ctx context.Context) {
	e := early{Within: r.Balanced, Gap: -1}
	defer func() {
		r.mu.Lock()
		r.early = e
		r.mu.Unlock()
	}()
	b, err := r.books(ctx)
	if err != nil {
		r.Logf("%s: balance after the fault: %v", r.Name, err)
		return
	}
	defer b.Close()
	stock, err := b.Stock(ctx)
	if err != nil {
		return
	}
	ok, took := poll(ctx, r.Balanced, 100*time.Millisecond, func() bool {
		gap, _, err := r.gap(ctx, b, stock)
		if err == nil {
			e.Gap = gap
		}
		return err == nil && gap == 0
	})
	e.Balanced = ok
	r.Logf("%s: balanced %t %.1fs after the fault was undone (gap %d)", r.Name, ok, took.Seconds(), e.Gap)
}

// books opens the scenario's databases for its sale.
func (r *Run) books(ctx context.Context) (*Books, error) {
	saleID, err := strconv.ParseInt(r.SaleID, 10, 64)
	if err != nil {
		return nil, err
	}
	b, err := OpenBooks(ctx, r.DBs)
	if err != nil {
		return nil, err
	}
	b.SaleID = saleID
	return b, nil
}

// drain waits for the relay to publish every outbox row.
func (r *Run) drain(ctx context.Context, b *Books, f *Facts) {
	f.Unpublished = -1 // never read
	ok, took := poll(ctx, 30*time.Second, 250*time.Millisecond, func() bool {
		n, err := b.Unpublished(ctx)
		if err == nil {
			f.Unpublished = n
		}
		return err == nil && n == 0
	})
	r.Logf("%s: outbox drained %t after %.1fs (%d rows left)", r.Name, ok, took.Seconds(), f.Unpublished)
}

// ledger waits until the inventory consumer has an entry for every order
// (bounded) and returns the entries per order.
func (r *Run) ledger(ctx context.Context, b *Books, orders int) map[int64]int {
	var got map[int64]int
	ok, took := poll(ctx, 30*time.Second, 500*time.Millisecond, func() bool {
		m, err := b.Ledger(ctx)
		if err != nil {
			return false
		}
		got = m
		return len(m) >= orders
	})
	r.Logf("%s: ledger caught up %t after %.1fs (%d of %d orders)", r.Name, ok, took.Seconds(), len(got), orders)
	if got == nil {
		got = map[int64]int{}
	}
	return got
}
