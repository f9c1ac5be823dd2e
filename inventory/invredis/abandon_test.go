package invredis_test

import (
	"context"
	"errors"
	"testing"

	"flashsale/inventory"
)

// TestAbandonGivesBackOnlyItsOwnAttempt: a request that lost its reply
// abandons the reservation it may have made. Only its own attempt's is
// released (units back, claim gone, so its retry is judged afresh); a
// reservation another attempt made under the same key, or one already
// confirmed, stays.
func TestAbandonGivesBackOnlyItsOwnAttempt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sale := f.newSale(t, 5)
	q, _ := inventory.NewQuantity(1)
	ask := func(key, attempt string) inventory.Reservation {
		return inventory.Reservation{Sale: sale.ID, Buyer: "b", Key: key, Fingerprint: "fp", Qty: q, ClientIP: "127.0.0.1", Attempt: attempt}
	}
	first, retry := inventory.NewAttempt(), inventory.NewAttempt()
	if _, err := f.stock.Reserve(ctx, ask("k", first)); err != nil {
		t.Fatal(err)
	}
	if n, err := f.stock.Abandon(ctx, ask("k", retry)); err != nil || n != 0 {
		t.Fatalf("abandoning another attempt's reservation: %d units, %v; want 0, nil", n, err)
	}
	if left := f.remaining(t, sale.ID); left != 4 {
		t.Fatalf("stock %d after another attempt's abandon, want 4", left)
	}
	if n, err := f.stock.Abandon(ctx, ask("k", first)); err != nil || n != 1 {
		t.Fatalf("abandoning its own reservation: %d units, %v; want 1, nil", n, err)
	}
	if left := f.remaining(t, sale.ID); left != 5 {
		t.Fatalf("stock %d after the abandon, want 5", left)
	}
	// The claim went with it: the retry reserves afresh, and an abandon
	// by the first attempt, arriving late, leaves the retry's alone.
	if _, err := f.stock.Reserve(ctx, ask("k", retry)); err != nil {
		t.Fatalf("the retry after the abandon: %v", err)
	}
	if n, _ := f.stock.Abandon(ctx, ask("k", first)); n != 0 {
		t.Fatalf("a late abandon released the retry's reservation (%d units)", n)
	}
	holds, err := f.stock.Holds(ctx, sale.ID)
	if err != nil || len(holds) != 1 || holds[0].Key != "k" || holds[0].Confirmed {
		t.Fatalf("holds %+v, %v; want the retry's, unconfirmed", holds, err)
	}
	if err := f.stock.ConfirmHolds(ctx, sale.ID, holds, 1); err != nil {
		t.Fatal(err)
	}
	if holds, _ = f.stock.Holds(ctx, sale.ID); len(holds) != 1 || !holds[0].Confirmed {
		t.Fatalf("holds %+v after confirming, want it confirmed", holds)
	}
	if n, _ := f.stock.Abandon(ctx, ask("k", retry)); n != 0 {
		t.Fatalf("a confirmed reservation was abandoned (%d units)", n)
	}
	if _, err := f.stock.Abandon(ctx, ask("k", "")); err == nil {
		t.Fatal("an abandon naming no attempt was accepted")
	}
	if _, err := f.stock.Reserve(ctx, ask("k", inventory.NewAttempt())); !errors.Is(err, inventory.ErrKeyClaimed) {
		t.Fatalf("the key after the confirmed order: %v, want ErrKeyClaimed", err)
	}
}
