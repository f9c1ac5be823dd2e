package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/app"
	"flashsale/internal/testenv"
)

// TestRedisLossIsRebuiltAndCounted: node 1 loses this test's keys, the
// epoch key included (a flush, confined to the test's prefix on the shared
// node). The instance notices by itself, with no request to the sale,
// rebuilds the sale from its orders and counts it on /metrics.
func TestRedisLossIsRebuiltAndCounted(t *testing.T) {
	ctx := context.Background()
	s, debug, sale, keys := watchedSale(t)
	rdb := s.redis()
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

// TestAFailingRebuildRoundIsCountedAndRetried: node 1 loses this test's
// keys and a key of the sale is left of the wrong type, so the rebuild
// script fails; /metrics counts the failed round, and once the key is
// gone the round put off runs again and rebuilds the sale.
func TestAFailingRebuildRoundIsCountedAndRetried(t *testing.T) {
	ctx := context.Background()
	s, debug, sale, keys := watchedSale(t)
	rdb := s.redis()
	key := s.cfg.RedisPrefix + ":{sale:" + sale + "}"
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keys...)
		p.Set(ctx, key+":res", "not a hash", 0) // HSETNX on it fails: WRONGTYPE
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, debug.URL, "flashsale_redis_rebuild_rounds_failed_total", 1)
	if err := rdb.Del(ctx, key+":res").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if n, err := rdb.HGet(ctx, key, "stock").Int(); err == nil && n == 8 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("stock %d (%v) after the failed round; want the sale rebuilt to 8", n, err)
		}
	}
}

// waitMetric waits until the debug handler at url reports name at least
// want.
func waitMetric(t *testing.T, url, name string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := testenv.Scrape(t, url+"/metrics")[name]
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want at least %v", name, got, want)
		}
	}
}

// watchedSale starts an instance with its debug handler, a sale of 10 with
// one order of 2, and lists the test's keys on node 1.
func watchedSale(t *testing.T) (*stack, *httptest.Server, string, []string) {
	t.Helper()
	s := start(t, nil)
	debug := httptest.NewServer(app.DebugHandler(s.app.Metrics()))
	t.Cleanup(debug.Close)
	sale := s.createSale(10, 3)
	if r := s.order("watched", "k", sale, 2); r.Status != http.StatusCreated {
		t.Fatalf("order: %d %s", r.Status, r.Body)
	}
	keys, err := s.redis().Keys(context.Background(), s.cfg.RedisPrefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return s, debug, sale, keys
}
