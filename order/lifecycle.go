package order

import (
	"context"
	"time"
)

// releaseTimeout bounds the Redis call that returns a closed order's units.
// It runs detached from the caller's context: the transition has committed,
// and a client that hung up must not keep the units away.
const releaseTimeout = 5 * time.Second

// Pay confirms the payment of the buyer's pending order (it stands in for
// the payment provider's confirmation). The transition and its OrderPaid
// event commit together; payment and expiry race on one conditional UPDATE,
// so exactly one of them wins. Another buyer's order is ErrNotFound; an
// order no longer pending, or whose payment window has closed, is
// ErrNotTransitable.
func (s *Service) Pay(ctx context.Context, buyer BuyerID, id ID) (Order, error) {
	return s.store.Pay(ctx, buyer, id)
}

// Cancel cancels the buyer's pending order and returns its units to stock.
// The transition and its OrderCancelled event commit first; only then are
// the units released, once, however often the release runs. A crash or a
// Redis failure between the commit and the release leaves the units held
// until the sweeper's repair pass releases them (see Expirer).
func (s *Service) Cancel(ctx context.Context, buyer BuyerID, id ID) (Order, error) {
	o, err := s.store.Cancel(ctx, buyer, id)
	if err != nil {
		return Order{}, err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if _, err := returnStock(rctx, s.stock, s.soldOut, o); err != nil {
		// The cancellation stands; the repair pass returns the units.
		s.log.ErrorContext(ctx, "release after cancel failed; the sweeper's repair pass will return the units",
			"order_id", o.ID.String(), "sale_id", o.SaleID.String(), "err", err)
	}
	return o, nil
}

// returnStock gives a cancelled or expired order's units back to Redis. The
// release is keyed by buyer and idempotency key and removes the
// reservation it returns, so a second call returns nothing. The claim is
// kept (forget=false): a retry of the original POST still replays the
// order. When units came back the sale reopens here at once; the release
// script announces it to every other instance.
func returnStock(ctx context.Context, stock Stock, soldOut SoldOut, o Order) (int, error) {
	n, err := stock.Release(ctx, o.SaleID, o.Buyer.String(), o.Key.String(), false)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		soldOut.Reopen(o.SaleID)
	}
	return n, nil
}
