package invredis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/ratelimit"
)

// largestReply records the most hash fields one reply carried.
type largestReply struct{ max int }

func (l *largestReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *largestReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		n := 0
		switch c := cmd.(type) {
		case *redis.ScanCmd:
			keys, _ := c.Val()
			n = len(keys) / 2
		case *redis.MapStringStringCmd:
			n = len(c.Val())
		}
		l.max = max(l.max, n)
		return err
	}
}

func (l *largestReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestHoldsReadsALargeSaleInPages: the reconciler lists every reservation
// of a sale; for a sale of millions one reply would hold node 1 for
// seconds, so no reply may carry more than a page. 5,000 reservations
// come back, each once, in replies of at most ~1,000.
func TestHoldsReadsALargeSaleInPages(t *testing.T) {
	f := newFixture(t)
	cfg := testenv.Base(t)
	node := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0]})
	t.Cleanup(func() { _ = node.Close() })
	replies := &largestReply{}
	node.AddHook(replies)
	stock := invredis.NewStock(node, f.prefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})
	sale := f.newSale(t, 10_000)
	live := make([]inventory.LiveOrder, 5_000)
	for i := range live {
		live[i] = inventory.LiveOrder{Buyer: fmt.Sprintf("buyer-%d", i), Key: fmt.Sprintf("key-%d", i), Qty: 1, RequestHash: []byte{1}}
	}
	if _, err := f.stock.Rebuild(context.Background(), sale, live, 2); err != nil {
		t.Fatal(err)
	}
	holds, err := stock.Holds(context.Background(), sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, h := range holds {
		distinct[h.Buyer+"/"+h.Key] = true
	}
	if len(holds) != 5_000 || len(distinct) != 5_000 {
		t.Fatalf("%d holds, %d distinct; want 5,000 each", len(holds), len(distinct))
	}
	// The rebuild confirmed them all: the reconciler's list is what came
	// since, and skips the 5,000.
	one, _ := inventory.NewQuantity(1)
	for i := range 3 {
		if _, err := stock.Reserve(context.Background(), inventory.Reservation{Sale: sale.ID, Buyer: fmt.Sprintf("new-%d", i),
			Key: "k", Fingerprint: "01", Qty: one, ClientIP: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := stock.Unconfirmed(context.Background(), sale.ID)
	if err != nil || len(pending) != 3 {
		t.Fatalf("unconfirmed %d, %v; want the 3 new reservations", len(pending), err)
	}
	if replies.max > 2_000 {
		t.Fatalf("one reply carried %d reservations: a large sale would hold node 1 for its whole list", replies.max)
	}
}
