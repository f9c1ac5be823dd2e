package order_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"flashsale/inventory"
	"flashsale/order"
)

// TestSoldOutReplaysWinnersOnly: after sell-out, a winner's retry with its
// key replays its order from PostgreSQL without a Redis call; everyone
// else, the winner with a new key included, is refused from memory with
// neither a Redis call nor a PostgreSQL one; the winner's key with another
// body is still refused as reused.
func TestSoldOutReplaysWinnersOnly(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 3)
	win := request(t, sale, "winner", "k-win", 2)
	first, _, err := r.svc.Place(ctx, win)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.Place(ctx, request(t, sale, "other", "k", 1)); err != nil {
		t.Fatal(err)
	}
	reserves, lookups := r.stock.reserves.Load(), r.faulty.byKeys.Load()
	for i := range 100 {
		if _, _, err := r.svc.Place(ctx, request(t, sale, fmt.Sprint("late", i), "k-win", 1)); !errors.Is(err, inventory.ErrSoldOut) {
			t.Fatalf("a buyer without an order after sell-out: %v", err)
		}
	}
	if _, _, err := r.svc.Place(ctx, request(t, sale, "winner", "k-new", 1)); !errors.Is(err, inventory.ErrSoldOut) {
		t.Fatalf("the winner with a new key: %v, want sold out", err)
	}
	if n, m := r.stock.reserves.Load()-reserves, r.faulty.byKeys.Load()-lookups; n != 0 || m != 0 {
		t.Fatalf("refusals after sell-out made %d Redis reservations and %d key look-ups, want 0 and 0", n, m)
	}
	o, replayed, err := r.svc.Place(ctx, win)
	if err != nil || !replayed || !reflect.DeepEqual(o, first) {
		t.Fatalf("the winner's retry after sell-out: %+v replayed=%t err=%v, want a replay of %+v", o, replayed, err, first)
	}
	if n := r.stock.reserves.Load() - reserves; n != 0 {
		t.Errorf("the replay made %d Redis reservations, want 0", n)
	}
	other := win
	other.Qty, _ = inventory.NewQuantity(1)
	if _, _, err := r.svc.Place(ctx, other); !errors.Is(err, order.ErrKeyReused) {
		t.Errorf("the winner's key with another body: %v, want ErrKeyReused", err)
	}
}
