package order_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory"
)

// TestRedisRollbackSellsNoUnitTwice: Redis node 1 loses the last
// reservations of a sold-out sale — its keys are put back as a copy taken
// earlier had them, which is what a failover to a lagging replica does —
// and so lets new buyers through. PostgreSQL refuses every one of them as
// sold out: no order exists beyond the stock, and each refusal drops a
// phantom unit, so Redis walks back to none left.
func TestRedisRollbackSellsNoUnitTwice(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 6)
	r.placeAll(t, sale, "early", 2)
	snap := r.snapshot(t, sale)
	r.placeAll(t, sale, "late", 4)
	if _, _, err := r.svc.Place(ctx, request(t, sale, "after", "k", 1)); !errors.Is(err, inventory.ErrSoldOut) {
		t.Fatalf("after the last unit: %v, want sold out", err)
	}
	r.restore(t, sale, snap)
	r.soldOut.Reopen(sale) // as the reopen message would, had Redis announced its units
	if n := r.remaining(t, sale); n != 4 {
		t.Fatalf("Redis believes %d units are left after the rollback, want 4", n)
	}

	var created, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 12 {
		wg.Go(func() {
			<-start
			_, _, err := r.svc.Place(ctx, request(t, sale, fmt.Sprintf("new-%d", i), "k", 1))
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, inventory.ErrSoldOut):
				refused.Add(1)
			default:
				t.Errorf("buyer %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if created.Load() != 0 || refused.Load() != 12 {
		t.Fatalf("%d orders beyond the stock, %d refused; want 0 and 12", created.Load(), refused.Load())
	}
	if live, err := r.store.LiveUnits(ctx, sale); err != nil || live != 6 {
		t.Fatalf("%d units in live orders (%v), want the stock, 6", live, err)
	}
	if n := r.remaining(t, sale); n != 0 {
		t.Fatalf("Redis still believes %d units are left, want 0", n)
	}
}

// placeAll places one order for each of n buyers.
func (r *rig) placeAll(t *testing.T, sale inventory.SaleID, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, _, err := r.svc.Place(context.Background(), request(t, sale, fmt.Sprintf("%s-%d", prefix, i), "k", 1)); err != nil {
			t.Fatalf("%s-%d: %v", prefix, i, err)
		}
	}
}

// snapshot dumps every Redis key of the sale.
func (r *rig) snapshot(t *testing.T, sale inventory.SaleID) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range r.saleKeys(t, sale) {
		v, err := r.node1.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// restore puts the sale's Redis keys back as snap had them.
func (r *rig) restore(t *testing.T, sale inventory.SaleID, snap map[string]string) {
	t.Helper()
	ctx := context.Background()
	if keys := r.saleKeys(t, sale); len(keys) > 0 {
		if err := r.node1.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range snap {
		if err := r.node1.Restore(ctx, k, 0, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *rig) saleKeys(t *testing.T, sale inventory.SaleID) []string {
	t.Helper()
	var keys []string
	iter := r.node1.Scan(context.Background(), 0, r.prefix+":{sale:"+sale.String()+"}*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return keys
}
