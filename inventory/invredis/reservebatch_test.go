package invredis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory"
	"flashsale/inventory/invredis"
)

// scriptCounter counts the script calls a client sends, pipelined or not.
type scriptCounter struct{ n atomic.Int64 }

func (c *scriptCounter) count(cmd redis.Cmder) {
	if name := cmd.Name(); name == "evalsha" || name == "eval" {
		c.n.Add(1)
	}
}

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.count(cmd); return next(ctx, cmd) }
}

func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func runBatched(t testing.TB, s *invredis.Stock, maxBatch int) *invredis.BatchedStock {
	t.Helper()
	b := invredis.NewBatchedStock(s, maxBatch, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// TestBatchedReservationsUnderContention releases 500 buyers at once on a
// 100-unit sale through the batched stock: exactly 100 reserve, the rest
// are sold out, Redis holds no stock, and the reservations travel in far
// fewer script calls than one each.
func TestBatchedReservationsUnderContention(t *testing.T) {
	f := newFixture(t)
	sale := f.newSale(t, 100)
	calls := &scriptCounter{}
	f.node1.AddHook(calls)
	b := runBatched(t, f.stock, 64)
	one, _ := inventory.NewQuantity(1)
	const buyers = 500
	var reserved, soldOut atomic.Int32
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range buyers {
		wg.Go(func() {
			<-gate
			_, err := b.Reserve(context.Background(), inventory.Reservation{Sale: sale.ID, Buyer: fmt.Sprintf("b%d", i),
				Key: "k", Fingerprint: "fp", Qty: one, ClientIP: "127.0.0.1"})
			switch {
			case err == nil:
				reserved.Add(1)
			case errors.Is(err, inventory.ErrSoldOut):
				soldOut.Add(1)
			default:
				t.Errorf("buyer %d: %v", i, err)
			}
		})
	}
	close(gate)
	wg.Wait()
	if reserved.Load() != 100 || soldOut.Load() != buyers-100 {
		t.Errorf("%d reserved, %d sold out; want 100 and %d", reserved.Load(), soldOut.Load(), buyers-100)
	}
	if left, err := f.stock.Remaining(context.Background(), sale.ID); err != nil || left != 0 {
		t.Errorf("Redis stock %d (%v), want 0", left, err)
	}
	t.Logf("%d script calls", calls.n.Load())
	if n := calls.n.Load(); n >= buyers/2 {
		t.Errorf("%d script calls for %d reservations; batching should need far fewer", n, buyers)
	}
}

// outcome names what a reservation came to, for comparing two runs.
func outcome(r inventory.Reserved, err error) string {
	for _, e := range []error{inventory.ErrSoldOut, inventory.ErrLimitReached, inventory.ErrKeyClaimed,
		inventory.ErrKeyReused, inventory.ErrSaleNotActive, inventory.ErrSaleNotFound} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("reserved, %d left", r.StockLeft)
}

// TestBatchOutcomesMatchOneByOne sends one batch that mixes two sales and
// every outcome (reserved, replayed key, reused key, sold out, limit) and
// compares it with the same reservations made one call each on twin
// sales: a batch changes the round trips, never an outcome.
func TestBatchOutcomesMatchOneByOne(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	plan := func(a, b inventory.SaleID) []inventory.Reservation {
		q := func(n int64) inventory.Quantity { v, _ := inventory.NewQuantity(n); return v }
		r := func(s inventory.SaleID, buyer, key, fp string, n int64) inventory.Reservation {
			return inventory.Reservation{Sale: s, Buyer: buyer, Key: key, Fingerprint: fp, Qty: q(n), ClientIP: "10.0.0.1"}
		}
		return []inventory.Reservation{
			r(a, "u1", "k1", "fp1", 2),   // reserved, 1 left
			r(a, "u1", "k1", "fp1", 2),   // the same request again: claimed
			r(a, "u1", "k1", "other", 2), // the key with another body: reused
			r(b, "u2", "k1", "fp1", 1),   // reserved on the other sale
			r(a, "u2", "k2", "fp2", 2),   // more than is left: sold out
			r(b, "u3", "k1", "fp1", 1),   // sold out
			r(a, "u4", "k1", "fp1", 1),   // reserved, 0 left
			r(a, "u1", "k9", "fp9", 4),   // 2 held + 4 above the limit of 5
		}
	}
	batched := plan(f.newSale(t, 3).ID, f.newSale(t, 1).ID)
	single := plan(f.newSale(t, 3).ID, f.newSale(t, 1).ID)
	got := f.stock.ReserveBatch(ctx, batched)
	for i, r := range single {
		res, err := f.stock.Reserve(ctx, r)
		want := outcome(res, err)
		if g := outcome(got[i].Val, got[i].Err); g != want {
			t.Errorf("reservation %d: batched %q, one by one %q", i, g, want)
		}
	}
}

// TestBatchSurvivesLostScriptCache flushes Redis's script cache, as a
// restart does: the next batch loads the script again instead of failing.
func TestBatchSurvivesLostScriptCache(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.newSale(t, 5), f.newSale(t, 5)
	one, _ := inventory.NewQuantity(1)
	r := func(s inventory.SaleID) inventory.Reservation {
		return inventory.Reservation{Sale: s, Buyer: "u", Key: "k", Fingerprint: "fp", Qty: one, ClientIP: "10.0.0.1"}
	}
	if err := f.node1.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, res := range f.stock.ReserveBatch(ctx, []inventory.Reservation{r(a.ID), r(b.ID)}) {
		if res.Err != nil || res.Val.StockLeft != 4 {
			t.Errorf("reservation %d after SCRIPT FLUSH: %+v", i, res)
		}
	}
}
