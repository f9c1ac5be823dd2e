package invredis_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/ratelimit"
)

// fixture is the live stock on Redis node 1 of the real stack, under the
// test's own key prefix: sales enter it the way every sale does, by a
// rebuild, so these tests need no PostgreSQL.
type fixture struct {
	stock  *invredis.Stock
	node1  *redis.Client
	prefix string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	cfg := testenv.Base(t)
	cfg.RedisPrefix = testenv.RedisPrefix(t, cfg.RedisAddrs)
	node1 := testenv.Redis(t, cfg, 0)
	return fixture{node1: node1, prefix: cfg.RedisPrefix,
		stock: invredis.NewStock(node1, cfg.RedisPrefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})}
}

// saleIDs numbers the fixture's sales; each test's prefix keeps them apart.
var saleIDs atomic.Int64

// newSale loads an active sale of stock units, five per buyer.
func (f fixture) newSale(t testing.TB, stock int) inventory.Sale {
	t.Helper()
	id, err := inventory.NewSaleID(saleIDs.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	sale := inventory.Sale{ID: id, NewSale: inventory.NewSale{SKU: "S", Title: "T", PriceCents: 100, Currency: "EUR",
		Stock: stock, PerUserLimit: 5, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}}
	if _, err := f.stock.Rebuild(context.Background(), sale, nil, 1); err != nil {
		t.Fatal(err)
	}
	return sale
}

// remaining is the sale's live stock.
func (f fixture) remaining(t testing.TB, id inventory.SaleID) int {
	t.Helper()
	left, err := f.stock.Remaining(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return left
}
