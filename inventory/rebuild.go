package inventory

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"
)

// liveWindow is how long after its end a sale is still rebuilt and
// reconciled: its orders may still close and release units until then.
const liveWindow = time.Hour

// Rebuild makes Redis's state of the sale PostgreSQL's again: its live
// orders become reservations with their idempotency claims, reservations
// of closed orders go, and stock and the per-buyer counts are recomputed
// from what is held (see lua/rebuild.lua). It is idempotent and runs under
// the sale's lease; creating a sale and finding one missing use it too, so
// Redis never reloads a sale's original total over units already sold.
func (s *Service) Rebuild(ctx context.Context, id SaleID) (Rebuilt, error) {
	var out Rebuilt
	err := s.fenced(ctx, id, func(sale Sale, token int64) (err error) {
		out, err = s.rebuildLocked(ctx, sale, token)
		return err
	})
	return out, err
}

// rebuildLocked rebuilds the sale; the caller holds its lease and has
// written token to sales.fence.
//
// An order that closes between the read of the live orders and the script
// may have had its release run before the script put its reservation
// back; the second read finds it closed and releases it again (releases
// are idempotent), so no units stay held by a closed order.
func (s *Service) rebuildLocked(ctx context.Context, sale Sale, token int64) (Rebuilt, error) {
	live, err := s.orders.LiveOrders(ctx, sale.ID)
	if err != nil {
		return Rebuilt{}, err
	}
	if err := s.rememberClosed(ctx, sale.ID); err != nil {
		return Rebuilt{}, err
	}
	out, err := s.stock.Rebuild(ctx, sale, live, token)
	if err != nil || out.Added == 0 {
		return out, err
	}
	still, err := s.orders.LiveOrders(ctx, sale.ID)
	if err != nil {
		return out, err
	}
	return s.releaseClosed(ctx, sale.ID, live, still, token, out)
}

// releaseClosed releases the orders of before that are not in after.
func (s *Service) releaseClosed(ctx context.Context, id SaleID, before, after []LiveOrder, token int64, out Rebuilt) (Rebuilt, error) {
	open := make(map[BuyerKey]bool, len(after))
	for _, o := range after {
		open[BuyerKey{o.Buyer, o.Key}] = true
	}
	for _, o := range before {
		if open[BuyerKey{o.Buyer, o.Key}] {
			continue
		}
		// The claim stays: a retry of the order's request still replays it.
		n, left, err := s.stock.ReleaseFenced(ctx, id, o.Buyer, o.Key, false, token)
		if err != nil {
			return out, err
		}
		if n > 0 {
			out.Released++
			out.Stock = left
		}
	}
	return out, nil
}

// RebuildAll rebuilds every sale that ended less than an hour ago or has
// not ended, and reports how many it rebuilt; a sale it could not rebuild
// (its lease busy, a store failing) is in the error.
func (s *Service) RebuildAll(ctx context.Context) (int, error) {
	ids, err := s.sales.Live(ctx, liveWindow)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, id := range ids {
		r, err := s.Rebuild(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("sale %s: %w", id, err))
			continue
		}
		n++
		if r.Added+r.Dropped+r.Released > 0 {
			s.log.WarnContext(ctx, "rebuilt a sale Redis had lost writes of", "sale_id", id.String(),
				"added", r.Added, "dropped", r.Dropped, "released", r.Released, "stock", r.Stock)
		}
	}
	return n, errors.Join(errs...)
}

// align brings an existing sale's total in Redis up to PostgreSQL's, and
// rebuilds a sale Redis lost; the caller holds the lease and has written
// token to sales.fence.
func (s *Service) align(ctx context.Context, sale Sale, token int64) error {
	_, err := s.stock.Warm(ctx, sale, token)
	if errors.Is(err, ErrSaleNotFound) {
		_, err = s.rebuildLocked(ctx, sale, token)
	}
	return err
}

// rememberClosed puts the keys of the sale's closed orders back among the
// keys that may have an order, which the live stock may have lost.
func (s *Service) rememberClosed(ctx context.Context, id SaleID) error {
	keys, err := s.orders.ClosedKeys(ctx, id)
	if err != nil || len(keys) == 0 {
		return err
	}
	return s.stock.RememberClosed(ctx, id, keys)
}
