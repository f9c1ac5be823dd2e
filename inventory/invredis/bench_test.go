package invredis_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/ratelimit"
)

// reserver is what the buy path calls: Stock or BatchedStock.
type reserver interface {
	Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error)
}

// BenchmarkReserve compares one script call per reservation with batched
// reservations on the real Redis node 1, 64 concurrent buyers on one sale
// (the shape of a flash sale's burst), each reservation a new buyer. It
// reports reservations/s, the Go CPU (this process) and the Redis server
// CPU per reservation, and script calls per reservation. Run with
// -benchtime 20000x or more; rate limits are raised so only the stock
// decides.
//
//	go test -run '^$' -bench BenchmarkReserve -benchtime 20000x -count 3 ./inventory/
func BenchmarkReserve(b *testing.B) {
	for _, mode := range []struct {
		name  string
		batch int
	}{{"one-call-each", 0}, {"batched-64", 64}} {
		b.Run(mode.name, func(b *testing.B) {
			f := newFixture(b)
			sale := f.newSale(b, 100_000_000)
			stock := invredis.NewStock(f.node1, f.prefix, ratelimit.Limits{UserRate: 1e6, UserBurst: 1e6, IPRate: 1e9, IPBurst: 1e9})
			calls := &scriptCounter{}
			f.node1.AddHook(calls)
			var r reserver = stock
			if mode.batch > 0 {
				r = runBatched(b, stock, mode.batch)
			}
			benchReserve(b, f, r, sale.ID, calls)
		})
	}
}

func benchReserve(b *testing.B, f fixture, r reserver, sale inventory.SaleID, calls *scriptCounter) {
	one, _ := inventory.NewQuantity(1)
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var seq atomic.Int64
	calls.n.Store(0)
	cpu0, redis0 := testenv.SelfCPU(), testenv.RedisCPU(b, f.node1)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buyer := "b" + strconv.FormatInt(seq.Add(1), 10)
			if _, err := r.Reserve(context.Background(), inventory.Reservation{Sale: sale, Buyer: buyer, Key: "k",
				Fingerprint: "fp", Qty: one, ClientIP: "10.0.0.1"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(n/time.Since(start).Seconds(), "reservations/s")
	b.ReportMetric(float64((testenv.SelfCPU()-cpu0).Microseconds())/n, "go-cpu-us/op")
	b.ReportMetric(float64((testenv.RedisCPU(b, f.node1)-redis0).Microseconds())/n, "redis-cpu-us/op")
	b.ReportMetric(float64(calls.n.Load())/n, "script-calls/op")
}
