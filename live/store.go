package live

import (
	"context"
	"time"

	"flashsale/order"
)

// Notify is told of each order transition once it committed; it must not
// wait (the publisher's Publish only queues).
type Notify func(order.Order)

// OrderStore wraps an order store: every order it pays or cancels is told
// to notify after the commit returned. A created order tells nothing: no
// one can watch an order before its 201 gave out its id, and a stream
// opened after it starts with the order's current state, so the message
// would reach no subscriber on any instance; at a flash sale's rate it
// cost a render, a PUBLISH and every instance's receive per order.
func OrderStore(inner order.Store, notify Notify) order.Store {
	return &orderStore{Store: inner, notify: notify}
}

type orderStore struct {
	order.Store
	notify Notify
}

func (s *orderStore) Pay(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return s.told(s.Store.Pay(ctx, buyer, id))
}

func (s *orderStore) Cancel(ctx context.Context, buyer order.BuyerID, id order.ID) (order.Order, error) {
	return s.told(s.Store.Cancel(ctx, buyer, id))
}

func (s *orderStore) told(o order.Order, err error) (order.Order, error) {
	if err == nil {
		s.notify(o)
	}
	return o, err
}

// ExpiryStore wraps the sweeper's store: every order it expires is told
// to notify after the statement committed.
func ExpiryStore(inner order.ExpiryStore, notify Notify) order.ExpiryStore {
	return &expiryStore{inner: inner, notify: notify}
}

type expiryStore struct {
	inner  order.ExpiryStore
	notify Notify
}

func (s *expiryStore) Partitions() int { return s.inner.Partitions() }

func (s *expiryStore) ExpireDue(ctx context.Context, part, limit int) ([]order.Order, error) {
	orders, err := s.inner.ExpireDue(ctx, part, limit)
	for _, o := range orders {
		s.notify(o)
	}
	return orders, err
}

func (s *expiryStore) RecentlyClosed(ctx context.Context, part int, within time.Duration, after *order.Closed, limit int) ([]order.Closed, error) {
	return s.inner.RecentlyClosed(ctx, part, within, after, limit)
}
