package orderpg

import (
	"context"
	"fmt"
	"testing"
	"time"

	"flashsale/internal/batch"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/order"
	"flashsale/shard"
)

// TestAShortBatchIsRefilledOnceAndCommittedTogether: a whole batch comes
// back short on its allotment while another database holds the units. The
// committer moves the units for all of them in one refill and commits them
// in one more transaction, rather than leaving each order to move units
// and commit alone.
func TestAShortBatchIsRefilledOnceAndCommittedTogether(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t, 4)
	pools := testenv.Pools(t, cfg)
	m, err := shard.NewMap(cfg.Shards, len(pools))
	if err != nil {
		t.Fatal(err)
	}
	s := New(pools, m, Options{Workers: 1})
	now := time.Now().UTC()
	sale, err := invpg.NewSaleStore(pools[0]).Create(ctx, inventory.NewSale{SKU: "R", Title: "Refill", PriceCents: 100,
		Currency: "EUR", Stock: 80, PerUserLimit: 1, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Allot(ctx, sale.ID, sale.Stock); err != nil {
		t.Fatal(err)
	}
	// Database 0 gives all its units to database 1, slot 0: the sale's
	// total stays 80, and every order committed on database 0 is short.
	if _, err := pools[0].Exec(ctx, "UPDATE stock.allotments SET allotted = 0 WHERE sale_id = $1", sale.ID.Int64()); err != nil {
		t.Fatal(err)
	}
	if _, err := pools[1].Exec(ctx, "UPDATE stock.allotments SET allotted = allotted + 40 WHERE sale_id = $1 AND slot = 0", sale.ID.Int64()); err != nil {
		t.Fatal(err)
	}
	c := s.commits[0]
	refills := 0
	refill := c.refill
	c.refill = func(ctx context.Context, id inventory.SaleID, need int64, to pot) error {
		refills++
		return refill(ctx, id, need, to)
	}
	orders := shortBatch(t, m, sale, 12)
	out := make([]batch.Result[result], len(orders))
	c.commit(ctx, orders, out)

	var first time.Time
	for i, r := range out {
		if r.Err != nil || r.Val.outcome != outcomeCreated {
			t.Fatalf("order %d: %q, %v; want created", i, r.Val.outcome, r.Err)
		}
		if i == 0 {
			first = r.Val.createdAt
		}
		if !r.Val.createdAt.Equal(first) {
			t.Fatalf("order %d committed at %v, order 0 at %v: not one transaction", i, r.Val.createdAt, first)
		}
	}
	if refills != 1 {
		t.Fatalf("%d refills for one short batch, want 1", refills)
	}
}

// shortBatch is n orders of buyers whose shards live on database 0.
func shortBatch(t *testing.T, m shard.Map, sale inventory.Sale, n int) []pending {
	t.Helper()
	var orders []pending
	for i := 0; len(orders) < n; i++ {
		b, _ := order.ParseBuyerID(fmt.Sprintf("short-%d", i))
		sh := m.ForUser(b.String())
		if m.Database(sh) != 0 {
			continue
		}
		k, _ := order.ParseIdemKey("k")
		orders = append(orders, pending{shard: sh, o: order.NewOrder{Sale: sale, Buyer: b, Key: k,
			RequestHash: []byte("0123456789abcdef"), Qty: 1, Window: 15 * time.Minute, Deadline: time.Now().Add(time.Minute)}})
	}
	return orders
}
