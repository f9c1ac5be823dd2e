package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// The ceilings run the service's script and statement without its
// packages; these tests hold them to what the packages run, by letting the
// service's own code read what the ceilings wrote. Only the tests import
// the service's packages.

// TestLuaCeilingReservesAsTheServicesStockDoes creates a sale and reserves
// through luaStock, then checks with the service's Redis stock that the
// sale, the reservation, the buyer's count, the idempotency claim and both
// rate-limit cells are the very keys and fields it reads.
func TestLuaCeilingReservesAsTheServicesStockDoes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the stack")
	}
	ctx := context.Background()
	cfg := testenv.Base(t)
	rdb := testenv.Redis(t, cfg, 0)
	prefix := testenv.RedisPrefix(t, cfg.RedisAddrs[:1])
	now := time.Now()

	high := ratelimit.Limits{UserRate: 1_000_000, UserBurst: 1_000_000, IPRate: 1_000_000, IPBurst: 1_000_000}
	ours, theirs := newLuaStock(rdb, prefix, [4]int{high.UserRate, high.UserBurst, high.IPRate, high.IPBurst}), invredis.NewStock(rdb, prefix, high)
	if err := ours.create(ctx, 7, 10, 2, now.Add(-time.Minute), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sale, _ := inventory.NewSaleID(7)
	if n, err := theirs.Remaining(ctx, sale); err != nil || n != 10 {
		t.Fatalf("the service sees a created sale of 10 as %d, %v", n, err)
	}
	if code, err := ours.reserveOne(ctx, 7, "alice", "k1", "fp", 2, "10.0.0.1"); err != nil || code != 0 {
		t.Fatalf("reserve: code %d, %v", code, err)
	}
	if n, err := theirs.Remaining(ctx, sale); err != nil || n != 8 {
		t.Errorf("the service sees %d left after 2 reserved (%v), want 8", n, err)
	}
	holds, err := theirs.Holds(ctx, sale)
	if err != nil || len(holds) != 1 || holds[0].Buyer != "alice" || holds[0].Key != "k1" || holds[0].Qty != 2 {
		t.Errorf("the service's holds: %+v, %v", holds, err)
	}
	one, _ := inventory.NewQuantity(1)
	r := inventory.Reservation{Sale: sale, Buyer: "alice", Key: "k1", Fingerprint: "fp", Qty: one, ClientIP: "10.0.0.1"}
	if _, err := theirs.Reserve(ctx, r); !errors.Is(err, inventory.ErrKeyClaimed) {
		t.Errorf("the service retrying alice's key: %v, want %v", err, inventory.ErrKeyClaimed)
	}
	// Only the claim holds the fingerprint: the reservation alone would
	// make this a retry too.
	r.Fingerprint = "another"
	if _, err := theirs.Reserve(ctx, r); !errors.Is(err, inventory.ErrKeyReused) {
		t.Errorf("the service reusing alice's key for another request: %v, want %v", err, inventory.ErrKeyReused)
	}
	r.Fingerprint = "fp"
	r.Key = "k2"
	if _, err := theirs.Reserve(ctx, r); !errors.Is(err, inventory.ErrLimitReached) {
		t.Errorf("the service reserving a third unit for alice (limit 2): %v, want %v", err, inventory.ErrLimitReached)
	}
	checkRateLimitCells(t, rdb, prefix)
}

// checkRateLimitCells has luaStock charge a buyer's and an IP's cell, one
// request a second allowed, and the service's stock find both charged.
func checkRateLimitCells(t *testing.T, rdb *redis.Client, prefix string) {
	ctx := context.Background()
	low := ratelimit.Limits{UserRate: 1, UserBurst: 1, IPRate: 1, IPBurst: 1}
	ours, theirs := newLuaStock(rdb, prefix, [4]int{1, 1, 1, 1}), invredis.NewStock(rdb, prefix, low)
	now := time.Now()
	if err := ours.create(ctx, 8, 10, 5, now.Add(-time.Minute), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if code, err := ours.reserveOne(ctx, 8, "dave", "k1", "fp", 1, "10.0.0.1"); err != nil || code != 0 {
		t.Fatalf("reserve: code %d, %v", code, err)
	}
	sale, _ := inventory.NewSaleID(8)
	one, _ := inventory.NewQuantity(1)
	for _, c := range []struct{ buyer, ip, limit string }{{"dave", "10.0.0.2", "buyer"}, {"erin", "10.0.0.1", "ip"}} {
		_, err := theirs.Reserve(ctx, inventory.Reservation{Sale: sale, Buyer: c.buyer, Key: "k9", Fingerprint: "fp", Qty: one, ClientIP: c.ip})
		var rl *ratelimit.Error
		if !errors.As(err, &rl) || rl.Limit != c.limit {
			t.Errorf("the service reserving for %s from %s right after dave from 10.0.0.1: %v, want the %s limit", c.buyer, c.ip, err, c.limit)
		}
	}
}

// TestInsertCeilingCommitsWhatTheOrderStoreReads commits orders through
// the ceiling's group commit, then reads them with the service's order
// store: same shards, columns, outbox rows and allotment counts.
func TestInsertCeilingCommitsWhatTheOrderStoreReads(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the stack")
	}
	ctx := context.Background()
	cfg := testenv.Config(t, 4)
	pools := testenv.Pools(t, cfg)
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupCommit(pools, m, 8, 2)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { g.Run(rctx); close(done) }()
	defer func() { stop(); <-done }()
	if err := g.allot(ctx, 3, 1000); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ok, err := g.Create(ctx, ceilingOrder(i))
			if err != nil || !ok {
				t.Errorf("create %d: created %v, %v", i, ok, err)
			}
		})
	}
	wg.Wait()
	if ok, err := g.Create(ctx, ceilingOrder(0)); err != nil || ok {
		t.Errorf("a second create of the same key: created %v, %v", ok, err)
	}
	checkStored(t, pools, m, n)
}

// ceilingOrder is the i-th order of the test: 2 units at 150 cents.
func ceilingOrder(i int) newOrder {
	return newOrder{sale: 3, buyer: fmt.Sprintf("buyer-%d", i), key: fmt.Sprintf("key-%d", i), hash: []byte("h"), qty: 2,
		price: 150, currency: "EUR", window: 15 * time.Minute, deadline: time.Now().Add(time.Minute)}
}

// checkStored reads the n orders with the service's order store, and
// counts their outbox rows and the units the allotments sold.
func checkStored(t *testing.T, pools []*pgxpool.Pool, m shard.Map, n int) {
	ctx := context.Background()
	store := orderpg.New(pools, m, orderpg.Options{})
	for i := range n {
		want := ceilingOrder(i)
		buyer, _ := order.ParseBuyerID(want.buyer)
		key, _ := order.ParseIdemKey(want.key)
		o, err := store.ByKey(ctx, buyer, key)
		if err != nil {
			t.Fatalf("the order store reading order %d: %v", i, err)
		}
		if o.SaleID.Int64() != 3 || o.Quantity != 2 || o.AmountCents != 300 || o.Currency != "EUR" ||
			o.Status != order.StatusPendingPayment || o.ExpiresAt.Sub(o.CreatedAt).Round(time.Minute) != 15*time.Minute {
			t.Errorf("order %d as the store reads it: %+v", i, o)
		}
	}
	var events, sold int64
	for db, p := range pools {
		for _, sh := range m.OnDatabase(db) {
			var e int64
			q := "SELECT count(*) FROM " + sh.Schema() + ".outbox WHERE event_type = 'flashsale.order.created'"
			if err := p.QueryRow(ctx, q).Scan(&e); err != nil {
				t.Fatal(err)
			}
			events += e
		}
		var s int64
		if err := p.QueryRow(ctx, "SELECT coalesce(sum(sold), 0) FROM stock.allotments WHERE sale_id = 3").Scan(&s); err != nil {
			t.Fatal(err)
		}
		sold += s
	}
	if events != int64(n) || sold != int64(2*n) {
		t.Errorf("%d created events and %d units sold, want %d and %d", events, sold, n, 2*n)
	}
}

// TestCeilingsCopyTheServicesConstants: the Lua ceiling repeats the
// service's claim TTL rather than import its stock package; they must
// agree.
func TestCeilingsCopyTheServicesConstants(t *testing.T) {
	if claimTTL != int(inventory.ClaimTTL/time.Second) {
		t.Errorf("claimTTL %d s, the service's %s", claimTTL, inventory.ClaimTTL)
	}
}
