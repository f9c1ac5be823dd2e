package order_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/order"
)

// lostReplyStock reserves in the real Redis and then loses the reply
// while lose is set, as a read timeout does when Redis stalls after
// running the script; its first failAbandons abandons fail too, as they
// do while Redis is still away.
type lostReplyStock struct {
	order.Stock
	lose         atomic.Bool
	failAbandons atomic.Int64
	abandons     atomic.Int64
}

func (s *lostReplyStock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	res, err := s.Stock.Reserve(ctx, r)
	if err == nil && s.lose.Load() {
		return inventory.Reserved{}, fmt.Errorf("inventory: reserve: %w: read tcp: i/o timeout", inventory.ErrReplyLost)
	}
	return res, err
}

func (s *lostReplyStock) Abandon(ctx context.Context, r inventory.Reservation) (int, error) {
	if s.abandons.Add(1) <= s.failAbandons.Load() {
		return 0, fmt.Errorf("inventory: release: %w", context.DeadlineExceeded)
	}
	return s.Stock.Abandon(ctx, r)
}

// TestAReservationWhoseReplyWasLostIsGivenBack: Redis took the units
// but the request never heard so; it answers with the failure, and its
// units come back as soon as Redis answers again (here after two failed
// tries), long before the reconciler's grace. The buyer's retry with the
// same key is then judged afresh and gets its order, not "key in use".
func TestAReservationWhoseReplyWasLostIsGivenBack(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 3)
	stock := &lostReplyStock{Stock: r.stock}
	stock.lose.Store(true)
	stock.failAbandons.Store(2)
	svc := order.NewService(r.store, stock, r.catalog, r.soldOut,
		order.Config{PaymentWindow: time.Minute, CommitDeadline: 10 * time.Second, MaxInFlight: 8}, testenv.Logger(t))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- svc.Abandoner().Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	req := request(t, sale, "lost-reply", "k", 1)
	if _, _, err := svc.Place(ctx, req); !errors.Is(err, inventory.ErrReplyLost) {
		t.Fatalf("place with the reply lost: %v, want ErrReplyLost", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.remaining(t, sale) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stock %d five seconds after the lost reply, want 3: the units were not given back", r.remaining(t, sale))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := svc.Abandoner().Stats(); s.Queued != 1 || s.Returned != 1 || s.Dropped != 0 || stock.abandons.Load() != 3 {
		t.Fatalf("abandoner %+v after %d tries, want 1 queued and returned after 3 tries", s, stock.abandons.Load())
	}
	stock.lose.Store(false)
	o, replayed, err := svc.Place(ctx, req)
	if err != nil || replayed {
		t.Fatalf("the retry with the same key: %v (replayed %v), want a new order", err, replayed)
	}
	if o.Quantity != 1 || r.remaining(t, sale) != 2 {
		t.Fatalf("order %+v, stock %d; want 1 unit sold of 3", o, r.remaining(t, sale))
	}
}
