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

// largestReply records the most hash fields one reply carried, and the
// most arguments one script call was sent.
type largestReply struct{ max, maxArgs int }

func (l *largestReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *largestReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			l.maxArgs = max(l.maxArgs, len(cmd.Args()))
		}
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
// seconds, so no reply may carry more than a page, and no confirmation
// more than a page. 5,000 reservations come back, each once, in replies
// of at most ~1,000.
func TestHoldsReadsALargeSaleInPages(t *testing.T) {
	f := newFixture(t)
	cfg := testenv.Base(t)
	node := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0]})
	t.Cleanup(func() { _ = node.Close() })
	replies := &largestReply{}
	node.AddHook(replies)
	stock := invredis.NewStock(node, f.prefix, ratelimit.Limits{UserRate: 1e6, UserBurst: 1e6, IPRate: 1e6, IPBurst: 1e6})
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
	// since, and skips the 5,000; confirming 2,500 takes scripts of at most
	// a page each.
	one, _ := inventory.NewQuantity(1)
	for i := range 2_500 {
		if _, err := stock.Reserve(context.Background(), inventory.Reservation{Sale: sale.ID, Buyer: fmt.Sprintf("new-%d", i),
			Key: "k", Fingerprint: "01", Qty: one, ClientIP: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := stock.Unconfirmed(context.Background(), sale.ID)
	if err != nil || len(pending) != 2_500 {
		t.Fatalf("unconfirmed %d, %v; want the 2,500 new reservations", len(pending), err)
	}
	replies.maxArgs = 0
	if err := stock.ConfirmHolds(context.Background(), sale.ID, pending, 3); err != nil {
		t.Fatal(err)
	}
	if pending, err = stock.Unconfirmed(context.Background(), sale.ID); err != nil || len(pending) != 0 {
		t.Fatalf("unconfirmed %d after confirming, %v; want none", len(pending), err)
	}
	if replies.maxArgs > 1_100 {
		t.Fatalf("one confirm script was sent %d arguments: a long sale's would hold node 1", replies.maxArgs)
	}
	if replies.max > 2_000 {
		t.Fatalf("one reply carried %d reservations: a large sale would hold node 1 for its whole list", replies.max)
	}
}
