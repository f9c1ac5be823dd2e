package order_test

import (
	"context"
	"fmt"
	"testing"

	"flashsale/inventory"
)

// TestExistingOrdersAnswersPerShard: the reconciler's batch lookup finds
// exactly the (buyer, key) pairs that made orders, across shards.
func TestExistingOrdersAnswersPerShard(t *testing.T) {
	r := newRig(t)
	sale := r.newSale(t, 50)
	var keys []inventory.BuyerKey
	want := map[inventory.BuyerKey]bool{}
	for i := range 12 {
		o, req := r.place(t, r.svc, sale, fmt.Sprint("lookup-", i), 1)
		k := inventory.BuyerKey{Buyer: o.Buyer.String(), Key: req.Key.String()}
		keys = append(keys, k, inventory.BuyerKey{Buyer: k.Buyer, Key: "never-used"},
			inventory.BuyerKey{Buyer: fmt.Sprint("ghost-", i), Key: req.Key.String()})
		want[k] = true
	}
	got, err := r.store.ExistingOrders(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d found, want %d: %v", len(got), len(want), got)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%v not found", k)
		}
	}
}
