package order_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"flashsale/order"
)

// TestStoreRefusesAnOrderPastItsDeadline: the store writes neither the
// order nor its event when PostgreSQL's clock is past the order's commit
// deadline (the reconciler may already have returned its units), and says
// so with ErrCommitExpired; an order committed alongside it in time is
// unaffected.
func TestStoreRefusesAnOrderPastItsDeadline(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	saleID := r.newSale(t, 5)
	sale, err := r.catalog.Sale(ctx, saleID)
	if err != nil {
		t.Fatal(err)
	}
	newOrder := func(key string, deadline time.Time) order.NewOrder {
		req := request(t, saleID, "tardy", key, 1)
		return order.NewOrder{Sale: sale, Buyer: req.Buyer, Key: req.Key, RequestHash: req.Fingerprint(),
			Qty: 1, Window: time.Minute, Deadline: deadline}
	}
	late, onTime := newOrder("late", time.Now().Add(-time.Second)), newOrder("on-time", time.Now().Add(time.Hour))
	var lateErr, onTimeErr error
	var wg sync.WaitGroup
	wg.Go(func() { _, lateErr = r.store.Create(ctx, late) })
	wg.Go(func() { _, onTimeErr = r.store.Create(ctx, onTime) })
	wg.Wait()
	if !errors.Is(lateErr, order.ErrCommitExpired) {
		t.Errorf("order past its deadline: %v, want ErrCommitExpired", lateErr)
	}
	if onTimeErr != nil {
		t.Errorf("order in time: %v", onTimeErr)
	}
	if _, err := r.store.ByKey(ctx, late.Buyer, late.Key); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("the late order was written: %v", err)
	}
	sh := r.m.ForUser("tardy")
	var orders, events int
	err = r.pools[r.m.Database(sh)].QueryRow(ctx, "SELECT (SELECT count(*) FROM "+sh.Schema()+".orders), (SELECT count(*) FROM "+
		sh.Schema()+".outbox)").Scan(&orders, &events)
	if err != nil {
		t.Fatal(err)
	}
	if orders != 1 || events != 1 {
		t.Errorf("%d orders and %d outbox rows, want 1 and 1 (the order in time only)", orders, events)
	}
}
