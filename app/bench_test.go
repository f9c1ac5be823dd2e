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
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashsale/auth"
	"flashsale/config"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
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
