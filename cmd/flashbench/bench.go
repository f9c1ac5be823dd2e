package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/auth"
	"flashsale/config"
)

// buyerPrefix starts every buyer id flashbench uses.
const buyerPrefix = "fb-"

// bench is one flashbench run against one service.
type bench struct {
	opts    *Options
	fs      *flag.FlagSet
	args    []string
	cfg     *config.Config
	log     io.Writer
	pools   []*pgxpool.Pool
	rdb     *redis.Client
	stock   redis.UniversalClient // the stock's Redis: rdb, or the Redis Cluster of stock-redis-addrs
	admin   string                // Authorization header of the admin
	api     *http.Client
	runID   string
	outDir  string
	started time.Time
	tokens  *Buyers // minted once; each phase takes Fresh counters
}

func newBench(ctx context.Context, o *Options, fs *flag.FlagSet, args []string, getenv func(string) string, log io.Writer) (*bench, error) {
	cfs := flag.NewFlagSet("flashsale", flag.ContinueOnError)
	cfg := config.Register(cfs)
	if err := config.Load(cfs, cfg, getenv); err != nil {
		return nil, fmt.Errorf("the service's settings (FLASHSALE_*, the same the service reads): %w", err)
	}
	b := &bench{opts: o, fs: fs, args: args, cfg: cfg, log: log, started: time.Now(), runID: randHex(3),
		api: &http.Client{Timeout: 30 * time.Second}}
	b.outDir = o.Out
	if b.outDir == "" {
		b.outDir = filepath.Join("bench-results", b.started.Format("20060102-150405"))
	}
	for _, u := range cfg.DatabaseURLs {
		p, err := pgxpool.New(ctx, u)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("database: %w", err)
		}
		b.pools = append(b.pools, p)
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0]})
	b.stock = b.rdb
	if len(cfg.StockRedisAddrs) > 0 {
		b.stock = redis.NewClusterClient(&redis.ClusterOptions{Addrs: cfg.StockRedisAddrs})
	}
	tok, err := auth.Mint(cfg.JWTSecret, "flashbench-admin", true, 2*time.Hour, time.Now())
	if err != nil {
		b.close()
		return nil, err
	}
	b.admin = "Bearer " + tok
	return b, nil
}

func (b *bench) close() {
	for _, p := range b.pools {
		p.Close()
	}
	if b.stock != nil && b.stock != redis.UniversalClient(b.rdb) {
		_ = b.stock.Close()
	}
	if b.rdb != nil {
		_ = b.rdb.Close()
	}
}

func (b *bench) say(format string, a ...any) {
	fmt.Fprintf(b.log, "[flashbench %5.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, a...))
}

// run measures, loads and verifies, and writes the report.
func (b *bench) run(ctx context.Context) (*Report, error) {
	rep := &Report{RunID: b.runID, StartedAt: b.started, Command: "flashbench " + strings.Join(b.args, " "),
		Settings: settings(b.fs), Setup: map[string]string{}}
	rep.Machine = b.machine(ctx)
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := b.mint(rep); err != nil {
		return nil, err
	}
	if b.opts.SoakDuration > 0 {
		return b.soakRun(ctx, rep)
	}
	var soldOutPeak float64
	if b.opts.Ceilings {
		soldOutPeak = b.ceilingsFirst(ctx, rep)
	}
	if err := b.sale(ctx, rep, soldOutPeak); err != nil {
		return nil, err
	}
	if b.opts.Ceilings {
		// Last: its orders' events would queue before the flash sale's at
		// the consumers.
		b.peakOrders(ctx, rep)
	}
	b.ratiosAndTargets(rep)
	return b.finish(rep)
}

// finish notes the machine's load at the end and writes the report.
func (b *bench) finish(rep *Report) (*Report, error) {
	rep.Machine["loadavg_after"] = readTrim("/proc/loadavg")
	rep.Machine["cpu_pressure_after"] = firstLine(readTrim("/proc/pressure/cpu"))
	if err := rep.WriteFiles(b.outDir); err != nil {
		return rep, fmt.Errorf("write report: %w", err)
	}
	return rep, nil
}

// mint signs every buyer's token once, before anything is measured.
func (b *bench) mint(rep *Report) error {
	o := b.opts
	t := time.Now()
	tokens, err := MintBuyers(b.cfg.JWTSecret, buyerPrefix, o.Buyers, o.Limit, o.Quantity, 2*time.Hour)
	if err != nil {
		return err
	}
	b.tokens = tokens
	rep.Setup["mint_tokens"] = fmt.Sprintf("%d tokens in %s", o.Buyers, time.Since(t).Round(time.Millisecond))
	b.say("minted %d buyer tokens in %s", o.Buyers, time.Since(t).Round(time.Millisecond))
	return nil
}

// ceilingsFirst measures the ceilings and the sold-out peak, then waits
// for the outbox to drain so that the flash sale starts from quiet.
func (b *bench) ceilingsFirst(ctx context.Context, rep *Report) float64 {
	soldOutPeak := b.ceilings(ctx, rep)
	t := time.Now()
	n, waited, err := waitDrained(ctx, b.pools, b.opts.DrainTimeout)
	b.say("outbox drained after the ceilings in %s (%d rows left, err %v)", waited.Round(time.Millisecond), n, err)
	rep.Setup["drain_after_ceilings"] = fmt.Sprintf("%d rows left after %s", n, time.Since(t).Round(time.Millisecond))
	return soldOutPeak
}

// rate is the flash sale's arrival rate and where it comes from.
func (b *bench) rate(soldOutPeak float64) (float64, string) {
	o := b.opts
	switch {
	case o.Rate != "auto":
		rate, _ := strconv.ParseFloat(o.Rate, 64)
		if soldOutPeak > 0 {
			return rate, fmt.Sprintf("--rate (%.2f × the sold-out peak of %.0f/s)", rate/soldOutPeak, soldOutPeak)
		}
		return rate, "--rate"
	case soldOutPeak > 0:
		return o.RateFraction * soldOutPeak, fmt.Sprintf("%.2f × the sold-out peak of %.0f/s measured in this run", o.RateFraction, soldOutPeak)
	}
	return o.FallbackRate, fmt.Sprintf("--fallback-rate (no peak measured; pass --ceilings for %.2f × the sold-out peak)", o.RateFraction)
}

// sale runs the flash sale on a new sale, collects what it left and
// verifies it.
func (b *bench) sale(ctx context.Context, rep *Report, soldOutPeak float64) error {
	o := b.opts
	rate, source := b.rate(soldOutPeak)
	from := map[int]int64{}
	if o.KafkaFrom == "run" {
		var err error
		if from, err = endOffsets(ctx, b.cfg.KafkaBrokers, b.cfg.KafkaTopic, false); err != nil {
			return fmt.Errorf("kafka offsets before the sale: %w", err)
		}
	}
	saleID, err := b.createSale(ctx, "FLASH-"+b.runID, o.Stock, o.Limit)
	if err != nil {
		return err
	}
	b.say("sale %s: %d units, limit %d; %s model at %.0f/s (%s), ramp %s, then %s", saleID, o.Stock, o.Limit,
		o.Model, rate, source, o.Ramp, o.Duration)
	commit0, err0 := b.commitBuckets(ctx)
	load, clientOrders, unresolved, demand := b.flashSale(ctx, saleID, rate)
	commit1, err1 := b.commitBuckets(ctx)
	load.RateSource = source
	rep.Load = load
	b.say("load done: %d requests, %.0f req/s, %d orders; verifying", load.Requests, load.RequestsPerSec, load.Orders)
	facts, lag, err := b.gather(ctx, saleID, clientOrders, unresolved, demand, from)
	if err != nil {
		return err
	}
	b.judge(ctx, rep, facts, lag)
	rep.Lag.Commit, rep.Lag.CommitNote = commitStats(commit0, commit1, errors.Join(err0, err1))
	return nil
}

// commitBuckets scrapes the group commit's histogram (store create, ok)
// from the service's /metrics; nil without --debug-url.
func (b *bench) commitBuckets(ctx context.Context) (Buckets, error) {
	if b.opts.DebugURL == "" {
		return nil, nil
	}
	return scrapeBuckets(ctx, b.opts.DebugURL, commitSeries, map[string]string{"op": "create", "outcome": "ok"})
}

// commitStats is the group commit's latency between two scrapes.
func commitStats(before, after Buckets, err error) (LatencyStats, string) {
	switch {
	case err != nil:
		return LatencyStats{}, "could not read the service's metrics: " + err.Error()
	case after == nil:
		return LatencyStats{}, "not measured (--debug-url)"
	}
	d := after.Since(before)
	if d.Count() == 0 {
		return LatencyStats{}, "no commit during the sale"
	}
	return LatencyStats{Count: int64(d.Count()), P50: d.Quantile(0.5), P90: d.Quantile(0.9), P99: d.Quantile(0.99)},
		"flashsale_store_seconds{op=create,outcome=ok} during the flash sale (the service's histogram, interpolated inside its buckets)"
}

// judge adds what the collection found to the report and verifies it.
func (b *bench) judge(ctx context.Context, rep *Report, facts Facts, lag LagReport) {
	rep.Lag = lag
	rep.Load.UnitsSold = 0
	for _, ord := range facts.Orders {
		if live(ord) {
			rep.Load.UnitsSold += ord.Qty
		}
	}
	rep.Load.SelloutDB = lastCommit(facts.Orders, rep.Load.Run.Start)
	if rem, err := b.remaining(ctx, facts.SaleID); err == nil {
		rep.Load.Remaining = rem
	}
	rep.Checks = Verify(facts)
	rep.Passed = Passed(rep.Checks)
}
