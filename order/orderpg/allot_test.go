package orderpg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/config"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/shard"
)

// allotRig is the order store over two databases of the real PostgreSQL,
// with a sale of its own.
type allotRig struct {
	store *orderpg.Store
	pools []*pgxpool.Pool
	sales *invpg.SaleStore
	sale  inventory.Sale
}

func newAllotRig(t *testing.T, stock int) *allotRig {
	t.Helper()
	cfg := testenv.Config(t, 16)
	pools := testenv.Pools(t, cfg)
	m, err := shard.NewMap(cfg.Shards, len(pools))
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) < 2 {
		t.Fatalf("allotments need two databases, the stack has %d", len(pools))
	}
	r := &allotRig{store: orderpg.New(pools, m, orderpg.Options{MaxBatch: 256, Workers: 2}), pools: pools,
		sales: invpg.NewSaleStore(pools[0])}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	now := time.Now().UTC()
	r.sale, err = r.sales.Create(ctx, inventory.NewSale{SKU: "A", Title: "Allotted", PriceCents: 100, Currency: "EUR",
		Stock: stock, PerUserLimit: 5, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.store.Allot(ctx, r.sale.ID, stock); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *allotRig) create(buyer, key string) (order.Order, error) {
	b, _ := order.ParseBuyerID(buyer)
	k, _ := order.ParseIdemKey(key)
	return r.store.Create(context.Background(), order.NewOrder{Sale: r.sale, Buyer: b, Key: k,
		RequestHash: []byte("0123456789abcdef"), Qty: 1, Window: 15 * time.Minute, Deadline: time.Now().Add(time.Minute)})
}

// books sums the sale's allotments and live units over the databases and
// checks that no database holds more live units than it was allotted.
func (r *allotRig) books(t *testing.T) (allotted, sold int64) {
	t.Helper()
	for i, p := range r.pools {
		var a, s int64
		err := p.QueryRow(context.Background(), "SELECT coalesce(sum(allotted), 0), coalesce(sum(sold), 0) FROM stock.allotments WHERE sale_id = $1",
			r.sale.ID.Int64()).Scan(&a, &s)
		if err != nil {
			t.Fatal(err)
		}
		if s > a {
			t.Errorf("database %d: %d units sold of %d allotted", i, s, a)
		}
		allotted, sold = allotted+a, sold+s
	}
	return allotted, sold
}

// TestAllotmentsRefuseUnitsBeyondStock: many buyers on every database at
// once, with nothing in front of PostgreSQL: exactly the stock commits,
// the rest is refused as sold out by PostgreSQL itself, units moving
// between the databases as one runs dry.
func TestAllotmentsRefuseUnitsBeyondStock(t *testing.T) {
	const stock, buyers = 100, 400
	r := newAllotRig(t, stock)
	created, refused := r.burst(t, buyers, "b")
	if created != stock || refused != buyers-stock {
		t.Fatalf("%d created, %d refused; want %d and %d", created, refused, stock, buyers-stock)
	}
	live, err := r.store.LiveUnits(context.Background(), r.sale.ID)
	if err != nil || live != stock {
		t.Fatalf("live units %d (%v), want %d", live, err, stock)
	}
	if allotted, sold := r.books(t); allotted != stock || sold != stock {
		t.Fatalf("allotted %d, sold %d; want %d and %d", allotted, sold, stock, stock)
	}
}

// burst releases n buyers at once and counts what PostgreSQL answered.
func (r *allotRig) burst(t *testing.T, n int, prefix string) (created, refused int) {
	t.Helper()
	var ok, no atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := r.create(fmt.Sprintf("%s-%d", prefix, i), "k")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, order.ErrStockRefused) && errors.Is(err, inventory.ErrSoldOut):
				no.Add(1)
			default:
				t.Errorf("buyer %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(ok.Load()), int(no.Load())
}

// TestRetryOfACommittedKeyIsADuplicateWhenSoldOut: a buyer whose order
// committed retries after the last unit went: the store answers that the
// key made an order (the service replays it), not that stock is gone.
func TestRetryOfACommittedKeyIsADuplicateWhenSoldOut(t *testing.T) {
	r := newAllotRig(t, 1)
	made, err := r.create("winner", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.create("loser", "k1"); !errors.Is(err, order.ErrStockRefused) {
		t.Fatalf("a new buyer after sell-out: %v, want ErrStockRefused", err)
	}
	_, err = r.create("winner", "k1")
	var dup *order.DuplicateError
	if !errors.As(err, &dup) {
		t.Fatalf("the winner's retry: %v, want a DuplicateError", err)
	}
	// The order read while refusing comes along, so the replay reads nothing.
	if dup.Existing.ID != made.ID || !bytes.Equal(dup.Existing.RequestHash, made.RequestHash) {
		t.Fatalf("the duplicate carries order %v, want %v", dup.Existing.ID, made.ID)
	}
}

// TestCancelAndRestockReturnUnitsToTheAllotments: a cancelled order's unit
// and a restock's units can be sold again, and no more.
func TestCancelAndRestockReturnUnitsToTheAllotments(t *testing.T) {
	ctx := context.Background()
	r := newAllotRig(t, 2)
	o, err := r.create("c-1", "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.create("c-2", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Cancel(ctx, o.Buyer, o.ID); err != nil {
		t.Fatal(err)
	}
	token, err := r.sales.NextToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := inventory.NewQuantity(3)
	if _, err := r.sales.AddStock(ctx, r.sale.ID, q, token); err != nil {
		t.Fatal(err)
	}
	if created, refused := r.burst(t, 8, "after"); created != 4 || refused != 4 {
		t.Fatalf("after a cancel and a restock of 3: %d created, %d refused; want 4 and 4", created, refused)
	}
	if allotted, sold := r.books(t); allotted != 5 || sold != 5 {
		t.Fatalf("allotted %d, sold %d; want 5 and 5", allotted, sold)
	}
}

// TestOneOrderGathersUnitsFromEveryAllotment: an order of the whole stock
// commits though no single allotment holds it, and leaves none behind.
func TestOneOrderGathersUnitsFromEveryAllotment(t *testing.T) {
	r := newAllotRig(t, 8)
	b, _ := order.ParseBuyerID("whale")
	k, _ := order.ParseIdemKey("k")
	_, err := r.store.Create(context.Background(), order.NewOrder{Sale: r.sale, Buyer: b, Key: k,
		RequestHash: []byte("0123456789abcdef"), Qty: 8, Window: 15 * time.Minute, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if allotted, sold := r.books(t); allotted != 8 || sold != 8 {
		t.Fatalf("allotted %d, sold %d; want 8 and 8", allotted, sold)
	}
}

// TestEveryUnitSellsWhenBuyersMatchTheStock: as many buyers as units, all
// at once, as Redis lets them through: every one commits, units moving to
// wherever their orders land, and no allotment ever holds more live units
// than it was given (a commit that did would fail its CHECK and be
// refused, so every buyer committing says it never happened).
func TestEveryUnitSellsWhenBuyersMatchTheStock(t *testing.T) {
	for round := range 3 {
		r := newAllotRig(t, 100)
		if created, refused := r.burst(t, 100, fmt.Sprint("r", round)); created != 100 {
			t.Fatalf("round %d: %d created, %d refused; want all 100 created", round, created, refused)
		}
		if allotted, sold := r.books(t); allotted != 100 || sold != 100 {
			t.Fatalf("round %d: allotted %d, sold %d; want 100 and 100", round, allotted, sold)
		}
	}
}

// TestCommitWorkersAreBoundedByTheSlots: the setting's bound is the slot
// count, so that no two transactions in flight on a database share a slot.
func TestCommitWorkersAreBoundedByTheSlots(t *testing.T) {
	if config.MaxCommitWorkers != orderpg.AllotSlots {
		t.Errorf("commit-workers may be up to %d; a database has %d allotment slots", config.MaxCommitWorkers, orderpg.AllotSlots)
	}
}
