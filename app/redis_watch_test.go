package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"flashsale/app"
	"flashsale/internal/testenv"
)

// TestRedisLossIsRebuiltAndCounted: node 1 loses this test's keys, the
// epoch key included (a flush, confined to the test's prefix on the shared
// node). The instance notices by itself, with no request to the sale,
// rebuilds the sale from its orders and counts it on /metrics.
func TestRedisLossIsRebuiltAndCounted(t *testing.T) {
	ctx := context.Background()
	s := start(t, nil)
	debug := httptest.NewServer(app.DebugHandler(s.app.Metrics()))
	t.Cleanup(debug.Close)
	sale := s.createSale(10, 3)
	if r := s.order("watched", "k", sale, 2); r.Status != http.StatusCreated {
		t.Fatalf("order: %d %s", r.Status, r.Body)
	}

	rdb := s.redis()
	keys, err := rdb.Keys(ctx, s.cfg.RedisPrefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	key := s.cfg.RedisPrefix + ":{sale:" + sale + "}"
	var got map[string]float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n, err := rdb.HGet(ctx, key, "stock").Int()
		got = testenv.Scrape(t, debug.URL+"/metrics")
		if err == nil && n == 8 && got["flashsale_redis_sale_rebuilds_total"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock %d (%v), %v sales rebuilt; want the sale rebuilt to 8 and counted", n, err,
				got["flashsale_redis_sale_rebuilds_total"])
		}
	}
	if got["flashsale_redis_data_loss_detections_total"] < 1 {
		t.Errorf("detections %v, want at least 1", got["flashsale_redis_data_loss_detections_total"])
	}
}
