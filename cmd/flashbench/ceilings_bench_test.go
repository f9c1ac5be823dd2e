package main

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/shard"
)

// BenchmarkInsertCeilingAgainstOrderStore runs the insert ceiling's group
// commit and the service's order store (orderpg.Store.Create) side by side
// on the same databases, with the service's batch size, 2 workers per
// database and 64 concurrent orders: the ceiling only means what it says
// if the two commit at the same rate.
//
//	go test -run '^$' -bench BenchmarkInsertCeilingAgainstOrderStore -benchtime 20000x -count 3 ./cmd/flashbench/
func BenchmarkInsertCeilingAgainstOrderStore(b *testing.B) {
	cfg := testenv.Config(b, 4)
	pools := testenv.Pools(b, cfg)
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		b.Fatal(err)
	}
	var seq, sales atomic.Int64
	b.Run("ceiling", func(b *testing.B) {
		g := newGroupCommit(pools, m, cfg.CommitBatch, 2)
		ctx := runUntilCleanup(b, g.Run)
		sale := sales.Add(1)
		if err := g.allot(ctx, sale, 1<<36); err != nil {
			b.Fatal(err)
		}
		benchCreate(b, func() error {
			k := strconv.FormatInt(seq.Add(1), 36)
			ok, err := g.Create(ctx, newOrder{sale: sale, buyer: "b-" + k, key: "k-" + k, hash: []byte("flashbench"), qty: 1,
				price: 100, currency: "EUR", window: 15 * time.Minute, deadline: time.Now().Add(10 * time.Second)})
			if err == nil && !ok {
				return order.ErrStockRefused
			}
			return err
		})
	})
	b.Run("orderpg", func(b *testing.B) {
		store := orderpg.New(pools, m, orderpg.Options{MaxBatch: cfg.CommitBatch, Workers: 2})
		ctx := runUntilCleanup(b, func(ctx context.Context) { _ = store.Run(ctx) })
		id, _ := inventory.NewSaleID(sales.Add(1))
		if err := store.Allot(ctx, id, 1<<40); err != nil {
			b.Fatal(err)
		}
		sale := inventory.Sale{ID: id, NewSale: inventory.NewSale{PriceCents: 100, Currency: "EUR"}}
		benchCreate(b, func() error {
			k := strconv.FormatInt(seq.Add(1), 36)
			buyer, _ := order.ParseBuyerID("b-" + k)
			key, _ := order.ParseIdemKey("k-" + k)
			_, err := store.Create(ctx, order.NewOrder{Sale: sale, Buyer: buyer, Key: key, RequestHash: []byte("flashbench"),
				Qty: 1, Window: 15 * time.Minute, Deadline: time.Now().Add(10 * time.Second)})
			return err
		})
	})
}

// runUntilCleanup runs run until the benchmark's cleanup.
func runUntilCleanup(b *testing.B, run func(context.Context)) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	return context.Background()
}

// benchCreate calls create b.N times from 64 goroutines and reports
// orders/s.
func benchCreate(b *testing.B, create func() error) {
	p := runtime.GOMAXPROCS(0)
	b.SetParallelism((64 + p - 1) / p)
	var failed atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(); err != nil && failed.Add(1) == 1 {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}
