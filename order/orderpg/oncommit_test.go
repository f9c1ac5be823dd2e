package orderpg_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashsale/internal/testenv"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/shard"
)

// TestOnCommitIsToldOncePerTransactionAndShard: a burst of orders
// group-committed over 16 shards calls OnCommit exactly once for each
// transaction and shard that wrote outbox rows (a batch, never each
// order), which is what lets the relay's wake-up cost one message per
// batch.
func TestOnCommitIsToldOncePerTransactionAndShard(t *testing.T) {
	const buyers = 400
	cfg := testenv.Config(t, 16)
	pools := testenv.Pools(t, cfg)
	m, err := shard.NewMap(cfg.Shards, len(pools))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	store := orderpg.New(pools, m, orderpg.Options{MaxBatch: 256, Workers: 2, OnCommit: func(shard.ID) { calls.Add(1) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- store.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sale := burstSale(t, ctx, store, pools[0], buyers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			<-start
			b, _ := order.ParseBuyerID(fmt.Sprintf("oc-%d", i))
			k, _ := order.ParseIdemKey("k")
			if _, err := store.Create(ctx, order.NewOrder{Sale: sale, Buyer: b, Key: k, RequestHash: []byte("0123456789abcdef"),
				Qty: 1, Window: 15 * time.Minute, Deadline: time.Now().Add(time.Minute)}); err != nil {
				t.Errorf("buyer %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	var pairs int64
	for s := range shard.ID(m.Shards()) {
		var n int64
		if err := pools[m.Database(s)].QueryRow(ctx, "SELECT count(DISTINCT txid) FROM "+s.Schema()+".outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		pairs += n
	}
	if calls.Load() != pairs {
		t.Errorf("OnCommit told %d times for %d orders; %d transaction and shard pairs wrote outbox rows", calls.Load(), buyers, pairs)
	}
	t.Logf("%d orders, %d OnCommit calls", buyers, calls.Load())
}
