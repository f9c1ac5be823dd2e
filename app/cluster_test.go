package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"flashsale/config"
	"flashsale/internal/testenv"
)

// TestSaleOnRedisCluster runs a sale through an instance whose stock lives
// on a three-master Redis Cluster of the test's own: a burst sells exactly
// the stock, the sale's keys are on the cluster and not on node 1, a
// cancel gives its units back on the cluster and reopens the sold-out
// sale for a new buyer, a payment goes through, and a retry replays.
func TestSaleOnRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	s := start(t, func(c *config.Config) {
		c.StockRedisAddrs = cluster.Addrs
		c.UserRate, c.UserBurst = 1000, 1000
	})
	cc := cluster.Client()
	t.Cleanup(func() { _ = cc.Close() })
	sale := s.createSale(20, 1)
	var mu sync.Mutex
	outcomes, orders := map[string]int{}, map[string]string{}
	testenv.Burst(300, func(i int) {
		buyer := fmt.Sprintf("buyer-%d", i)
		r := s.order(buyer, "k", sale, 1)
		mu.Lock()
		defer mu.Unlock()
		if r.Status != http.StatusCreated {
			outcomes[r.problemType(t)]++
			return
		}
		outcomes["201"]++
		orders[buyer] = r.json(t)["id"].(string)
	})
	if outcomes["201"] != 20 || outcomes["sold-out"] != 280 || len(outcomes) != 2 {
		t.Fatalf("outcomes %v, want 20 created and 280 sold-out", outcomes)
	}
	if n := s.sumShards(`SELECT coalesce(sum(quantity), 0)::int FROM __shard__.orders WHERE sale_id = $1`, sale); n != 20 {
		t.Errorf("%d units in PostgreSQL orders, want 20", n)
	}
	saleKey := fmt.Sprintf("%s:{sale:%s}", s.cfg.RedisPrefix, sale)
	if left := clusterStock(t, cc, saleKey); left != 0 {
		t.Errorf("cluster stock %d after the burst, want 0", left)
	}
	if n, err := s.redis().Exists(context.Background(), saleKey).Result(); err != nil || n != 0 {
		t.Errorf("node 1 holds the sale (%d, %v): the stock did not go to the cluster", n, err)
	}

	var buyer, id string
	for buyer, id = range orders {
		break
	}
	if r := s.do("POST", "/v1/orders/"+id+"/cancel", s.token(buyer, false), nil, nil); r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	if left := clusterStock(t, cc, saleKey); left != 1 {
		t.Errorf("cluster stock %d after a cancel, want 1", left)
	}
	late := s.placed("late-buyer", "k", sale, 1)
	if r := s.do("POST", "/v1/orders/"+late+"/pay", s.token("late-buyer", false), nil, nil); r.Status != http.StatusOK {
		t.Errorf("pay: %d %s", r.Status, r.Body)
	}
	if r := s.order("late-buyer", "k", sale, 1); r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry of the late order: %d %s", r.Status, r.Body)
	}
}

// clusterStock is the sale's stock as the cluster holds it.
func clusterStock(t *testing.T, cc *redis.ClusterClient, saleKey string) int {
	t.Helper()
	n, err := cc.HGet(context.Background(), saleKey, "stock").Int()
	if errors.Is(err, redis.Nil) {
		t.Fatalf("the cluster holds no %s", saleKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}
