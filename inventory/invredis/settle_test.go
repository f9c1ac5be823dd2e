package invredis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"flashsale/inventory"
)

// reserveN reserves one unit for each of n new buyers named prefix-i.
func reserveN(t *testing.T, f fixture, sale inventory.SaleID, prefix string, n int) {
	t.Helper()
	one, _ := inventory.NewQuantity(1)
	for i := range n {
		if _, err := f.stock.Reserve(context.Background(), inventory.Reservation{Sale: sale, Buyer: fmt.Sprintf("%s-%d", prefix, i),
			Key: "k", Fingerprint: "01", Qty: one, ClientIP: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
}

func buyers(hs []inventory.Held) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Buyer)
	}
	return out
}

// TestTheSettleQueueIsReadFromItsHead: reservations queue in the order
// made; a page reads from the head, skips what was settled since, stops
// at the first reservation younger than the cutoff and counts those behind
// it; settling takes the page off the queue, and a page settled twice
// takes nothing more off.
func TestTheSettleQueueIsReadFromItsHead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sale := f.newSale(t, 100)
	reserveN(t, f, sale.ID, "old", 5)
	if _, err := f.stock.Release(ctx, sale.ID, "old-1", "k", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	reserveN(t, f, sale.ID, "young", 2)

	page, err := f.stock.DuePage(ctx, sale.ID, cutoff, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(buyers(page.Due)); got != "[old-0 old-2]" || len(page.Entries) != 3 || page.Last {
		t.Fatalf("first page: due %s, %d entries, last %v; want [old-0 old-2], 3 entries, more to come", got, len(page.Entries), page.Last)
	}
	if err := f.stock.SettlePage(ctx, sale.ID, page, page.Due[:1], 2); err != nil {
		t.Fatal(err)
	}
	if err := f.stock.SettlePage(ctx, sale.ID, page, nil, 2); !errors.Is(err, inventory.ErrSaleBusy) {
		t.Fatalf("the same page settled twice: %v, want ErrSaleBusy", err)
	}
	page, err = f.stock.DuePage(ctx, sale.ID, cutoff, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(buyers(page.Due)); got != "[old-3 old-4]" || len(page.Entries) != 2 || !page.Last || page.Waiting != 2 {
		t.Fatalf("second page: due %s, %d entries, last %v, %d waiting; want [old-3 old-4], 2, last, 2 waiting",
			got, len(page.Entries), page.Last, page.Waiting)
	}
	holds, err := f.stock.Unconfirmed(ctx, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(holds) != 5 { // old-2, old-3, old-4 and the two young: old-0 was confirmed
		t.Fatalf("%d unconfirmed, want 5: %v", len(holds), buyers(holds))
	}
}

// TestTheSettleQueueIsFenced: a lease holder superseded by a later token
// neither confirms nor takes anything off the queue.
func TestTheSettleQueueIsFenced(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sale := f.newSale(t, 10)
	reserveN(t, f, sale.ID, "b", 2)
	later := time.Now().Add(time.Hour)
	page, err := f.stock.DuePage(ctx, sale.ID, later, 10)
	if err != nil || len(page.Due) != 2 {
		t.Fatalf("page %+v, %v; want 2 due", page, err)
	}
	if err := f.stock.SettlePage(ctx, sale.ID, inventory.DuePage{}, nil, 5); err != nil { // a later holder writes its token
		t.Fatal(err)
	}
	if err := f.stock.SettlePage(ctx, sale.ID, page, page.Due, 4); !errors.Is(err, inventory.ErrStaleFence) {
		t.Fatalf("settled under token 4 after token 5: %v, want ErrStaleFence", err)
	}
	again, err := f.stock.DuePage(ctx, sale.ID, later, 10)
	if err != nil || len(again.Due) != 2 || len(again.Entries) != 2 {
		t.Fatalf("after the stale settle: %+v, %v; want the same 2 due", again, err)
	}
}

// TestRebuildKeepsWhatTheBuyPathConfirmed: the buy path marks a committed
// order's reservation without the sale's lease, so the mark can land
// between a rebuild's read of the live orders and its script; the rebuild,
// which did not see that order, must keep its units all the same.
func TestRebuildKeepsWhatTheBuyPathConfirmed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sale := f.newSale(t, 10)
	reserveN(t, f, sale.ID, "b", 1)
	if err := f.stock.Confirm(ctx, sale.ID, []inventory.BuyerKey{{Buyer: "b-0", Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	holds, err := f.stock.Holds(ctx, sale.ID)
	if err != nil || len(holds) != 1 || !holds[0].Committed || holds[0].Confirmed {
		t.Fatalf("holds %+v, %v; want one marked committed by the buy path", holds, err)
	}
	got, err := f.stock.Rebuild(ctx, sale, nil, 2) // read before b-0's order committed
	if err != nil {
		t.Fatal(err)
	}
	if got.Dropped != 0 || got.Stock != 9 {
		t.Fatalf("rebuild %+v; want b-0's unit kept (stock 9, nothing dropped)", got)
	}
}
