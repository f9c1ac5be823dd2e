package main

import (
	"context"
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
	admin   string // Authorization header of the admin
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
	if b.rdb != nil {
		_ = b.rdb.Close()
	}
}

func (b *bench) say(format string, a ...any) {
	fmt.Fprintf(b.log, "[flashbench %5.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, a...))
}

func (b *bench) run(ctx context.Context) (*Report, error) {
	o := b.opts
	rep := &Report{RunID: b.runID, StartedAt: b.started, Command: "flashbench " + strings.Join(b.args, " "),
		Settings: settings(b.fs), Setup: map[string]string{}}
	rep.Machine = b.machine(ctx)
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}

	t := time.Now()
	tokens, err := MintBuyers(b.cfg.JWTSecret, buyerPrefix, o.Buyers, o.Limit, o.Quantity, 2*time.Hour)
	if err != nil {
		return nil, err
	}
	b.tokens = tokens
	rep.Setup["mint_tokens"] = fmt.Sprintf("%d tokens in %s", o.Buyers, time.Since(t).Round(time.Millisecond))
	b.say("minted %d buyer tokens in %s", o.Buyers, time.Since(t).Round(time.Millisecond))

	var soldOutPeak float64
	if o.Ceilings {
		soldOutPeak = b.ceilings(ctx, rep)
		t := time.Now()
		n, waited, err := waitDrained(ctx, b.pools, o.DrainTimeout)
		b.say("outbox drained after the ceilings in %s (%d rows left, err %v)", waited.Round(time.Millisecond), n, err)
		rep.Setup["drain_after_ceilings"] = fmt.Sprintf("%d rows left after %s", n, time.Since(t).Round(time.Millisecond))
	}

	rate, source := o.FallbackRate, fmt.Sprintf("--fallback-rate (no peak measured; pass --ceilings for %.2f × the sold-out peak)", o.RateFraction)
	switch {
	case o.Rate != "auto":
		rate, _ = strconv.ParseFloat(o.Rate, 64)
		source = "--rate"
		if soldOutPeak > 0 {
			source = fmt.Sprintf("--rate (%.2f × the sold-out peak of %.0f/s)", rate/soldOutPeak, soldOutPeak)
		}
	case soldOutPeak > 0:
		rate = o.RateFraction * soldOutPeak
		source = fmt.Sprintf("%.2f × the sold-out peak of %.0f/s measured in this run", o.RateFraction, soldOutPeak)
	}

	from := map[int]int64{}
	if o.KafkaFrom == "run" {
		if from, err = endOffsets(ctx, b.cfg.KafkaBrokers, b.cfg.KafkaTopic, false); err != nil {
			return nil, fmt.Errorf("kafka offsets before the sale: %w", err)
		}
	}
	saleID, err := b.createSale(ctx, "FLASH-"+b.runID, o.Stock, o.Limit)
	if err != nil {
		return nil, err
	}
	b.say("sale %s: %d units, limit %d; %s model at %.0f/s (%s), ramp %s, then %s", saleID, o.Stock, o.Limit,
		o.Model, rate, source, o.Ramp, o.Duration)

	load, clientOrders, unresolved, demand := b.flashSale(ctx, saleID, rate)
	load.RateSource = source
	rep.Load = load
	b.say("load done: %d requests, %.0f req/s, %d orders; verifying", load.Requests, load.RequestsPerSec, load.Orders)

	facts, lag, err := b.gather(ctx, saleID, clientOrders, unresolved, demand, from)
	if err != nil {
		return nil, err
	}
	rep.Lag = lag
	rep.Load.UnitsSold = 0
	for _, ord := range facts.Orders {
		if live(ord) {
			rep.Load.UnitsSold += ord.Qty
		}
	}
	rep.Load.SelloutDB = lastCommit(facts.Orders, load.Run.Start)
	if rem, err := b.remaining(ctx, saleID); err == nil {
		rep.Load.Remaining = rem
	}
	rep.Checks = Verify(facts)
	rep.Passed = Passed(rep.Checks)
	if o.Ceilings {
		// Last: its orders' events would queue before the flash sale's at
		// the consumers.
		b.peakOrders(ctx, rep)
	}
	b.ratiosAndTargets(rep, soldOutPeak)
	rep.Machine["loadavg_after"] = readTrim("/proc/loadavg")
	rep.Machine["cpu_pressure_after"] = firstLine(readTrim("/proc/pressure/cpu"))
	if err := rep.WriteFiles(b.outDir); err != nil {
		return rep, fmt.Errorf("write report: %w", err)
	}
	return rep, nil
}
