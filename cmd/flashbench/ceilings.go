package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/config"
	"flashsale/dbschema"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// bareServer is the ceiling of any HTTP handler on this machine: net/http
// reading the same request and answering a small JSON body, nothing else.
func bareServer(args []string, stdout io.Writer) error {
	addr := "127.0.0.1:0"
	if len(args) > 0 {
		addr = strings.TrimPrefix(args[len(args)-1], "--addr=")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr().String())
	reply := []byte(`{"status":"ok"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}

// startBareServer runs `flashbench bare-server` as a child process, like
// the service is a process of its own, and returns its address and pid.
func startBareServer(ctx context.Context) (addr string, pid int, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "bare-server", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("bare-server: %w", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, stop, nil
}

// Phase is one closed-model measurement: a ceiling or a probe of the
// service.
type Phase struct {
	Name        string           `json:"name"`
	What        string           `json:"what"`
	Concurrency int              `json:"concurrency"`
	Rate        float64          `json:"rate,omitempty"` // open model: the arrival rate
	Seconds     float64          `json:"seconds"`
	Ops         int64            `json:"ops"`
	OKOps       int64            `json:"ok_ops"` // the outcome the phase is about
	PerSecond   float64          `json:"per_second"`
	Latency     LatencyStats     `json:"latency"`
	Outcomes    map[string]int64 `json:"outcomes"`
	Processes   []ProcUsage      `json:"processes,omitempty"`
	XactsPerOp  float64          `json:"pg_xacts_per_op,omitempty"` // transactions on the service's databases per operation
	Error       string           `json:"error,omitempty"`
}

// runPhase measures op with vus workers for dur; okOut is the outcome
// counted as the phase's throughput.
func runPhase(ctx context.Context, name, what string, vus int, dur time.Duration, okOut Outcome, watch []Watched, op Op) Phase {
	sampler := StartSampler(watch, time.Second)
	rec := NewRecorder(time.Now(), 2*runtime.GOMAXPROCS(0))
	st := RunClosed(ctx, vus, dur, 0, rec, op)
	procs := sampler.Stop(runtime.NumCPU())
	m := rec.Merge()
	secs := st.End.Sub(st.Start).Seconds()
	p := Phase{Name: name, What: what, Concurrency: vus, Seconds: secs, Ops: m.All.TotalCount(), OKOps: m.Count(okOut),
		Latency: statsOf(m.ByOutcome[okOut]), Outcomes: map[string]int64{}, Processes: procs}
	for o := range numOutcomes {
		if n := m.Count(Outcome(o)); n > 0 {
			p.Outcomes[Outcome(o).String()] = n
		}
	}
	if secs > 0 {
		p.PerSecond = float64(p.OKOps) / secs
	}
	return p
}

// runOpenPhase measures op in the open model at rate for dur; latency
// counts from each arrival's intended time.
func runOpenPhase(ctx context.Context, name, what string, rate float64, workers int, dur time.Duration, okOut Outcome, watch []Watched, op Op) Phase {
	sampler := StartSampler(watch, time.Second)
	rec := NewRecorder(time.Now(), 2*runtime.GOMAXPROCS(0))
	st := RunOpen(ctx, Schedule{Rate: rate, Duration: dur}, workers, 10*time.Second, rec, op)
	procs := sampler.Stop(runtime.NumCPU())
	m := rec.Merge()
	secs := st.End.Sub(st.Start).Seconds()
	p := Phase{Name: name, What: what, Concurrency: workers, Seconds: secs, Ops: m.All.TotalCount(), OKOps: m.Count(okOut),
		Latency: statsOf(m.All), Outcomes: map[string]int64{}, Processes: procs, Rate: rate}
	for o := range numOutcomes {
		if n := m.Count(Outcome(o)); n > 0 {
			p.Outcomes[Outcome(o).String()] = n
		}
	}
	if secs > 0 {
		p.PerSecond = float64(p.OKOps) / secs
	}
	return p
}

// httpOp is the buy request of the generator against any URL: the same
// client, headers and body the load sends.
func httpOp(c *Client, buyers *Buyers, runID string) Op {
	return func(ctx context.Context, seq int64) (Outcome, time.Time) {
		b := buyers.Next()
		r := c.Buy(ctx, buyers.auth[b], runID+"-c"+strconv.FormatInt(seq, 36))
		if r.Outcome == OutCreated {
			buyers.units[b].Add(buyers.qty)
		}
		return r.Outcome, r.Sent
	}
}

// luaCeiling calls the reservation script alone, through inventory.Stock
// against a sale of its own under a private key prefix, from vus
// goroutines; the keys are deleted afterwards.
func luaCeiling(ctx context.Context, cfg *config.Config, vus int, dur time.Duration, watch []Watched) Phase {
	what := "inventory.Stock.Reserve (reserve.lua via EVALSHA) on Redis node 1, private key prefix"
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0], PoolSize: 32 * runtime.GOMAXPROCS(0)})
	defer rdb.Close()
	prefix := "flashbench-ceiling-" + randHex(4)
	defer deleteKeys(context.WithoutCancel(ctx), rdb, prefix)
	stock := invredis.NewStock(rdb, prefix, ratelimit.Limits{UserRate: 1_000_000, UserBurst: 1_000_000,
		IPRate: 1_000_000_000, IPBurst: 1_000_000_000})
	id, _ := inventory.NewSaleID(1)
	now := time.Now()
	sale := inventory.Sale{ID: id, NewSale: inventory.NewSale{Stock: 100_000_000, PerUserLimit: 1_000_000, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}}
	if _, err := stock.Rebuild(ctx, sale, nil, 1); err != nil { // a sale without orders: its whole stock
		return Phase{Name: "lua", What: what, Error: err.Error()}
	}
	qty, _ := inventory.NewQuantity(1)
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		sent := time.Now()
		_, err := stock.Reserve(ctx, inventory.Reservation{Sale: id, Buyer: "b" + strconv.FormatInt(seq%100_000, 10),
			Key: "k" + strconv.FormatInt(seq, 36), Fingerprint: "f", Qty: qty, ClientIP: "127.0.0.1"})
		if err != nil {
			return OutOther, sent
		}
		return OutOK, sent
	}
	return runPhase(ctx, "lua", what, vus, dur, OutOK, watch, op)
}

// deleteKeys removes every key under prefix from rdb.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 5000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Unlink(ctx, batch...)
	}
}

// insertCeiling commits orders with their outbox rows through the order
// store alone (orderpg group commit, the service's batch size, workers and
// pool size) on scratch databases of the same PostgreSQL server, laid out
// and migrated like the service's: the ceiling's tens of thousands of
// orders then reach neither the service's relay nor Kafka nor the
// consumers. The scratch databases are dropped afterwards.
func insertCeiling(ctx context.Context, cfg *config.Config, vus int, dur time.Duration, watch []Watched) Phase {
	what := fmt.Sprintf("orderpg.Store.Create (order + outbox row, group commit of up to %d, 2 workers per database) on %d scratch databases of the same server, %d shards",
		cfg.CommitBatch, len(cfg.DatabaseURLs), cfg.Shards)
	fail := func(err error) Phase { return Phase{Name: "insert", What: what, Error: err.Error()} }
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		return fail(err)
	}
	urls, drop, err := scratchDatabases(ctx, cfg.DatabaseURLs)
	if err != nil {
		return fail(err)
	}
	defer drop()
	if err := dbschema.New(urls, m).Up(ctx); err != nil {
		return fail(fmt.Errorf("migrate the scratch databases: %w", err))
	}
	var pools []*pgxpool.Pool
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, u := range urls {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			return fail(err)
		}
		pc.MaxConns = int32(cfg.DBMaxConns)
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return fail(err)
		}
		pools = append(pools, p)
	}
	store := orderpg.New(pools, m, orderpg.Options{MaxBatch: cfg.CommitBatch, Workers: 2})
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = store.Run(sctx); close(done) }()
	defer func() { stop(); <-done }()
	sid, _ := inventory.NewSaleID(1)
	sale := inventory.Sale{ID: sid, NewSale: inventory.NewSale{PriceCents: 100, Currency: "EUR"}}
	// The sale exists only in the allotments: the ceiling measures what a
	// commit costs PostgreSQL, allotment check included.
	if err := store.Allot(ctx, sid, 1<<40); err != nil {
		return fail(err)
	}
	var fails atomic.Int64
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		sent := time.Now()
		buyer, _ := order.ParseBuyerID("fbc-" + strconv.FormatInt(seq%100_000, 10))
		key, _ := order.ParseIdemKey("fbc-" + strconv.FormatInt(seq, 36))
		_, err := store.Create(ctx, order.NewOrder{Sale: sale, Buyer: buyer, Key: key, RequestHash: []byte("flashbench"),
			Qty: 1, Window: 15 * time.Minute, Deadline: time.Now().Add(10 * time.Second)})
		if err != nil {
			if fails.Add(1) == 1 {
				slog.Warn("insert ceiling: create failed", "err", err)
			}
			return OutOther, sent
		}
		return OutOK, sent
	}
	return runPhase(ctx, "insert", what, vus, dur, OutOK, watch, op)
}

// scratchDatabases creates flashbench_scratch_<random>_<i> beside each
// database of urls and returns their URLs and a function that drops them.
func scratchDatabases(ctx context.Context, urls []string) ([]string, func(), error) {
	var made []string
	admin := func(u string) (*pgx.Conn, error) {
		p, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		p.Path = "/postgres"
		return pgx.Connect(ctx, p.String())
	}
	drop := func() {
		for i, name := range made {
			if c, err := admin(urls[i]); err == nil {
				_, _ = c.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
				_ = c.Close(context.WithoutCancel(ctx))
			}
		}
	}
	out := make([]string, len(urls))
	run := randHex(3)
	for i, u := range urls {
		name := fmt.Sprintf("flashbench_scratch_%s_%d", run, i)
		c, err := admin(u)
		if err != nil {
			drop()
			return nil, nil, err
		}
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		if err == nil {
			_, err = c.Exec(ctx, "CREATE DATABASE "+name)
		}
		_ = c.Close(ctx)
		if err != nil {
			drop()
			return nil, nil, fmt.Errorf("scratch database %s: %w", name, err)
		}
		made = append(made, name)
		p, _ := url.Parse(u)
		p.Path = "/" + name
		out[i] = p.String()
	}
	return out, drop, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
