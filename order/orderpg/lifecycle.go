package orderpg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"flashsale/order"
	"flashsale/shard"
)

// Pay moves the buyer's pending order, inside its payment window, to paid
// with its OrderPaid event, in one statement on the order's shard.
func (s *Store) Pay(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return s.transition(ctx, buyer, id, func(q queries) string { return q.pay })
}

// Cancel moves the buyer's pending order to cancelled with its
// OrderCancelled event (reason buyer), in one statement on the order's
// shard.
func (s *Store) Cancel(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return s.transition(ctx, buyer, id, func(q queries) string { return q.cancel }, order.ReasonBuyer)
}

// transition runs one conditional UPDATE of the order with its outbox row.
// A successful Scan has read the statement's ReadyForQuery, so the
// implicit transaction committed.
func (s *Store) transition(ctx context.Context, buyer order.BuyerID, id order.ID, sql func(queries) string, extra ...any) (order.Order, error) {
	sh, ok := s.m.ForOrder(id.Int64())
	if !ok || sh != s.m.ForUser(buyer.String()) {
		// Every order of a buyer lives on the buyer's shard.
		return order.Order{}, order.ErrNotFound
	}
	args := append([]any{id.Int64(), buyer.String()}, extra...)
	o, err := scanOrder(s.pools[s.m.Database(sh)].QueryRow(ctx, sql(s.q[sh]), args...))
	switch {
	case err == nil:
		s.committed(sh)
		return o, nil
	case errors.Is(err, order.ErrNotFound):
		return order.Order{}, s.whyNotTransitioned(ctx, buyer, id)
	default:
		return order.Order{}, unknownOutcome(err)
	}
}

// whyNotTransitioned reads the order after a transition matched no row:
// not the buyer's, or no longer pending, or (for a payment) past its
// window. It reads with a fresh snapshot, so it sees the transition that
// won.
func (s *Store) whyNotTransitioned(ctx context.Context, buyer order.BuyerID, id order.ID) error {
	o, err := s.Get(ctx, id)
	switch {
	case err != nil:
		return err
	case o.Buyer != buyer:
		return order.ErrNotFound
	case o.Status != order.StatusPendingPayment:
		return fmt.Errorf("%w: the order is %s", order.ErrNotTransitable, o.Status)
	default:
		return fmt.Errorf("%w: the payment window closed at %s", order.ErrNotTransitable,
			o.ExpiresAt.Format(time.RFC3339))
	}
}

// unknownOutcome marks an error after which the statement may have
// committed: nothing but PostgreSQL's own refusal, or a failure before any
// byte was sent, says it did not.
func unknownOutcome(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) || notSent(err) {
		return err
	}
	return fmt.Errorf("%w: %w", order.ErrCommitUnknown, err)
}

// Partitions is the number of logical shards; the sweeper visits each.
func (s *Store) Partitions() int { return s.m.Shards() }

// ExpireDue expires up to limit due orders of logical shard part, each with
// its OrderExpired event, in one statement, and returns them once it
// committed.
func (s *Store) ExpireDue(ctx context.Context, part, limit int) ([]order.Order, error) {
	sh := shard.ID(part)
	rows, err := s.pools[s.m.Database(sh)].Query(ctx, s.q[sh].expire, limit)
	if err != nil {
		return nil, fmt.Errorf("orderpg: expire: %w", err)
	}
	// CollectRows reads up to ReadyForQuery: no error means committed.
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, fmt.Errorf("orderpg: expire: %w", err)
	}
	if len(orders) > 0 {
		s.committed(sh)
	}
	return orders, nil
}

// RecentlyClosed lists the expired and buyer-cancelled orders of logical
// shard part closed within the last `within`, oldest first, limit after
// the given one.
func (s *Store) RecentlyClosed(ctx context.Context, part int, within time.Duration, after *order.Closed, limit int) ([]order.Closed, error) {
	sh := shard.ID(part)
	var afterAt any
	var afterID int64
	if after != nil {
		afterAt, afterID = after.ClosedAt, after.ID.Int64()
	}
	rows, err := s.pools[s.m.Database(sh)].Query(ctx, s.q[sh].closed, within, afterAt, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("orderpg: recently closed: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Closed, error) {
		var c order.Closed
		var err error
		c.Order, err = scanOrder(r, &c.ClosedAt)
		return c, err
	})
}

// CancelOversold cancels the given orders with reason "oversold", each with
// its event, without returning units; orders already closed are left as
// they are, so the call can be repeated.
func (s *Store) CancelOversold(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		sh, ok := s.m.ForOrder(id)
		if !ok {
			return fmt.Errorf("%w: order %d names no shard of this map", order.ErrNotFound, id)
		}
		var n int
		if err := s.pools[s.m.Database(sh)].QueryRow(ctx, s.q[sh].cancelOversold, id).Scan(&n); err != nil {
			return unknownOutcome(err)
		}
		s.committed(sh)
	}
	return nil
}
