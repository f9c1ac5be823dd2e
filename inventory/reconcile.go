package inventory

import (
	"context"
	"errors"
	"time"
)

// Reconciled counts what one reconciliation found.
type Reconciled struct {
	Confirmed     int // reservations whose order is durable
	Released      int // reservations without an order, given back
	UnitsReturned int // their units
	Pending       int // reservations younger than the grace period, left for a later round
}

// DuePage is a page of the queue of reservations to settle, read from its
// head: the stock keeps every reservation in that queue, in the order they
// were made, until the reconciler has settled it.
type DuePage struct {
	// Due are the page's reservations made before the cutoff and not yet
	// confirmed; the others it covers were settled already.
	Due []Held
	// Entries are the stock's own queue entries the page covers, handed
	// back to SettlePage to take them off the queue.
	Entries []string
	// Last: nothing made before the cutoff follows the page.
	Last bool
	// Waiting counts the queue's entries behind the page, when it is the
	// last: reservations younger than the cutoff.
	Waiting int
}

// duePage is how many reservations the reconciler settles at a time: a
// sale reserves tens of thousands a second in a long run, and a round that
// held them all at once made serve's memory swing every 30 s.
const duePage = 1000

// Reconcile compares the sale's Redis reservations with PostgreSQL's
// orders: a reservation older than the grace period with no order (its
// request crashed between reserve and commit) gives its units back; one
// with an order is marked confirmed. Commits carry a deadline shorter than
// the grace period, so an order can no longer appear for a reservation
// this returns.
func (s *Service) Reconcile(ctx context.Context, id SaleID) (Reconciled, error) {
	var out Reconciled
	err := s.fenced(ctx, id, func(sale Sale, token int64) error {
		if err := s.align(ctx, sale, token); err != nil {
			return err
		}
		var err error
		out, err = s.settle(ctx, id, token)
		return err
	})
	return out, err
}

// settle sweeps the sale once per process, then settles its queue a page
// at a time, oldest first, up to the first reservation still in its grace.
func (s *Service) settle(ctx context.Context, id SaleID, token int64) (Reconciled, error) {
	var out Reconciled
	if _, done := s.swept.Load(id); !done {
		if err := s.sweep(ctx, id, token, &out); err != nil {
			return out, err
		}
		s.swept.Store(id, true)
	}
	cutoff := s.now().Add(-s.grace)
	for {
		page, err := s.stock.DuePage(ctx, id, cutoff, duePage)
		if err != nil {
			return out, err
		}
		durable, err := s.settleDue(ctx, id, page.Due, token, &out)
		if err != nil {
			return out, err
		}
		if err := s.stock.SettlePage(ctx, id, page, durable, token); err != nil {
			return out, err
		}
		out.Confirmed += len(durable)
		if page.Last {
			out.Pending = page.Waiting
			return out, nil
		}
	}
}

// sweep settles every unconfirmed reservation of the sale past its grace,
// wherever it is: a reservation made before the queue existed (by an
// older version) is in no queue, so each process looks at the whole sale
// once before it trusts the queue alone.
func (s *Service) sweep(ctx context.Context, id SaleID, token int64, out *Reconciled) error {
	holds, err := s.stock.Unconfirmed(ctx, id)
	if err != nil {
		return err
	}
	cutoff := s.now().Add(-s.grace)
	var due []Held
	for _, h := range holds {
		if !h.At.After(cutoff) {
			due = append(due, h)
		}
	}
	for len(due) > 0 {
		n := min(len(due), duePage)
		durable, err := s.settleDue(ctx, id, due[:n], token, out)
		if err != nil {
			return err
		}
		if err := s.stock.ConfirmHolds(ctx, id, durable, token); err != nil {
			return err
		}
		out.Confirmed += len(durable)
		due = due[n:]
	}
	return nil
}

// settleDue gives back the units of the due reservations that have no
// order and returns those that have one. PostgreSQL is asked only about
// those whose commit the buy path did not tell of.
func (s *Service) settleDue(ctx context.Context, id SaleID, due []Held, token int64, out *Reconciled) ([]Held, error) {
	var durable, unknown []Held
	var keys []BuyerKey
	for _, h := range due {
		if h.Committed {
			durable = append(durable, h)
			continue
		}
		unknown = append(unknown, h)
		keys = append(keys, BuyerKey{h.Buyer, h.Key})
	}
	if len(keys) == 0 {
		return durable, nil
	}
	exists, err := s.orders.ExistingOrders(ctx, keys)
	if err != nil {
		return nil, err
	}
	for _, h := range unknown {
		if exists[BuyerKey{h.Buyer, h.Key}] {
			durable = append(durable, h)
			continue
		}
		n, _, err := s.stock.ReleaseFenced(ctx, id, h.Buyer, h.Key, true, token)
		if err != nil {
			return nil, err
		}
		out.Released++
		out.UnitsReturned += n
	}
	return durable, nil
}

// RunReconciler reconciles every live sale each interval until ctx ends;
// a sale whose lease another instance holds is skipped this round.
func (s *Service) RunReconciler(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.reconcileAll(ctx)
		}
	}
}

func (s *Service) reconcileAll(ctx context.Context) {
	ids, err := s.sales.Live(ctx, liveWindow)
	if err != nil {
		s.log.ErrorContext(ctx, "reconciler: list sales", "err", err)
		return
	}
	for _, id := range ids {
		r, err := s.Reconcile(ctx, id)
		switch {
		case errors.Is(err, ErrSaleBusy), ctx.Err() != nil:
		case err != nil:
			s.log.ErrorContext(ctx, "reconciler: sale failed", "sale_id", id.String(), "err", err)
		case r.Released > 0:
			s.log.WarnContext(ctx, "reconciler returned orphaned reservations", "sale_id", id.String(),
				"released", r.Released, "units", r.UnitsReturned)
		}
	}
}
