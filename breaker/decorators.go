package breaker

import (
	"context"
	"errors"
	"fmt"

	"flashsale/inventory"
	"flashsale/order"
	"flashsale/shard"
)

// Stock guards the buy path's Redis stock (node 1) with b: reservations
// and releases count towards it and are refused while it is open, before
// anything is reserved.
func Stock(inner order.Stock, b *Breaker) order.Stock { return &stock{inner: inner, b: b} }

type stock struct {
	inner order.Stock
	b     *Breaker
}

func (s *stock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	res, err := call(ctx, s.b, func() (inventory.Reserved, error) { return s.inner.Reserve(ctx, r) })
	return res, unavailable(ctx, err)
}

func (s *stock) Release(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool) (int, error) {
	n, err := call(ctx, s.b, func() (int, error) { return s.inner.Release(ctx, sale, buyer, key, forget) })
	return n, unavailable(ctx, err)
}

func (s *stock) Discard(ctx context.Context, sale inventory.SaleID, buyer, key string) (int, error) {
	n, err := call(ctx, s.b, func() (int, error) { return s.inner.Discard(ctx, sale, buyer, key) })
	return n, unavailable(ctx, err)
}

func (s *stock) Abandon(ctx context.Context, r inventory.Reservation) (int, error) {
	n, err := call(ctx, s.b, func() (int, error) { return s.inner.Abandon(ctx, r) })
	return n, unavailable(ctx, err)
}

func (s *stock) Confirm(ctx context.Context, sale inventory.SaleID, keys []inventory.BuyerKey) error {
	_, err := call(ctx, s.b, func() (struct{}, error) { return struct{}{}, s.inner.Confirm(ctx, sale, keys) })
	return unavailable(ctx, err)
}

// unavailable hands a failure of Redis on as order.ErrUnavailable, so the
// buyer is told to come back (503) before the breaker opens too, not given
// a 500. Redis's errors carry no domain meaning (inventory cannot name
// order's sentinel); a reservation whose reply was lost may still have
// been taken, and the order service's abandoner gives it back.
func unavailable(ctx context.Context, err error) error {
	if classify(ctx, err) != failure || errors.Is(err, order.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", order.ErrUnavailable, err)
}

// Store guards the sharded order store with one breaker per database
// (dbs, in shard-map order): each call goes through the breaker of the
// database m routes it to, the way the store itself routes it, so one
// database down refuses only the buyers whose shard lives there.
func Store(inner order.Store, m shard.Map, dbs []*Breaker) order.Store {
	return &store{inner: inner, m: m, dbs: dbs}
}

type store struct {
	inner order.Store
	m     shard.Map
	dbs   []*Breaker
}

// buyer is the breaker of the database holding the buyer's shard.
func (s *store) buyer(b order.BuyerID) *Breaker { return s.dbs[s.m.Database(s.m.ForUser(b.String()))] }

func (s *store) Create(ctx context.Context, o order.NewOrder) (order.Order, error) {
	return call(ctx, s.buyer(o.Buyer), func() (order.Order, error) { return s.inner.Create(ctx, o) })
}

func (s *store) ByKey(ctx context.Context, buyer order.BuyerID, key order.IdemKey) (order.Order, error) {
	return call(ctx, s.buyer(buyer), func() (order.Order, error) { return s.inner.ByKey(ctx, buyer, key) })
}

func (s *store) Get(ctx context.Context, id order.ID) (order.Order, error) {
	sh, ok := s.m.ForOrder(id.Int64())
	if !ok {
		return s.inner.Get(ctx, id) // no shard: answered without a query
	}
	return call(ctx, s.dbs[s.m.Database(sh)], func() (order.Order, error) { return s.inner.Get(ctx, id) })
}

func (s *store) List(ctx context.Context, buyer order.BuyerID, before *order.ID, limit int) (order.Page, error) {
	return call(ctx, s.buyer(buyer), func() (order.Page, error) { return s.inner.List(ctx, buyer, before, limit) })
}

func (s *store) Pay(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return call(ctx, s.buyer(buyer), func() (order.Order, error) { return s.inner.Pay(ctx, buyer, id) })
}

func (s *store) Cancel(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return call(ctx, s.buyer(buyer), func() (order.Order, error) { return s.inner.Cancel(ctx, buyer, id) })
}

// Sales guards the sale catalog's reads of PostgreSQL (database 0) with b.
// The catalog calls it only on a miss, so sales already in memory are
// served even while b is open.
func Sales(inner inventory.SaleReader, b *Breaker) inventory.SaleReader {
	return &sales{inner: inner, b: b}
}

type sales struct {
	inner inventory.SaleReader
	b     *Breaker
}

func (s *sales) Get(ctx context.Context, id inventory.SaleID) (inventory.Sale, error) {
	return call(ctx, s.b, func() (inventory.Sale, error) { return s.inner.Get(ctx, id) })
}
