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

	"flashsale/app"
	"flashsale/auth"
	"flashsale/config"
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
	cfg := testenv.Config(tb, 4)
	cfg.IPRate, cfg.IPBurst = 1_000_000, 1_000_000
	if tune != nil {
		tune(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, testenv.Logger(tb))
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		a.Close()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
		a.Close()
	})
	s := &benchStack{tb: tb, cfg: cfg, base: "http://" + ln.Addr().String(), client: benchClient(tb)}
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	reportLatency(b, res.lat)
	return res
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
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
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
func BenchmarkPlaceOrder(b *testing.B) {
	s := startBench(b, tuneUnlimited)
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
		res := hammer(b, s.client, benchConc, mk, http.StatusCreated)
		b.ReportMetric(float64(b.N-int(res.bad.Load()))/b.Elapsed().Seconds(), "orders/s")
		if n := res.bad.Load(); n > 0 {
			b.Fatalf("%d of %d orders were not 201, e.g. %s", n, b.N, res.sample)
		}
		if got := s.countOrders(sale); got != b.N+warm {
			b.Fatalf("%d orders in PostgreSQL, want %d", got, b.N+warm)
		}
	})
}

// countOrders counts the sale's orders over every shard.
func (s *benchStack) countOrders(sale string) int {
	s.tb.Helper()
	m, _ := shard.NewMap(s.cfg.Shards, len(s.cfg.DatabaseURLs))
	total := 0
	for db, u := range s.cfg.DatabaseURLs {
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			s.tb.Fatal(err)
		}
		for _, sh := range m.OnDatabase(db) {
			var n int
			q := "SELECT count(*) FROM " + sh.Schema() + ".orders WHERE sale_id = $1"
			if err := conn.QueryRow(context.Background(), q, sale).Scan(&n); err != nil {
				s.tb.Fatal(err)
			}
			total += n
		}
		_ = conn.Close(context.Background())
	}
	return total
}

// BenchmarkRedisCallsPerOrder counts the Redis commands the buy path sends:
// b.N successful orders on a sale of b.N units, then b.N sold-out answers.
//
// redis-calls/* is the INFO commandstats delta (calls + rejected_calls of
// every command but INFO, MONITOR and ECHO, summed over the three nodes):
// it counts every client of those servers, so it is exact only while
// nothing else uses them. prefix-cmds/* counts, through MONITOR on node 1,
// only the commands a client sent (not those a script ran) that name this
// instance's private key prefix: it is immune to other clients, and misses
// commands that carry no key (none on the buy path).
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
		mon := startMonitor(b, s.cfg.RedisAddrs[0], s.cfg.RedisPrefix)
		defer mon.close()

		before := commandStats(b, ctx, nodes)
		mon.mark(ctx, nodes[0], "orders")
		b.ResetTimer()
		setConcurrency(b, benchConc)
		var bad atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if status, _, err := send(s.client, mk(0)); err != nil || status != http.StatusCreated {
					bad.Add(1)
				}
			}
		})
		b.StopTimer()
		if n := bad.Load(); n > 0 {
			b.Fatalf("%d of %d orders were not 201", n, b.N)
		}
		mon.mark(ctx, nodes[0], "soldout")
		mid := commandStats(b, ctx, nodes)
		b.StartTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if status, _, err := send(s.client, mk(0)); err != nil || status != http.StatusConflict {
					bad.Add(1)
				}
			}
		})
		b.StopTimer()
		if n := bad.Load(); n > 0 {
			b.Fatalf("%d of %d sold-out requests were not 409", n, b.N)
		}
		mon.mark(ctx, nodes[0], "end")
		after := commandStats(b, ctx, nodes)
		orders, soldout := diffStats(mid, before), diffStats(after, mid)
		b.ReportMetric(float64(sumStats(orders))/float64(b.N), "redis-calls/order")
		b.ReportMetric(float64(sumStats(soldout))/float64(b.N), "redis-calls/soldout")
		po, ps := mon.between("orders", "soldout"), mon.between("soldout", "end")
		b.ReportMetric(float64(sumStats(po))/float64(b.N), "prefix-cmds/order")
		b.ReportMetric(float64(sumStats(ps))/float64(b.N), "prefix-cmds/soldout")
		b.Logf("N=%d commandstats: orders %v, sold-out %v; MONITOR on prefix: orders %v, sold-out %v",
			b.N, orders, soldout, po, ps)
	})
}

// commandStats sums INFO commandstats over nodes: command -> calls +
// rejected_calls, leaving out the commands of the measurement itself.
func commandStats(tb testing.TB, ctx context.Context, nodes []*redis.Client) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
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
				if k == "calls" || k == "rejected_calls" {
					n, _ := strconv.ParseInt(v, 10, 64)
					out[name] += n
				}
			}
		}
	}
	return out
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

// between is the commands counted in phase from (ended by marker to).
func (m *monitor) between(from, _ string) map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps(m.counts[from])
}

func maps(in map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func (m *monitor) close() {
	_ = m.conn.Close()
	<-m.done
}
