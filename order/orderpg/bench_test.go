package orderpg_test

// BenchmarkCommit measures the order store alone on the real PostgreSQL of
// scripts/stack.sh: Store.Create from 64 goroutines, with one order per
// transaction (batch=1) against group commit (batch=8, batch=64). Besides
// orders/s it reports orders/commit (the mean group size, from the xmin of
// the rows written), go-cpu-us/order (this process) and pg-cpu-us/order
// (the PostgreSQL backends of the test databases, read from /proc): CPU
// per order barely moves when other tenants of a shared machine take CPU
// away, unlike orders/s. See docs/benchmarks.md for the commands and the
// numbers.

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/shard"
)

// commitConc is the number of goroutines calling Create at once.
const commitConc = 64

func BenchmarkCommit(b *testing.B) {
	cfg := testenv.Config(b, 4)
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		b.Fatal(err)
	}
	pools := make([]*pgxpool.Pool, len(cfg.DatabaseURLs))
	for i, u := range cfg.DatabaseURLs {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			b.Fatal(err)
		}
		pc.MaxConns = int32(cfg.DBMaxConns)
		if pools[i], err = pgxpool.NewWithConfig(context.Background(), pc); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pools[i].Close)
	}
	var seq, sales atomic.Int64 // keys and sale ids, unique within the databases
	cases := []struct {
		name string
		opt  orderpg.Options
		conc int // callers at once; 0 is commitConc
	}{
		{"batch=1", orderpg.Options{MaxBatch: 1, Workers: 2}, 0},
		{"batch=8", orderpg.Options{MaxBatch: 8, Workers: 2}, 0},
		{"batch=64", orderpg.Options{MaxBatch: 64, Workers: 2}, 0},
		// One order per transaction again, but with as many transactions in
		// flight as the pool has connections: what PostgreSQL's own
		// sharing of WAL flushes gives without batching.
		{"batch=1,workers=16", orderpg.Options{MaxBatch: 1, Workers: cfg.DBMaxConns}, 0},
		// The service's settings (commit-batch 256, commit-workers 1) with
		// few and many callers: what a transaction costs beside what an
		// order costs, from the group sizes the callers allow.
		{"batch=256,workers=1,callers=32", orderpg.Options{MaxBatch: 256, Workers: 1}, 32},
		{"batch=256,workers=1,callers=256", orderpg.Options{MaxBatch: 256, Workers: 1}, 256},
	}
	for _, tc := range cases {
		conc := cmp.Or(tc.conc, commitConc)
		b.Run(tc.name, func(b *testing.B) {
			id, _ := inventory.NewSaleID(sales.Add(1))
			sale := inventory.Sale{ID: id, NewSale: inventory.NewSale{SKU: "SKU-B", Title: "Bench phone", PriceCents: 19900,
				Currency: "EUR", Stock: 1_000_000, PerUserLimit: 1_000_000, StartsAt: time.Now().Add(-time.Minute),
				EndsAt: time.Now().Add(time.Hour)}}
			store := orderpg.New(pools, m, tc.opt)
			ctx, cancel := context.WithCancel(context.Background())
			// A stock no run exhausts, split over the databases: it measures
			// the allotment check of each commit, not transfers.
			if err := store.Allot(ctx, id, 1<<40); err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- store.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Errorf("run: %v", err)
				}
			}()
			create := func() error {
				k := seq.Add(1)
				buyer, _ := order.ParseBuyerID("buyer-" + strconv.FormatInt(k%1000, 10))
				key, _ := order.ParseIdemKey("ck-" + strconv.FormatInt(k, 10))
				_, err := store.Create(ctx, order.NewOrder{Sale: sale, Buyer: buyer, Key: key,
					RequestHash: []byte("0123456789abcdef"), Qty: 1, Window: 15 * time.Minute,
					Deadline: time.Now().Add(time.Hour)})
				return err
			}
			// Warm every connection of the pools (statement cache) outside
			// the timer.
			var wg sync.WaitGroup
			for range conc {
				wg.Go(func() {
					if err := create(); err != nil {
						b.Errorf("warm-up: %v", err)
					}
				})
			}
			wg.Wait()
			if b.Failed() {
				b.FailNow()
			}

			p := runtime.GOMAXPROCS(0)
			b.SetParallelism((conc + p - 1) / p)
			var failed atomic.Int64
			var firstErr atomic.Value
			pg0 := testenv.PostgresCPU(b, cfg.DatabaseURLs)
			b.ResetTimer()
			cpu0 := testenv.SelfCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := create(); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			})
			b.StopTimer()
			cpu := testenv.SelfCPU() - cpu0
			pg1 := testenv.PostgresCPU(b, cfg.DatabaseURLs)
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d creates failed, e.g. %v", n, b.N, firstErr.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "go-cpu-us/order")
			if pg0 != nil && pg1 != nil {
				var d time.Duration
				for pid, t := range pg1 {
					d += t - pg0[pid]
				}
				b.ReportMetric(float64(d.Microseconds())/float64(b.N), "pg-cpu-us/order")
			}
			orders, txs := countCommits(b, pools, m, id)
			if orders != b.N+conc {
				b.Fatalf("%d orders stored, want %d", orders, b.N+conc)
			}
			b.ReportMetric(float64(orders)/float64(txs), "orders/commit")
		})
	}
}

// countCommits counts the sale's orders and the transactions that wrote
// them (distinct xmin per database: a batch spans the shards of its
// database).
func countCommits(tb testing.TB, pools []*pgxpool.Pool, m shard.Map, sale inventory.SaleID) (orders, txs int) {
	tb.Helper()
	for db, p := range pools {
		var parts []string
		for _, sh := range m.OnDatabase(db) {
			parts = append(parts, fmt.Sprintf("SELECT xmin::text AS x FROM %s.orders WHERE sale_id = $1", sh.Schema()))
		}
		var n, t int
		q := "SELECT count(*), count(DISTINCT x) FROM (" + strings.Join(parts, " UNION ALL ") + ") o"
		if err := p.QueryRow(context.Background(), q, sale.Int64()).Scan(&n, &t); err != nil {
			tb.Fatal(err)
		}
		orders += n
		txs += t
	}
	return orders, txs
}
