package app_test

// The order path with the asynchronous half on and off, side by side.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale/config"
	"flashsale/internal/testenv"
	"flashsale/shard"
)

// BenchmarkPlaceOrderAsync is BenchmarkPlaceOrder with the asynchronous
// half on (the outbox relay publishing to Kafka, the event consumers
// applying each event) and off, side by side, so its cost cannot hide: the
// other order benchmarks run with both off, as testenv does. With both on,
// the CPU is read once the relay has published every order's event and the
// ledger has recorded every order, so it holds all the work an order
// causes; orders/s counts only the HTTP answers.
//
// cpu-us/order is this process (client, service, relay, consumers) +
// PostgreSQL's backends of the instance's databases + the Kafka broker
// (the whole broker, shared with other users of the stack); each part is
// reported too, and redis-cpu-us/order (node 1, whole server) beside them.
func BenchmarkPlaceOrderAsync(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(map[bool]string{true: "async=on", false: "async=off"}[on], func(b *testing.B) {
			s := startBench(b, func(c *config.Config) {
				tuneUnlimited(c)
				if on {
					testenv.Topic(b, c)
					c.RelayEnabled, c.ConsumersEnabled = true, true
				}
			})
			b.Run(concName(), func(b *testing.B) { s.placeOrdersAsync(b, on) })
		})
	}
}

// placeOrdersAsync sends b.N orders on a new sale and reports the CPU
// they cost across the processes, waiting for their events when on.
func (s *benchStack) placeOrdersAsync(b *testing.B, on bool) {
	sale := s.createSale(b.N+benchConc, b.N/benchBuyers+2+benchConc)
	mk := s.orderRequests(sale)
	fire(b, s.client, benchConc, benchConc/2, mk, http.StatusCreated) // warm the pools and connections
	node1 := testenv.Redis(b, s.cfg, 0)
	if on {
		s.waitAsync(b, sale, benchConc/2)
	}
	pg0, redis0 := testenv.PostgresCPU(b, s.cfg.DatabaseURLs), testenv.RedisCPU(b, node1)
	kafka0, kafkaOK := testenv.KafkaCPU(s.cfg.KafkaBrokers[0])
	self0 := testenv.SelfCPU()
	res := hammer(b, s.client, benchConc, mk, http.StatusCreated)
	if n := res.bad.Load(); n > 0 {
		b.Fatalf("%d of %d orders were not 201, e.g. %s", n, b.N, res.sample)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	if on {
		s.waitAsync(b, sale, b.N+benchConc/2)
	}
	self := testenv.SelfCPU() - self0
	pg1, redis1 := testenv.PostgresCPU(b, s.cfg.DatabaseURLs), testenv.RedisCPU(b, node1)
	kafka1, _ := testenv.KafkaCPU(s.cfg.KafkaBrokers[0])
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	total := self
	b.ReportMetric(per(self), "go-cpu-us/order")
	if pg0 != nil && pg1 != nil {
		total += cpuSince(pg0, pg1)
		b.ReportMetric(per(cpuSince(pg0, pg1)), "pg-cpu-us/order")
	}
	if kafkaOK {
		total += kafka1 - kafka0
		b.ReportMetric(per(kafka1-kafka0), "kafka-cpu-us/order")
	}
	b.ReportMetric(per(total), "cpu-us/order")
	b.ReportMetric(per(redis1-redis0), "redis-cpu-us/order")
}

// waitAsync waits until the sale's outbox rows are all published and the
// ledger holds a created entry for each of its n orders.
func (s *benchStack) waitAsync(b *testing.B, sale string, n int) {
	b.Helper()
	ctx := context.Background()
	pools := testenv.Pools(b, s.cfg)
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for db, p := range pools {
			for _, sh := range m.OnDatabase(db) {
				var k int
				if err := p.QueryRow(ctx, "SELECT count(*) FROM "+sh.Schema()+".outbox WHERE published_at IS NULL").Scan(&k); err != nil {
					b.Fatal(err)
				}
				left += k
			}
		}
		var recorded int
		if err := pools[0].QueryRow(ctx, "SELECT count(*) FROM ledger_entries WHERE sale_id = $1 AND kind = 'created'", sale).Scan(&recorded); err != nil {
			b.Fatal(err)
		}
		if left == 0 && recorded >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 2 min: %d outbox rows unpublished, %d of %d orders in the ledger", left, recorded, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countCommits counts the sale's orders over every shard, and the
// transactions that wrote them (distinct xmin per database: one group
// commit spans the shards of its database).
func (s *benchStack) countCommits(sale string) (orders, txs int) {
	s.tb.Helper()
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	for db, u := range s.cfg.DatabaseURLs {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			s.tb.Fatal(err)
		}
		var parts []string
		for _, sh := range m.OnDatabase(db) {
			parts = append(parts, "SELECT xmin::text AS x FROM "+sh.Schema()+".orders WHERE sale_id = $1")
		}
		var n, t int
		q := "SELECT count(*), count(DISTINCT x) FROM (" + strings.Join(parts, " UNION ALL ") + ") o"
		err = conn.QueryRow(context.Background(), q, sale).Scan(&n, &t)
		_ = conn.Close(context.Background())
		if err != nil {
			s.tb.Fatal(err)
		}
		orders += n
		txs += t
	}
	return orders, txs
}
