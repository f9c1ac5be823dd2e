package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/app"
	"flashsale/config"
	"flashsale/internal/testenv"
	"flashsale/shard"
)

// privateRedis is a redis-server of the test's own, so that it can be
// killed and paused without touching the shared stack; every write is in
// its append-only file, so a restart after kill -9 finds what was
// acknowledged.
func privateRedis(t *testing.T) *testenv.RedisServer {
	return testenv.StartRedis(t, "--appendfsync", "always")
}

// startOnPrivateRedis runs an instance whose Redis node 1 is r; the breaker
// stays open for open, long enough to time answers while it is.
func startOnPrivateRedis(t *testing.T, r *testenv.RedisServer, open time.Duration) *stack {
	return start(t, func(c *config.Config) {
		// A new slice: the prefix cleanup keeps the shared nodes' list.
		c.RedisAddrs = append([]string{r.Addr}, c.RedisAddrs[1:]...)
		c.BreakerOpen = open
		c.UserRate, c.UserBurst = 1000, 1000
	})
}

// held reads the sale's remaining stock and count of reservations from
// Redis node 1.
func held(t *testing.T, s *stack, saleID string) (remaining, reservations int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.cfg.RedisAddrs[0]})
	defer c.Close()
	key := fmt.Sprintf("%s:{sale:%s}", s.cfg.RedisPrefix, saleID)
	remaining, err := c.HGet(context.Background(), key, "stock").Int()
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.HLen(context.Background(), key+":res").Result()
	if err != nil {
		t.Fatal(err)
	}
	return remaining, int(n)
}

// timedOrder places one order and says how long the answer took.
func timedOrder(s *stack, buyer, saleID string) (reply, time.Duration) {
	begin := time.Now()
	r := s.order(buyer, "k-"+buyer, saleID, 1)
	return r, time.Since(begin)
}

// wantUnavailable checks r is a 503 service-unavailable problem with a
// Retry-After of 1 to maxRetry seconds.
func wantUnavailable(t *testing.T, r reply, maxRetry int) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.problemType(t) != "service-unavailable" {
		t.Fatalf("answered %d %s; want 503 service-unavailable", r.Status, r.Body)
	}
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 || n > maxRetry {
		t.Fatalf("Retry-After %q; want 1-%d seconds", r.Header.Get("Retry-After"), maxRetry)
	}
}

// refuseUntilOpen orders as new buyers until the breaker of dep is open,
// each answer a fast 503; it returns how many orders reached dep before.
func refuseUntilOpen(t *testing.T, s *stack, saleID, dep string, each time.Duration, buyer func(int) string) int {
	t.Helper()
	// Failures must also spread over breaker-spread: a few more fast ones.
	for i, deadline := 0, time.Now().Add(20*time.Second); time.Now().Before(deadline); i++ {
		r, took := timedOrder(s, buyer(i), saleID)
		wantUnavailable(t, r, 1+int(s.cfg.BreakerOpen/time.Second))
		if took > each {
			t.Fatalf("order %d took %s while %s was down; want under %s", i, took, dep, each)
		}
		if strings.Contains(string(r.Body), dep+" is unavailable, retry after") {
			t.Logf("the breaker of %s opened after %d orders", dep, i)
			return i
		}
	}
	t.Fatalf("the breaker of %s never opened", dep)
	return 0
}

// wantFastWhileOpen checks that with the breaker of dep open every order is
// refused within 100 ms, the first told to come back when the breaker
// half-opens (it just opened), and /readyz names the open breaker.
func wantFastWhileOpen(t *testing.T, s *stack, saleID, dep string, buyer func(int) string) {
	t.Helper()
	for i := range 20 {
		r, took := timedOrder(s, buyer(1000+i), saleID)
		wantUnavailable(t, r, 1+int(s.cfg.BreakerOpen/time.Second))
		if n, _ := strconv.Atoi(r.Header.Get("Retry-After")); i == 0 && n < int(s.cfg.BreakerOpen/time.Second)-1 {
			t.Errorf("Retry-After %d s right after the breaker opened for %s", n, s.cfg.BreakerOpen)
		}
		if took >= 100*time.Millisecond {
			t.Errorf("order %d took %s with the breaker open; want under 100ms", i, took)
		}
	}
	r := s.do("GET", "/readyz", "", nil, nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "breaker "+dep) {
		t.Errorf("readyz with the breaker of %s open: %d %s; want 503 naming it", dep, r.Status, r.Body)
	}
}

// waitOrdersAgain orders until one is created: the breaker closed again.
func waitOrdersAgain(t *testing.T, s *stack, saleID string, buyer func(int) string) {
	t.Helper()
	var r reply
	for i, deadline := 0, time.Now().Add(20*time.Second); time.Now().Before(deadline); i++ {
		if r = s.order(buyer(2000+i), "k", saleID, 1); r.Status == http.StatusCreated {
			waitReady(t, s, http.StatusOK, "")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("orders never succeeded again; last %d %s", r.Status, r.Body)
}

func redisBuyer(i int) string { return fmt.Sprint("redis-buyer-", i) }

// TestRedisKilledFailsFast kills -9 Redis node 1 mid-sale: buyers get 503
// service-unavailable with Retry-After at once (not a 500 after seconds),
// within 100 ms once the breaker is open, /readyz names the open breaker,
// nothing is held, and orders succeed again once Redis is back.
func TestRedisKilledFailsFast(t *testing.T) {
	rd := privateRedis(t)
	s := startOnPrivateRedis(t, rd, 3*time.Second)
	sale := s.createSale(100, 5)
	if r := s.order("before", "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("order before the kill: %d %s", r.Status, r.Body)
	}
	rd.Kill()
	refuseUntilOpen(t, s, sale, "redis", time.Second, redisBuyer)
	wantFastWhileOpen(t, s, sale, "redis", redisBuyer)
	debug := httptest.NewServer(app.DebugHandler(s.app.Metrics()))
	defer debug.Close()
	if n := testenv.Scrape(t, debug.URL+"/metrics")[`flashsale_stock_seconds_count{op="reserve",outcome="unavailable"}`]; n < 20 {
		t.Errorf("%v reservations counted unavailable; want the breaker's refusals among them", n)
	}
	rd.Start() // from its append-only file
	if remaining, res := held(t, s, sale); remaining != 99 || res != 1 {
		t.Fatalf("after the outage: %d units left, %d reservations; want 99 and the one order's", remaining, res)
	}
	waitOrdersAgain(t, s, sale, redisBuyer)
}

// TestRedisPausedFailsFast pauses Redis node 1 (SIGSTOP), the slow
// failure: each order fails within about twice the read timeout until the breaker
// opens, then within 100 ms; only the few reservations sent before it
// opened can be held (their outcome is unknown; the reconciler settles
// them), and orders succeed again after SIGCONT.
func TestRedisPausedFailsFast(t *testing.T) {
	rd := privateRedis(t)
	s := startOnPrivateRedis(t, rd, 3*time.Second)
	sale := s.createSale(100, 5)
	rd.Signal(syscall.SIGSTOP)
	sent := refuseUntilOpen(t, s, sale, "redis", 3*time.Second, redisBuyer)
	wantFastWhileOpen(t, s, sale, "redis", redisBuyer)
	rd.Signal(syscall.SIGCONT)
	if remaining, res := held(t, s, sale); res > sent || remaining != 100-res {
		t.Fatalf("after the pause: %d units left, %d reservations; want at most the %d sent before the breaker opened",
			remaining, res, sent)
	}
	waitOrdersAgain(t, s, sale, redisBuyer)
}

// TestDatabaseDownFailsFastAndReleases cuts database 1 (its address then
// refuses connections): a commit that could not even connect certainly did
// not happen, so its reservation goes back at once and the buyer gets 503
// service-unavailable; the breaker of that database opens (only that one:
// buyers on database 0 still buy), /readyz names it, and orders succeed
// again once the database is back.
func TestDatabaseDownFailsFastAndReleases(t *testing.T) {
	var pg *testenv.Proxy
	s := start(t, func(c *config.Config) {
		u, _ := url.Parse(c.DatabaseURLs[1])
		pg = testenv.NewProxy(t, u.Host)
		u.Host = pg.Addr()
		c.DatabaseURLs[1] = u.String()
		c.BreakerOpen = 3 * time.Second
		c.UserRate, c.UserBurst = 1000, 1000
	})
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	on := func(db int) func(int) string {
		return func(i int) string { return buyerOn(m, db, fmt.Sprint("pg-buyer-", i)) }
	}
	sale := s.createSale(100, 1)
	pg.Cut()
	// Pooled connections idle for a second are pinged before use, so none
	// the proxy closed is handed out: what follows are refused dials.
	time.Sleep(1100 * time.Millisecond)
	for i := range 3 {
		r := s.order(on(1)(i), "k", sale, 1)
		wantUnavailable(t, r, 4)
		if remaining, res := held(t, s, sale); remaining != 100 || res != 0 {
			t.Fatalf("right after refused order %d: %d units left, %d reservations; want all 100 back", i, remaining, res)
		}
	}
	refuseUntilOpen(t, s, sale, "postgres[1]", time.Second, on(1))
	wantFastWhileOpen(t, s, sale, "postgres[1]", on(1))
	if r := s.order(on(0)(0), "k", sale, 1); r.Status != http.StatusCreated {
		t.Fatalf("a buyer on database 0 while database 1 is down: %d %s", r.Status, r.Body)
	}
	if remaining, res := held(t, s, sale); remaining != 99 || res != 1 {
		t.Fatalf("after the outage: %d units left, %d reservations; want only database 0's order", remaining, res)
	}
	pg.Restore()
	waitOrdersAgain(t, s, sale, on(1))
}

// buyerOn is the first buyer id made of base and a suffix whose shard
// lives on database db.
func buyerOn(m shard.Map, db int, base string) string {
	for i := 0; ; i++ {
		b := fmt.Sprint(base, "-", i)
		if m.Database(m.ForUser(b)) == db {
			return b
		}
	}
}

// TestDatabaseNotAnsweringFailsFast points database 1 at a socket that
// takes connections but never answers, as a paused PostgreSQL does (the
// kernel completes the handshake; nobody speaks): each order waits at most
// the connect timeout, not the commit's 5 s, is refused with its units back
// at once (the commit never started), and once the breaker is open answers
// come within 100 ms.
func TestDatabaseNotAnsweringFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never accepted
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := start(t, func(c *config.Config) {
		u, _ := url.Parse(c.DatabaseURLs[1])
		u.Host = ln.Addr().String()
		c.DatabaseURLs[1] = u.String()
		c.BreakerOpen = 3 * time.Second
		c.UserRate, c.UserBurst = 1000, 1000
	})
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	on1 := func(i int) string { return buyerOn(m, 1, fmt.Sprint("silent-", i)) }
	sale := s.createSale(100, 1)
	for i := range 2 {
		r, took := timedOrder(s, on1(100+i), sale)
		wantUnavailable(t, r, 4)
		if took > 4*time.Second {
			t.Fatalf("order %d took %s; want the 2 s connect timeout, not the commit's 5 s", i, took)
		}
		if remaining, res := held(t, s, sale); remaining != 100 || res != 0 {
			t.Fatalf("right after refused order %d: %d units left, %d reservations; want all 100 back", i, remaining, res)
		}
	}
	refuseUntilOpen(t, s, sale, "postgres[1]", 4*time.Second, on1)
	wantFastWhileOpen(t, s, sale, "postgres[1]", on1)
}
