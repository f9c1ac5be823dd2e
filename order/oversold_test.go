package order_test

import (
	"context"
	"fmt"
	"testing"

	"flashsale/order"
)

// TestCancelOversoldKeepsUnitsAndIsRepeatable: the ledger's oversold
// cancellation closes pending and paid orders with reason "oversold" and
// one event each, returns no units, and a second call changes nothing.
func TestCancelOversoldKeepsUnitsAndIsRepeatable(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 5)
	pending, _ := r.place(t, r.svc, sale, "pending-buyer", 1)
	paid, _ := r.place(t, r.svc, sale, "paid-buyer", 1)
	if _, err := r.svc.Pay(ctx, paid.Buyer, paid.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := r.store.CancelOversold(ctx, []int64{pending.ID.Int64(), paid.ID.Int64()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []order.Order{pending, paid} {
		if st := r.status(t, o.ID); st != order.StatusCancelled {
			t.Errorf("order %s is %s, want cancelled", o.ID, st)
		}
		ev := r.events(t, o.ID)
		if last := ev[len(ev)-1]; last != "flashsale.order.cancelled" || fmt.Sprint(ev[:1]) != "[flashsale.order.created]" {
			t.Errorf("order %s events %v", o.ID, ev)
		}
		if n := count(ev, "flashsale.order.cancelled"); n != 1 {
			t.Errorf("order %s has %d cancelled events, want 1", o.ID, n)
		}
	}
	if left := r.remaining(t, sale); left != 3 {
		t.Errorf("stock %d, want 3: oversold units never existed and must not come back", left)
	}
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}
