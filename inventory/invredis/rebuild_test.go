package invredis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/ratelimit"
)

// TestARebuildLongerThanTheBuyPathsTimeoutCompletes: a sale's rebuild is
// one script over all its live orders. On a client with the buy path's
// short timeout a large sale's script outlives it (here 30,000 orders
// against a 2 ms timeout, standing in for a million against 500 ms); on
// the client given to RebuildWith it completes and answers.
func TestARebuildLongerThanTheBuyPathsTimeoutCompletes(t *testing.T) {
	f := newFixture(t)
	cfg := testenv.Base(t)
	short := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0], MaxRetries: -1,
		ReadTimeout: 2 * time.Millisecond, WriteTimeout: 2 * time.Millisecond})
	long := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0], ReadTimeout: invredis.RebuildTimeout})
	t.Cleanup(func() { _ = short.Close(); _ = long.Close() })
	stock := invredis.NewStock(short, f.prefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})
	sale := f.newSale(t, 100_000)
	live := make([]inventory.LiveOrder, 30_000)
	for i := range live {
		live[i] = inventory.LiveOrder{Buyer: fmt.Sprintf("buyer-%d", i), Key: fmt.Sprintf("key-%d", i), Qty: 1, RequestHash: []byte{1, 2}}
	}
	ctx := context.Background()
	if _, err := stock.Rebuild(ctx, sale, live, 2); err == nil {
		t.Fatal("the rebuild answered within 2 ms on the short client: the test needs a slower script")
	}
	stock.RebuildWith(long)
	got, err := stock.Rebuild(ctx, sale, live, 3)
	if err != nil {
		t.Fatalf("rebuild on the rebuild client: %v", err)
	}
	if got.Stock != 70_000 || f.remaining(t, sale.ID) != 70_000 {
		t.Fatalf("rebuilt %+v, remaining %d; want 70,000 left", got, f.remaining(t, sale.ID))
	}
}
