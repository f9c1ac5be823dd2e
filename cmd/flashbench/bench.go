package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// waitReady polls /readyz for up to a minute.
func (b *bench) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.opts.URL+"/readyz", nil)
		resp, err := b.api.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/readyz never answered 200: %s", b.opts.URL, last)
}

// createSale creates an active sale through the admin API.
func (b *bench) createSale(ctx context.Context, sku string, stock, limit int) (string, error) {
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]any{"sku": sku, "title": "flashbench " + sku, "price_cents": 19900,
		"currency": "EUR", "stock": stock, "per_user_limit": limit,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339Nano)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.opts.URL+"/v1/admin/sales", bytes.NewReader(body))
	req.Header.Set("Authorization", b.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.api.Do(req)
	if err != nil {
		return "", fmt.Errorf("create sale: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create sale: %d %s", resp.StatusCode, bytes.TrimSpace(rb))
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rb, &v); err != nil || v.ID == "" {
		return "", fmt.Errorf("create sale: no id in %s", rb)
	}
	return v.ID, nil
}

// remaining reads the sale's remaining stock through the API.
func (b *bench) remaining(ctx context.Context, id string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.opts.URL+"/v1/sales/"+id, nil)
	resp, err := b.api.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Remaining int `json:"remaining"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /v1/sales/%s: %d", id, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v.Remaining, err
}

// buyClient is the generator's client for the buy endpoint of base.
func (b *bench) buyClient(base, saleID string) *Client {
	body := fmt.Sprintf(`{"sale_id":%q,"quantity":%d}`, saleID, b.opts.Quantity)
	return NewClient(ClientOptions{URL: base + "/v1/orders", Body: []byte(body), Conns: b.opts.Conns,
		Timeout: b.opts.Timeout, Retries: b.opts.Retries, Backoff: b.opts.Backoff, RetryCap: b.opts.RetryCap,
		Std: b.opts.ClientKind == "std"})
}

// watched lists the processes to report, this one first.
func (b *bench) watched(extra ...Watched) []Watched {
	w := []Watched{{Name: "flashbench (generator)"}}
	if b.opts.ServicePID > 0 {
		w = append(w, Watched{Name: "flashsale serve", PID: b.opts.ServicePID})
	}
	for _, p := range b.opts.Procs {
		pw, _ := parseProc(p)
		w = append(w, pw)
	}
	return append(w, extra...)
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

// flashSale runs the load against the sale and returns its report, the
// orders the buyers were answered, the requests left on a 5xx and the
// demand in units.
func (b *bench) flashSale(ctx context.Context, saleID string, rate float64) (LoadReport, []ClientOrder, int64, int64) {
	o := b.opts
	buyers := b.tokens.Fresh(o.Limit, o.Quantity)
	client := b.buyClient(o.URL, saleID)
	defer client.Close()
	lr := LoadReport{SaleID: saleID, Stock: o.Stock, Limit: o.Limit, Quantity: o.Quantity, Buyers: o.Buyers, Rate: rate}

	var mu sync.Mutex
	var orders []ClientOrder
	var firstSoldOut, last201 atomic.Int64
	rec := NewRecorder(time.Now(), 4*runtime.GOMAXPROCS(0))
	start := rec.start
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		i := buyers.Next()
		r := client.Buy(ctx, buyers.auth[i], "fb-"+b.runID+"-"+strconv.FormatInt(seq, 36))
		done := int64(time.Since(start))
		switch r.Outcome {
		case OutCreated:
			buyers.units[i].Add(buyers.qty)
			id, _ := strconv.ParseInt(r.OrderID, 10, 64)
			mu.Lock()
			orders = append(orders, ClientOrder{Buyer: buyers.ids[i], OrderID: id})
			mu.Unlock()
			for cur := last201.Load(); done > cur && !last201.CompareAndSwap(cur, done); cur = last201.Load() {
			}
		case OutSoldOut:
			for cur := firstSoldOut.Load(); (cur == 0 || done < cur) && !firstSoldOut.CompareAndSwap(cur, done); cur = firstSoldOut.Load() {
			}
		}
		return r.Outcome, r.Sent
	}
	x0 := b.dbXacts(ctx)
	sampler := StartSampler(b.watched(), time.Second)
	var st RunStats
	sched := Schedule{Rate: rate, Ramp: o.Ramp, Duration: o.Duration}
	if o.Model == "open" {
		st = RunOpen(ctx, sched, o.Workers, o.Grace, rec, op)
	} else {
		st = RunClosed(ctx, o.VUs, o.Ramp+o.Duration, o.Think, rec, op)
		lr.Rate = 0
	}
	lr.Processes = sampler.Stop(runtime.NumCPU())
	lr.Run = st
	lr.Xacts = -1
	if x1 := b.dbXacts(ctx); x0 >= 0 && x1 >= x0 {
		lr.Xacts = x1 - x0
	}
	m := rec.Merge()

	lr.Seconds = st.End.Sub(st.Start).Seconds()
	lr.Requests = m.All.TotalCount()
	if lr.Seconds > 0 {
		lr.RequestsPerSec = float64(lr.Requests) / lr.Seconds
	}
	cs := client.stats
	lr.Attempts, lr.Retries, lr.Recovered, lr.Replayed = cs.Attempts.Load(), cs.Retries.Load(), cs.Recovered.Load(), cs.Replayed.Load()
	lr.Timeouts, lr.ConnErrors = cs.Timeouts.Load(), cs.ConnErrs.Load()
	lr.Status = map[string]int64{}
	for code := range cs.Status {
		if n := cs.Status[code].Load(); n > 0 {
			lr.Status[strconv.Itoa(code)] = n
		}
	}
	lr.Orders = m.Count(OutCreated)
	lr.SelloutClient = time.Duration(firstSoldOut.Load()).Seconds()
	lr.SelloutLast201 = time.Duration(last201.Load()).Seconds()
	if sellout := lr.SelloutLast201; sellout > 0 {
		lr.OrdersPerSec = float64(lr.Orders) / sellout
	}
	lr.Latency = map[string]LatencyStats{"all": statsOf(m.All)}
	others := newHist(3)
	for o := range numOutcomes {
		lr.Latency[Outcome(o).String()] = statsOf(m.ByOutcome[o])
		if Outcome(o) != OutCreated && Outcome(o) != OutSoldOut && Outcome(o) != OutRateLimited && Outcome(o) != OutOK {
			others.Merge(m.ByOutcome[o])
		}
	}
	lr.Latency["other_errors"] = statsOf(others)
	lr.Service = statsOf(m.Service)
	for sec, s := range m.Series {
		p := SeriesPoint{T: sec, Counts: map[string]int64{}}
		if o.Model == "open" {
			p.Intended = sched.RateAt(time.Duration(sec)*time.Second + time.Second/2)
		}
		for o, n := range s.Counts {
			if n > 0 {
				p.Counts[Outcome(o).String()] = n
				p.Done += n
			}
		}
		if s.Lat.TotalCount() > 0 {
			p.P50 = float64(s.Lat.ValueAtQuantile(50)) / 1000
			p.P99 = float64(s.Lat.ValueAtQuantile(99)) / 1000
			p.Max = float64(s.Lat.Max()) / 1000
		}
		lr.Series = append(lr.Series, p)
	}
	var unresolved int64
	for o := range numOutcomes {
		if Outcome(o).unresolved5xx() {
			unresolved += m.Count(Outcome(o))
		}
	}
	lr.DemandUnits = buyers.DemandUnits()
	return lr, orders, unresolved, lr.DemandUnits
}

// gather collects the facts the verification judges, waiting (bounded) for
// the outbox and the ledger to catch up, and measures the event lags.
func (b *bench) gather(ctx context.Context, saleID string, clientOrders []ClientOrder, unresolved, demand int64, from map[int]int64) (Facts, LagReport, error) {
	o := b.opts
	sid, _ := strconv.ParseInt(saleID, 10, 64)
	f := Facts{SaleID: saleID, Stock: o.Stock, Limit: o.Limit, Quantity: o.Quantity, DemandUnits: demand,
		ClientOrders: clientOrders, Unresolved5xx: unresolved}
	var lag LagReport

	n, waited, err := waitDrained(ctx, b.pools, o.DrainTimeout)
	lag.DrainWaited = waited.Seconds()
	f.Unpublished = n
	if err != nil {
		f.OutboxNote = "could not count unpublished rows: " + err.Error()
	}
	b.say("outbox: %d unpublished rows after %s", n, waited.Round(time.Millisecond))

	if f.Orders, err = loadOrders(ctx, b.pools, sid); err != nil {
		return f, lag, fmt.Errorf("read orders: %w", err)
	}
	var stock int
	if err := b.pools[0].QueryRow(ctx, "SELECT stock FROM sales WHERE id = $1", sid).Scan(&stock); err != nil {
		return f, lag, fmt.Errorf("read sale: %w", err)
	}
	f.Stock = stock
	if f.Redis, err = redisFacts(ctx, b.rdb, b.cfg.RedisPrefix, saleID); err != nil {
		return f, lag, fmt.Errorf("read redis: %w", err)
	}

	t := time.Now()
	var kfrom map[int]int64
	if o.KafkaFrom == "run" {
		kfrom = from
	}
	events, scanned, err := readEvents(ctx, b.cfg.KafkaBrokers, b.cfg.KafkaTopic, kfrom, saleID)
	lag.Scanned = scanned
	if err != nil {
		f.EventsNote = err.Error()
	}
	// Tests and other deployments may relay to the same topic from their own
	// databases, whose sale ids start at 1 too: an event of this sale id
	// whose buyer is none of ours is theirs.
	f.Foreign = map[int64]bool{}
	for _, e := range events {
		if strings.HasPrefix(e.Buyer, buyerPrefix) {
			f.Events = append(f.Events, e)
		} else {
			f.ForeignEvents++
			f.Foreign[e.OrderID] = true
		}
	}
	b.say("kafka: %d events of the sale among %d messages in %s", len(f.Events), lag.Scanned, time.Since(t).Round(time.Millisecond))
	lag.Relay, lag.Duplicates = relayLag(f.Orders, f.Events)
	lag.RelayNote = "Kafka message timestamp (set by the relay's writer when it sends the batch; acks=all follows within a round trip) minus the order's created_at (its transaction's start, just before the commit), first delivery of each created event"

	f.Ledger, f.LedgerNote, lag.Consumer, lag.ConsumerNote = b.ledger(ctx, sid, f.Orders)
	if gl, ok, err := groupLag(ctx, b.cfg.KafkaBrokers, b.cfg.KafkaTopic, o.LedgerGroup); err == nil && ok {
		lag.GroupLag = &gl
		lag.ConsumerNote += fmt.Sprintf(" Group %s lag after the checks: %d messages.", o.LedgerGroup, gl)
	}
	return f, lag, nil
}

// ledger waits for the inventory ledger to record every order (when its
// table exists) and returns its facts and the commit → entry lag.
func (b *bench) ledger(ctx context.Context, sid int64, orders []OrderRow) (*LedgerFacts, string, LatencyStats, string) {
	if b.opts.Ledger == "skip" {
		return nil, "--ledger skip", LatencyStats{}, "not measured (--ledger skip)"
	}
	ok, err := ledgerExists(ctx, b.pools[0])
	if err != nil {
		return nil, "could not look for ledger_entries: " + err.Error(), LatencyStats{}, ""
	}
	if !ok {
		return nil, "no ledger_entries table on database 0 (the inventory consumer's migration is not applied)", LatencyStats{},
			"not measured: no inventory ledger"
	}
	start := time.Now()
	var counts map[int64]int
	var at map[int64]time.Time
	total0, _ := ledgerTotal(ctx, b.pools[0])
	total, lastTotal, lastMove := total0, total0, start
	stalled := false
	for {
		counts, at, err = ledgerCreated(ctx, b.pools[0], sid)
		if err != nil {
			return &LedgerFacts{Created: map[int64]int{}, Note: "read failed: " + err.Error()}, "", LatencyStats{}, ""
		}
		if len(counts) >= len(orders) || time.Since(start) > b.opts.LedgerTimeout || ctx.Err() != nil {
			break
		}
		// The ledger may be busy with earlier events: give up early only
		// when it records nothing at all.
		if total, _ = ledgerTotal(ctx, b.pools[0]); total != lastTotal {
			lastTotal, lastMove = total, time.Now()
		} else if time.Since(lastMove) > 15*time.Second {
			stalled = true
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	waited := time.Since(start)
	b.say("ledger: %d of %d orders recorded after waiting %s", len(counts), len(orders), waited.Round(time.Millisecond))
	h := newHist(3)
	for _, o := range orders {
		if t, ok := at[o.ID]; ok {
			_ = h.RecordValue(micros(t.Sub(o.CreatedAt)))
		}
	}
	rate := float64(total-total0) / waited.Seconds()
	note := fmt.Sprintf("waited %s for the ledger, which recorded %.0f entries/s of any sale meanwhile", waited.Round(time.Millisecond), rate)
	if stalled {
		note += "; it recorded nothing for 15 s: is `flashsale consume inventory` running?"
	}
	return &LedgerFacts{Created: counts, Note: note}, "", statsOf(h),
		"ledger_entries.recorded_at minus the order's created_at (relay, Kafka and the inventory consumer's transaction)."
}

// relayLag is, for each created event of a known order, its first Kafka
// timestamp minus the order's created_at; and the redelivered copies.
func relayLag(orders []OrderRow, events []EventRow) (LatencyStats, int) {
	created := make(map[int64]time.Time, len(orders))
	for _, o := range orders {
		created[o.ID] = o.CreatedAt
	}
	first := map[string]EventRow{}
	dups := 0
	for _, e := range events {
		if prev, ok := first[e.EventID]; ok {
			dups++
			if e.Time.Before(prev.Time) {
				first[e.EventID] = e
			}
			continue
		}
		first[e.EventID] = e
	}
	h := newHist(3)
	for _, e := range first {
		if c, ok := created[e.OrderID]; ok && e.Type == "flashsale.order.created" {
			_ = h.RecordValue(micros(e.Time.Sub(c)))
		}
	}
	return statsOf(h), dups
}

// dbXacts is the transactions committed and rolled back so far on the
// service's databases (pg_stat_database, flushed about once a second), or
// -1.
func (b *bench) dbXacts(ctx context.Context) int64 {
	var total int64
	for _, p := range b.pools {
		var n int64
		if err := p.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
			return -1
		}
		total += n
	}
	return total
}

// lastCommit is the last order's created_at, in seconds after start.
func lastCommit(orders []OrderRow, start time.Time) float64 {
	var last time.Time
	for _, o := range orders {
		if o.CreatedAt.After(last) {
			last = o.CreatedAt
		}
	}
	if last.IsZero() {
		return 0
	}
	return last.Sub(start).Seconds()
}

// Fresh returns buyers sharing these tokens with new counters.
func (b *Buyers) Fresh(limit, qty int) *Buyers {
	return &Buyers{ids: b.ids, auth: b.auth, order: b.order, clicks: make([]atomic.Int32, len(b.ids)),
		units: make([]atomic.Int32, len(b.ids)), limit: int32(limit), qty: int32(qty)}
}

// ceilings measures the machine's ceilings and the service's peaks; it
// returns the sold-out peak (0 when it could not be measured).
func (b *bench) ceilings(ctx context.Context, rep *Report) float64 {
	o := b.opts
	dur := o.PhaseDuration

	// 1. A bare net/http JSON handler, its own process.
	addr, pid, stop, err := startBareServer(ctx)
	if err != nil {
		rep.Ceilings = append(rep.Ceilings, Phase{Name: "bare", Error: err.Error()})
	} else {
		c := b.buyClient("http://"+addr, "1")
		watch := b.watched(Watched{Name: "bare-server", PID: pid})
		ph := runPhase(ctx, "bare", "net/http handler answering a small JSON body to the same POST (flashbench bare-server, own process)",
			o.HTTPConc, dur, OutOK, watch, httpOp(c, b.tokens.Fresh(1, 1), b.runID+"bare"))
		rep.Ceilings = append(rep.Ceilings, ph)
		b.say("ceiling bare handler: %.0f req/s", ph.PerSecond)
		if ph.PerSecond > 0 {
			// The latency floor of this machine near capacity, to read the
			// service's open-model p99 against.
			rate := o.RateFraction * ph.PerSecond
			ph = runOpenPhase(ctx, "bare open", fmt.Sprintf("the same at %.0f/s = %.2f × its peak, open model, latency from the intended send", rate, o.RateFraction),
				rate, o.Workers, dur, OutOK, watch, httpOp(c, b.tokens.Fresh(1, 1), b.runID+"bopen"))
			rep.Ceilings = append(rep.Ceilings, ph)
			b.say("bare handler at %.0f/s, open model: p99 %.2f ms", rate, ph.Latency.P99)
		}
		c.Close()
		stop()
	}

	// 2. The reservation script alone.
	ph := luaCeiling(ctx, b.cfg, o.LuaConc, dur, b.watched())
	rep.Ceilings = append(rep.Ceilings, ph)
	b.say("ceiling Lua reservation: %.0f/s %s", ph.PerSecond, ph.Error)

	// 3. The order + outbox insert alone.
	ph = insertCeiling(ctx, b.cfg, o.InsertConc, dur, b.watched())
	rep.Ceilings = append(rep.Ceilings, ph)
	b.say("ceiling order+outbox insert: %.0f/s %s", ph.PerSecond, ph.Error)

	// 4. The service's sold-out peak (closed model), then the open model at
	// --rate-fraction of it: the sold-out path's latency near capacity.
	var soldOut float64
	id, err := b.createSale(ctx, "PEAK-SOLDOUT-"+b.runID, 0, 1)
	if err != nil {
		rep.Probes = append(rep.Probes, Phase{Name: "service sold-out", Error: err.Error()})
		return 0
	}
	c := b.buyClient(o.URL, id)
	defer c.Close()
	ph = runPhase(ctx, "service sold-out", "POST /v1/orders on a sold-out sale (JWT, body, sold-out fast path), closed model",
		o.HTTPConc, dur, OutSoldOut, b.watched(), httpOp(c, b.tokens.Fresh(1, 1), b.runID+"so"))
	rep.Probes = append(rep.Probes, ph)
	soldOut = ph.PerSecond
	b.say("peak sold-out answers: %.0f/s", ph.PerSecond)
	if soldOut > 0 {
		rate := o.RateFraction * soldOut
		ph = runOpenPhase(ctx, "service sold-out open", fmt.Sprintf("the same at %.0f/s = %.2f × that peak, open model, latency from the intended send", rate, o.RateFraction),
			rate, o.Workers, dur, OutSoldOut, b.watched(), httpOp(c, b.tokens.Fresh(1, 1), b.runID+"sopen"))
		rep.Probes = append(rep.Probes, ph)
		b.say("sold-out answers at %.0f/s, open model: p99 %.2f ms", rate, ph.Latency.P99)
	}
	return soldOut
}

// peakOrders measures the service's durable orders per second, closed
// model, on a sale too large to sell out.
func (b *bench) peakOrders(ctx context.Context, rep *Report) {
	o := b.opts
	id, err := b.createSale(ctx, "PEAK-ORDERS-"+b.runID, 100_000_000, 1_000_000)
	if err != nil {
		rep.Probes = append(rep.Probes, Phase{Name: "service orders", Error: err.Error()})
		return
	}
	c := b.buyClient(o.URL, id)
	defer c.Close()
	x0 := b.dbXacts(ctx)
	ph := runPhase(ctx, "service orders", "POST /v1/orders that each create a durable order (201 after the commit), closed model",
		o.OrdersConc, o.PhaseDuration, OutCreated, b.watched(), httpOp(c, b.tokens.Fresh(1_000_000, 1), b.runID+"or"))
	if x1 := b.dbXacts(ctx); x0 >= 0 && x1 >= x0 && ph.OKOps > 0 {
		ph.XactsPerOp = float64(x1-x0) / float64(ph.OKOps)
	}
	rep.Probes = append(rep.Probes, ph)
	b.say("peak durable orders: %.0f/s", ph.PerSecond)
	if ph.PerSecond > 0 {
		// The order path's latency near capacity, as for the sold-out path.
		rate := o.RateFraction * ph.PerSecond
		ph = runOpenPhase(ctx, "service orders open", fmt.Sprintf("the same at %.0f/s = %.2f × that peak, open model, latency from the intended send", rate, o.RateFraction),
			rate, o.Workers, o.PhaseDuration, OutCreated, b.watched(), httpOp(c, b.tokens.Fresh(1_000_000, 1), b.runID+"oopen"))
		rep.Probes = append(rep.Probes, ph)
		b.say("durable orders at %.0f/s, open model: p99 %.2f ms", rate, ph.Latency.P99)
	}
}

// openP99 judges one path's p99 in its open-model phase against 20 ms; a
// phase not run at 0.8 × the path's peak is reported but fails.
func openP99(path string, open *Phase, peak float64) (met bool, text string) {
	frac := open.Rate / peak
	text = fmt.Sprintf("%s at %.0f/s = %.2f × its peak: p99 %.2f ms (p99.9 %.2f, max %.2f)",
		path, open.Rate, frac, open.Latency.P99, open.Latency.P999, open.Latency.Max)
	if frac < 0.78 || frac > 0.82 {
		return false, text + " (not at 0.8 × the peak: not judged)"
	}
	return open.Latency.P99 <= 20, text
}

func phaseByName(ps []Phase, name string) *Phase {
	for i := range ps {
		if ps[i].Name == name && ps[i].Error == "" && ps[i].PerSecond > 0 {
			return &ps[i]
		}
	}
	return nil
}

func (b *bench) ratiosAndTargets(rep *Report, soldOutPeak float64) {
	bare, lua, ins := phaseByName(rep.Ceilings, "bare"), phaseByName(rep.Ceilings, "lua"), phaseByName(rep.Ceilings, "insert")
	so, ord := phaseByName(rep.Probes, "service sold-out"), phaseByName(rep.Probes, "service orders")
	ratio := func(name string, s float64, c *Phase) {
		if c != nil && s > 0 {
			rep.Ratios = append(rep.Ratios, Ratio{Name: name, Service: s, Ceiling: c.PerSecond, Ratio: s / c.PerSecond})
		}
	}
	if so != nil {
		ratio("sold-out answers/s (peak) ÷ bare handler req/s", so.PerSecond, bare)
	}
	if ord != nil {
		ratio("durable orders/s (peak) ÷ Lua reservations/s", ord.PerSecond, lua)
		ratio("durable orders/s (peak) ÷ order+outbox inserts/s", ord.PerSecond, ins)
		ratio("durable orders/s (peak) ÷ bare handler req/s", ord.PerSecond, bare)
	}
	l := rep.Load
	ratio("flash sale requests/s ÷ bare handler req/s", l.RequestsPerSec, bare)
	ratio("flash sale orders/s (until sell-out) ÷ order+outbox inserts/s", l.OrdersPerSec, ins)

	yes := func(v bool) *bool { return &v }
	soldTarget := Target{Name: "sold-out answers vs bare handler", Target: "≥ 0.8 × bare handler req/s (same run)"}
	if so != nil && bare != nil {
		r := so.PerSecond / bare.PerSecond
		soldTarget.Measured = fmt.Sprintf("%.0f/s = %.2f × %.0f/s", so.PerSecond, r, bare.PerSecond)
		soldTarget.Met = yes(r >= 0.8)
	} else {
		soldTarget.Measured = "needs --ceilings"
	}
	ordTarget := Target{Name: "durable orders/s", Target: "≥ 17,000 orders/s (201 after commit)"}
	if ord != nil {
		ordTarget.Measured = fmt.Sprintf("%.0f/s at peak (closed model, %d users); the flash sale: %.0f/s until sell-out", ord.PerSecond, ord.Concurrency, l.OrdersPerSec)
		ordTarget.Met = yes(ord.PerSecond >= 17000)
	} else {
		ordTarget.Measured = fmt.Sprintf("%.0f/s until sell-out in the flash sale (arrival-bound; --ceilings measures the peak)", l.OrdersPerSec)
	}
	p99 := Target{Name: "p99 at 80 % of peak, open model", Target: "≤ 20 ms"}
	all, sold := l.Latency["all"], l.Latency["sold_out"]
	flash := fmt.Sprintf("the flash sale at %.0f/s: p99 %.2f ms over all answers, %.2f ms over sold-out answers", l.Rate, all.P99, sold.P99)
	soldOpen, ordersOpen := phaseByName(rep.Probes, "service sold-out open"), phaseByName(rep.Probes, "service orders open")
	if soldOpen != nil && soldOutPeak > 0 {
		met, text := openP99("sold-out path", soldOpen, soldOutPeak)
		if peak := phaseByName(rep.Probes, "service orders"); ordersOpen != nil && peak != nil {
			m, t := openP99("order path", ordersOpen, peak.PerSecond)
			met, text = met && m, text+"; "+t
		}
		p99.Measured, p99.Met = text+"; "+flash, yes(met)
		if bareOpen, bare := phaseByName(rep.Ceilings, "bare open"), phaseByName(rep.Ceilings, "bare"); bareOpen != nil && bare != nil {
			_, t := openP99("for reference, the bare handler", bareOpen, bare.PerSecond)
			p99.Measured += "; " + t
		}
	} else {
		p99.Measured = flash + "; the peak was not measured (--ceilings)"
	}
	relay := Target{Name: "relay lag (issue 4)", Target: "commit → Kafka p99 ≤ 100 ms"}
	if rep.Lag.Relay.Count > 0 {
		relay.Measured = fmt.Sprintf("p99 %.1f ms (p50 %.1f, max %.1f) over %d events", rep.Lag.Relay.P99, rep.Lag.Relay.P50, rep.Lag.Relay.Max, rep.Lag.Relay.Count)
		relay.Met = yes(rep.Lag.Relay.P99 <= 100)
	} else {
		relay.Measured = "no events"
	}
	mem := Target{Name: "service memory flat under load", Target: "RSS does not grow with the load: peak of the last third ≤ 1.1 × that of the middle third + 8 MB, over ≥ 60 s"}
	for _, u := range l.Processes {
		if u.Name == "flashsale serve" && u.Error == "" {
			mem.Met, mem.Measured = memoryFlat(u.Series)
			mem.Measured = fmt.Sprintf("RSS %.0f → %.0f MB, peak %.0f MB over %.0f s; %s", u.RSSStartMB, u.RSSEndMB, u.RSSPeakMB, l.Seconds, mem.Measured)
		}
	}
	if mem.Measured == "" {
		mem.Measured = "needs --service-pid"
	}
	rep.Targets = []Target{soldTarget, ordTarget, p99, relay, mem}
}

// minFlatSeconds is the shortest load on which memoryFlat judges: a
// shorter one is mostly the warm-up of pools and caches.
const minFlatSeconds = 60

// memoryFlat judges whether the service's RSS stopped growing: the first
// third of the load is warm-up (connection pools, the token cache, buffers
// reach their size), so the peak of the last third is compared with the
// peak of the middle third, with room for the garbage collector's
// sawtooth. A leak shows as a last third above the middle one.
func memoryFlat(series []ProcPoint) (*bool, string) {
	if len(series) == 0 || series[len(series)-1].T < minFlatSeconds {
		return nil, fmt.Sprintf("not judged: needs ≥ %d s of load (--duration)", minFlatSeconds)
	}
	end := series[len(series)-1].T
	var middle, last float64
	for _, p := range series {
		switch {
		case p.T > 2*end/3:
			last = max(last, p.RSSMB)
		case p.T > end/3:
			middle = max(middle, p.RSSMB)
		}
	}
	met := last <= 1.1*middle+8
	return &met, fmt.Sprintf("peak %.0f MB in the middle third, %.0f MB in the last (%+.0f %%)",
		middle, last, 100*(last-middle)/middle)
}

// machine describes where the run happens.
func (b *bench) machine(ctx context.Context) map[string]string {
	m := map[string]string{
		"cpus":               strconv.Itoa(runtime.NumCPU()),
		"gomaxprocs":         strconv.Itoa(runtime.GOMAXPROCS(0)),
		"go":                 runtime.Version(),
		"kernel":             readTrim("/proc/sys/kernel/osrelease"),
		"loadavg_start":      readTrim("/proc/loadavg"),
		"cpu_pressure_start": firstLine(readTrim("/proc/pressure/cpu")),
	}
	if s, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(s), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m["memory"] = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	var v string
	if err := b.pools[0].QueryRow(ctx, "SHOW server_version").Scan(&v); err == nil {
		m["postgresql"] = v
	}
	if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m["redis"] = v
			}
		}
	}
	for _, n := range b.opts.Notes {
		if k, v, ok := strings.Cut(n, "="); ok {
			m[k] = v
		}
	}
	return m
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printSummary prints the few lines a person reads first.
func printSummary(w io.Writer, r *Report, dir string) {
	l := r.Load
	all := l.Latency["all"]
	fmt.Fprintf(w, "\nflashbench %s: sale %s, %d units, %d buyers, %s model at %.0f/s\n", r.RunID, l.SaleID, l.Stock, l.Buyers, l.Run.Model, l.Rate)
	fmt.Fprintf(w, "  requests  %d in %.1f s = %.0f req/s; orders %d, %.0f orders/s until sell-out; sold out after %.2f s\n",
		l.Requests, l.Seconds, l.RequestsPerSec, l.Orders, l.OrdersPerSec, l.SelloutClient)
	fmt.Fprintf(w, "  latency   all p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", all.P50, all.P99, all.P999, all.Max)
	for _, k := range []string{"created", "sold_out"} {
		if s := l.Latency[k]; s.Count > 0 {
			fmt.Fprintf(w, " | %s p99 %.2f", k, s.P99)
		}
	}
	fmt.Fprintln(w)
	ledger := "n/a"
	if r.Lag.Consumer.Count > 0 {
		ledger = fmt.Sprintf("p50 %.1f  p99 %.1f ms over %d orders", r.Lag.Consumer.P50, r.Lag.Consumer.P99, r.Lag.Consumer.Count)
	}
	fmt.Fprintf(w, "  relay lag p50 %.1f  p99 %.1f ms; ledger lag %s\n", r.Lag.Relay.P50, r.Lag.Relay.P99, ledger)
	for _, u := range l.Processes {
		if u.Error == "" {
			fmt.Fprintf(w, "  cpu       %-24s %.2f cores (%.0f%% of the machine), RSS %.0f MB\n", u.Name, u.Cores, u.MachinePct, u.RSSEndMB)
		}
	}
	for _, x := range r.Ratios {
		fmt.Fprintf(w, "  ratio     %-62s %.2f\n", x.Name, x.Ratio)
	}
	for _, t := range r.Targets {
		met := "not judged"
		if t.Met != nil {
			met = map[bool]string{true: "MET", false: "NOT MET"}[*t.Met]
		}
		fmt.Fprintf(w, "  target    %-36s %-10s %s\n", t.Name, met, t.Measured)
	}
	names := make([]string, 0, len(r.Checks))
	for _, c := range r.Checks {
		res := "ok"
		if c.Skipped {
			res = "skipped"
		} else if !c.OK {
			res = "FAILED"
		}
		names = append(names, fmt.Sprintf("  check     %-28s %-8s %s", c.Name, res, c.Detail))
	}
	for _, n := range names {
		fmt.Fprintln(w, n)
	}
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verification %s; report in %s/{report.md,report.json,chart.svg}\n", verdict, dir)
}
