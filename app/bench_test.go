package app_test

// Benchmarks of the order hot path on the real local stack (scripts/stack.sh
// up). Run them alone, side by side in one run, and compare ratios between
// benchmarks of the same run; docs/benchmarks.md has the commands and the
// numbers.
//
// Every HTTP benchmark uses the same client: one keep-alive http.Transport
// and b.RunParallel with benchConc concurrent requests, over a real loopback
// listener in this process. Each top-level benchmark starts its server once
// and runs the measurement as a sub-benchmark (conc=N), so the ramp-up runs
// of b.N share one instance instead of paying for fresh databases each.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"flashsale/auth"
	"flashsale/config"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
	"flashsale/shard"
)

const (
	// benchConc is the number of requests in flight in the HTTP benchmarks.
	benchConc = 128
	// benchBuyers is the number of distinct buyers (tokens) the load rotates.
	benchBuyers = 1000
)

// benchStack is one flashsale instance on the real services for a
// benchmark; harness_test.go's stack is bound to *testing.T.
type benchStack struct {
	tb     testing.TB
	cfg    *config.Config
	base   string
	client *http.Client
	auths  []string     // "Bearer <token>" of buyer-0 .. buyer-(benchBuyers-1)
	seq    atomic.Int64 // idempotency keys, unique for the instance's lifetime
}

// startBench runs an instance until tb ends; tune adjusts the config.
func startBench(tb testing.TB, tune func(*config.Config)) *benchStack {
	tb.Helper()
	return startBenchLog(tb, tune, testenv.Logger(tb))
}

// startBenchLog is startBench with the instance logging to log.
func startBenchLog(tb testing.TB, tune func(*config.Config), log *slog.Logger) *benchStack {
	tb.Helper()
	cfg := testenv.Config(tb, 4)
	cfg.IPRate, cfg.IPBurst = 1_000_000, 1_000_000
	if tune != nil {
		tune(cfg)
	}
	inst := apptest.Start(tb, cfg, apptest.Options{Log: log})
	s := &benchStack{tb: tb, cfg: cfg, base: inst.Base, client: benchClient(tb)}
	for i := range benchBuyers {
		s.auths = append(s.auths, "Bearer "+s.token(fmt.Sprintf("buyer-%d", i), false))
	}
	return s
}

// benchClient is the keep-alive client every HTTP benchmark uses.
func benchClient(tb testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConns: 4 * benchConc, MaxIdleConnsPerHost: 4 * benchConc,
		IdleConnTimeout: time.Minute, DisableCompression: true}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (s *benchStack) token(sub string, admin bool) string {
	tok, err := auth.Mint(s.cfg.JWTSecret, sub, admin, 2*time.Hour, time.Now())
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

// createSale makes an active sale and returns its id.
func (s *benchStack) createSale(stock, limit int) string {
	s.tb.Helper()
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{"sku": "SKU-B", "title": "Bench phone", "price_cents": 19900,
		"currency": "EUR", "stock": stock, "per_user_limit": limit,
		"starts_at": now.Add(-time.Minute), "ends_at": now.Add(2 * time.Hour)})
	req, _ := http.NewRequest("POST", s.base+"/v1/admin/sales", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token("admin", true))
	resp, err := s.client.Do(req)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		s.tb.Fatalf("create sale: %d %s", resp.StatusCode, rb)
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rb, &v); err != nil {
		s.tb.Fatal(err)
	}
	return v.ID
}

// orderRequests returns a request maker for POST /v1/orders on sale: the
// nth request comes from buyer n mod benchBuyers with a key never used
// before on this instance.
func (s *benchStack) orderRequests(sale string) func(n int64) *http.Request {
	body := []byte(`{"sale_id":"` + sale + `","quantity":1}`)
	url := s.base + "/v1/orders"
	return func(int64) *http.Request {
		k := s.seq.Add(1)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", s.auths[k%benchBuyers])
		req.Header.Set("Idempotency-Key", "bk-"+strconv.FormatInt(k, 10))
		return req
	}
}

// send does one request and drains its answer.
func send(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil, err
}

// fire sends n requests from conc goroutines and fails b unless every
// answer has status want.
func fire(b *testing.B, c *http.Client, conc, n int, mk func(n int64) *http.Request, want int) {
	b.Helper()
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if status, _, err := send(c, mk(0)); err != nil || status != want {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if k := bad.Load(); k > 0 {
		b.Fatalf("%d of %d requests did not answer %d", k, n, want)
	}
}

// loadResult is what hammer saw.
type loadResult struct {
	lat    []time.Duration
	bad    atomic.Int64
	mu     sync.Mutex
	sample string
}

// hammer resets the timer and sends b.N requests from conc goroutines,
// expecting status want from each; it stops the timer when done and reports
// req/s and the p50/p99 latency.
func hammer(b *testing.B, c *http.Client, conc int, mk func(n int64) *http.Request, want int) *loadResult {
	b.Helper()
	setConcurrency(b, conc)
	res := &loadResult{}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testenv.SelfCPU()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 4096)
		for pb.Next() {
			req := mk(next.Add(1))
			t0 := time.Now()
			status, body, err := send(c, req)
			lat = append(lat, time.Since(t0))
			if err != nil || status != want {
				if res.bad.Add(1) == 1 {
					res.mu.Lock()
					res.sample = fmt.Sprintf("status %d err %v body %s", status, err, body)
					res.mu.Unlock()
				}
			}
		}
		res.mu.Lock()
		res.lat = append(res.lat, lat...)
		res.mu.Unlock()
	})
	b.StopTimer()
	cpu := testenv.SelfCPU() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "go-cpu-us/op")
	reportLatency(b, res.lat)
	return res
}

// cpuSince sums the CPU the backends used since before; a backend that
// started meanwhile counts whole.
func cpuSince(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid]
	}
	return d
}

// setConcurrency makes b.RunParallel run about n goroutines.
func setConcurrency(b *testing.B, n int) {
	p := runtime.GOMAXPROCS(0)
	b.SetParallelism((n + p - 1) / p)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-us")
	b.ReportMetric(at(0.99), "p99-us")
}

func concName() string { return "conc=" + strconv.Itoa(benchConc) }

// BenchmarkBareHandler is the ceiling: a trivial handler that reads the
// same request the order benchmarks send and answers a small JSON body,
// served by net/http with the service's timeouts on a loopback listener,
// hit by the same client.
func BenchmarkBareHandler(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 120 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
		})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })

	// The same requests as BenchmarkSoldOut: a buyer's token, a body, a key.
	s := &benchStack{tb: b, cfg: &config.Config{JWTSecret: testenv.JWTSecret}, base: "http://" + ln.Addr().String(),
		client: benchClient(b)}
	for i := range benchBuyers {
		s.auths = append(s.auths, "Bearer "+s.token(fmt.Sprintf("buyer-%d", i), false))
	}
	mk := s.orderRequests("1")
	b.Run(concName(), func(b *testing.B) {
		res := hammer(b, s.client, benchConc, mk, http.StatusOK)
		if n := res.bad.Load(); n > 0 {
			b.Fatalf("%d of %d requests failed, e.g. %s", n, b.N, res.sample)
		}
	})
}

// BenchmarkSoldOut is the real service answering a sold-out sale: a sale
// of one unit, bought, then hammered by many buyers with fresh keys. Each
// answer should come from the instance's sold-out memory, without a network
// call.
func BenchmarkSoldOut(b *testing.B) {
	s := startBench(b, nil)
	sale := s.createSale(1, 1)
	mk := s.orderRequests(sale)
	if status, body, err := send(s.client, mk(0)); err != nil || status != http.StatusCreated {
		b.Fatalf("buying the only unit: %d %v %s", status, err, body)
	}
	b.Run(concName(), func(b *testing.B) {
		res := hammer(b, s.client, benchConc, mk, http.StatusConflict)
		if n := res.bad.Load(); n > 0 {
			b.Fatalf("%d of %d requests were not 409 sold-out, e.g. %s", n, b.N, res.sample)
		}
	})
}

// tuneUnlimited lifts every limit that would shed load in a throughput
// benchmark.
func tuneUnlimited(c *config.Config) {
	c.UserRate, c.UserBurst = 1_000_000, 1_000_000
	c.IPRate, c.IPBurst = 1_000_000, 1_000_000
	c.MaxInFlight = 1_000_000
}

// BenchmarkPlaceOrder is created orders per second: every request reserves
// in Redis and commits in PostgreSQL (group commit), from distinct buyers
// with distinct keys; any answer but 201 fails the benchmark. Each run gets
// a fresh sale with stock for b.N orders.
//
// Besides the throughput it reports where the CPU goes per order:
// go-cpu-us/op is this process (the HTTP client and the service),
// pg-cpu-us/order the PostgreSQL backends of the instance's databases (read
// from /proc), redis-cpu-us/order the Redis server of the buy path (INFO
// cpu; the whole server, shared with anything else using it).
// orders/commit is the mean size of a group commit.
func BenchmarkPlaceOrder(b *testing.B) {
	s := startBench(b, tuneUnlimited)
	node1 := testenv.Redis(b, s.cfg, 0)
	b.Run(concName(), func(b *testing.B) {
		perBuyer := b.N/benchBuyers + 2
		sale := s.createSale(b.N+benchConc, perBuyer+benchConc)
		mk := s.orderRequests(sale)
		// Warm the catalog, the connection pools and the keep-alive
		// connections, outside the timer.
		warm := benchConc / 2
		var wg sync.WaitGroup
		var warmBad atomic.Int64
		for range warm {
			wg.Go(func() {
				if status, _, err := send(s.client, mk(0)); err != nil || status != http.StatusCreated {
					warmBad.Add(1)
				}
			})
		}
		wg.Wait()
		if n := warmBad.Load(); n > 0 {
			b.Fatalf("%d warm-up orders failed", n)
		}
		pg0, redis0 := testenv.PostgresCPU(b, s.cfg.DatabaseURLs), testenv.RedisCPU(b, node1)
		res := hammer(b, s.client, benchConc, mk, http.StatusCreated)
		pg1, redis1 := testenv.PostgresCPU(b, s.cfg.DatabaseURLs), testenv.RedisCPU(b, node1)
		b.ReportMetric(float64(b.N-int(res.bad.Load()))/b.Elapsed().Seconds(), "orders/s")
		if pg0 != nil && pg1 != nil {
			b.ReportMetric(float64(cpuSince(pg0, pg1).Microseconds())/float64(b.N), "pg-cpu-us/order")
		}
		b.ReportMetric(float64((redis1-redis0).Microseconds())/float64(b.N), "redis-cpu-us/order")
		if n := res.bad.Load(); n > 0 {
			b.Fatalf("%d of %d orders were not 201, e.g. %s", n, b.N, res.sample)
		}
		orders, txs := s.countCommits(sale)
		if orders != b.N+warm {
			b.Fatalf("%d orders in PostgreSQL, want %d", orders, b.N+warm)
		}
		b.ReportMetric(float64(orders)/float64(txs), "orders/commit")
	})
}

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

// BenchmarkRedisCallsPerOrder counts the Redis work of the buy path on a
// sale of b.N units: b.N successful orders (half of them measured through
// commandstats, half under MONITOR), then b.N sold-out answers (both). Its
// ns/op is not a throughput figure; its metrics are:
//
// redis-calls/* are round trips: the commands a client sent (not those a
// script ran) that name this instance's private key prefix, counted through
// MONITOR on node 1 (the only node the buy path uses). Other clients of the
// server do not disturb it; a command carrying no key would be missed, and
// there is none on the buy path.
//
// redis-cmds/* are the INFO commandstats delta (calls + rejected_calls of
// every command but INFO, MONITOR and ECHO, summed over the three nodes):
// the commands the servers executed, including those run inside the
// reservation script. commandstats cannot tell a script's commands from a
// client's, and it counts every client of those servers, so it is exact
// only while nothing else uses them; the log line gives it per command.
//
// redis-script-us/order is the time Redis spent in EVALSHA/EVAL per order
// (commandstats usec, measured without MONITOR): the server's own cost of
// the reservation, network excluded.
//
// All include the background work of the instance during the phase: the
// sold-out memory reads the stock (one HGET) of each sale it holds sold out
// once a second.
func BenchmarkRedisCallsPerOrder(b *testing.B) {
	s := startBench(b, tuneUnlimited)
	ctx := context.Background()
	nodes := make([]*redis.Client, len(s.cfg.RedisAddrs))
	for i := range nodes {
		nodes[i] = testenv.Redis(b, s.cfg, i)
	}
	b.Run(concName(), func(b *testing.B) {
		sale := s.createSale(b.N+benchConc, b.N/benchBuyers+2+benchConc)
		mk := s.orderRequests(sale)
		// Warm the catalog and the Redis pool: opening a connection costs
		// commands (HELLO, CLIENT SETINFO) that are not per request.
		var wg sync.WaitGroup
		for range benchConc {
			wg.Go(func() { _, _, _ = send(s.client, mk(0)) })
		}
		wg.Wait()
		// Phase 1, without MONITOR (which slows Redis down): what the
		// servers executed, and how long the script ran.
		n1 := b.N - b.N/2
		b.ResetTimer()
		calls0, usec0 := commandStats(b, ctx, nodes)
		fire(b, s.client, benchConc, n1, mk, http.StatusCreated)
		calls1, usec1 := commandStats(b, ctx, nodes)
		// Phase 2, under MONITOR: the round trips, the rest of the stock.
		mon := startMonitor(b, s.cfg.RedisAddrs[0], s.cfg.RedisPrefix)
		defer mon.close()
		n2 := b.N - n1
		mon.mark(ctx, nodes[0], "orders")
		fire(b, s.client, benchConc, n2, mk, http.StatusCreated)
		mon.mark(ctx, nodes[0], "soldout")
		// Phase 3: b.N sold-out answers, both ways at once.
		calls2, _ := commandStats(b, ctx, nodes)
		soldOutStart := time.Now()
		fire(b, s.client, benchConc, b.N, mk, http.StatusConflict)
		mon.mark(ctx, nodes[0], "end")
		calls3, _ := commandStats(b, ctx, nodes)
		b.StopTimer()
		// Phase 4, idle for as long as phase 3 took: what the instance's
		// own loops send meanwhile (the sold-out memory's recheck, the Redis
		// watcher's look), which phase 3's count includes too.
		time.Sleep(time.Since(soldOutStart))
		mon.mark(ctx, nodes[0], "idle-end")

		per := func(v int64, n int) float64 { return float64(v) / float64(max(n, 1)) }
		orders, soldout := diffStats(calls1, calls0), diffStats(calls3, calls2)
		scripts := diffStats(usec1, usec0)
		po, ps, idle := mon.counted("orders"), mon.counted("soldout"), mon.counted("end")
		b.ReportMetric(per(sumStats(po), n2), "redis-calls/order")
		b.ReportMetric(per(max(0, sumStats(ps)-sumStats(idle)), b.N), "redis-calls/soldout")
		b.ReportMetric(float64(sumStats(idle)), "redis-background-calls")
		b.ReportMetric(per(sumStats(orders), n1), "redis-cmds/order")
		b.ReportMetric(per(sumStats(soldout), b.N), "redis-cmds/soldout")
		b.ReportMetric(per(scripts["evalsha"]+scripts["eval"], n1), "redis-script-us/order")
		b.Logf("round trips (MONITOR): %d orders %v, %d sold-out %v, background while idle as long %v; commandstats: %d orders %v, %d sold-out %v",
			n2, po, b.N, ps, idle, n1, orders, b.N, soldout)
	})
}

// commandStats sums INFO commandstats over nodes: command -> calls +
// rejected_calls, leaving out the commands of the measurement itself, and
// command -> microseconds spent.
func commandStats(tb testing.TB, ctx context.Context, nodes []*redis.Client) (calls, usec map[string]int64) {
	tb.Helper()
	calls, usec = map[string]int64{}, map[string]int64{}
	for _, n := range nodes {
		info, err := n.Info(ctx, "commandstats").Result()
		if err != nil {
			tb.Fatal(err)
		}
		for line := range strings.Lines(info) {
			name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
			name, isCmd := strings.CutPrefix(name, "cmdstat_")
			if !ok || !isCmd || name == "info" || name == "monitor" || name == "echo" {
				continue
			}
			for f := range strings.SplitSeq(fields, ",") {
				k, v, _ := strings.Cut(f, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls", "rejected_calls":
					calls[name] += n
				case "usec":
					usec[name] += n
				}
			}
		}
	}
	return calls, usec
}

func diffStats(after, before map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

func sumStats(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// monitor counts, through Redis MONITOR, the commands clients send that
// name a key prefix, split into phases by ECHO markers.
type monitor struct {
	conn   net.Conn
	prefix string
	mu     sync.Mutex
	phase  string
	counts map[string]map[string]int64 // phase -> command -> count
	seen   map[string]chan struct{}    // marker -> closed when MONITOR showed it
	done   chan struct{}
}

func startMonitor(tb testing.TB, addr, prefix string) *monitor {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		tb.Fatal(err)
	}
	rd := bufio.NewReaderSize(conn, 1<<16)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		tb.Fatalf("MONITOR: %q %v", line, err)
	}
	m := &monitor{conn: conn, prefix: prefix, counts: map[string]map[string]int64{}, seen: map[string]chan struct{}{},
		done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			m.observe(line)
		}
	}()
	return m
}

// observe reads one MONITOR line: +<time> [<db> <client>] "cmd" "arg" ...
func (m *monitor) observe(line string) {
	_, rest, ok := strings.Cut(line, "[")
	if !ok {
		return
	}
	client, args, ok := strings.Cut(rest, "] ")
	if !ok || strings.HasSuffix(client, " lua") {
		return // a command a script ran, not a round trip
	}
	cmd, _, _ := strings.Cut(strings.Trim(args, "\""), "\"")
	cmd = strings.ToLower(cmd)
	m.mu.Lock()
	defer m.mu.Unlock()
	if cmd == "echo" {
		if marker, ok := strings.CutPrefix(strings.TrimSpace(args), `"echo" "`+m.prefix+`:mark:`); ok {
			marker = strings.TrimSuffix(marker, `"`)
			m.phase = marker
			if ch, ok := m.seen[marker]; ok {
				close(ch)
			}
		}
		return
	}
	if m.phase == "" || !strings.Contains(args, m.prefix) {
		return
	}
	if m.counts[m.phase] == nil {
		m.counts[m.phase] = map[string]int64{}
	}
	m.counts[m.phase][cmd]++
}

// mark starts a phase and returns once MONITOR has shown the marker, so
// every command sent before it is counted in the previous phase.
func (m *monitor) mark(ctx context.Context, rdb *redis.Client, phase string) {
	ch := make(chan struct{})
	m.mu.Lock()
	m.seen[phase] = ch
	m.mu.Unlock()
	_ = rdb.Echo(ctx, m.prefix+":mark:"+phase).Err()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
	}
}

// counted is the commands counted in phase, up to the next marker.
func (m *monitor) counted(phase string) map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.counts[phase])
}

func (m *monitor) close() {
	_ = m.conn.Close()
	<-m.done
}
