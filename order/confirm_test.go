package order_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"flashsale/inventory"
)

// TestCommittedOrdersAreConfirmedInRedis: the buy path tells Redis which
// reservations became orders, after their commit, so the reconciler need
// not ask PostgreSQL about them; a request whose commit failed confirms
// nothing.
func TestCommittedOrdersAreConfirmedInRedis(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := newRig(t)
	done := make(chan error)
	go func() { done <- r.svc.Confirmer().Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sale := r.newSale(t, 10)
	for i := range 3 {
		if _, _, err := r.svc.Place(ctx, request(t, sale, fmt.Sprintf("buyer-%d", i), "k", 1)); err != nil {
			t.Fatal(err)
		}
	}
	refused := errors.New("commit refused")
	r.faulty.err.Store(&refused)
	if _, _, err := r.svc.Place(ctx, request(t, sale, "refused", "k", 1)); !errors.Is(err, refused) {
		t.Fatalf("a failed commit: %v", err)
	}
	r.faulty.err.Store(nil)

	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		holds, err := r.stock.Holds(ctx, sale)
		if err != nil {
			t.Fatal(err)
		}
		if n := countConfirmed(holds); n == 3 && len(holds) == 3 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d reservations, %d confirmed; want the 3 orders' confirmed", len(holds), n)
		}
	}
	if s := r.svc.Confirmer().Stats(); s.Queued != 3 || s.Sent != 3 || s.Dropped != 0 {
		t.Errorf("confirmer stats %+v, want 3 queued and sent", s)
	}
}

func countConfirmed(holds []inventory.Held) int {
	n := 0
	for _, h := range holds {
		if h.Committed {
			n++
		}
	}
	return n
}
