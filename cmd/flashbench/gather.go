package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// gather collects the facts the verification judges, waiting (bounded) for
// the outbox and the ledger to catch up, and measures the event lags.
func (b *bench) gather(ctx context.Context, saleID string, clientOrders []ClientOrder, unresolved, demand int64, from map[int]int64) (Facts, LagReport, error) {
	o := b.opts
	sid, _ := strconv.ParseInt(saleID, 10, 64)
	f := Facts{SaleID: saleID, Stock: o.Stock, Limit: o.Limit, Quantity: o.Quantity, DemandUnits: demand,
		ClientOrders: clientOrders, Unresolved5xx: unresolved}
	var lag LagReport
	if err := b.storeFacts(ctx, sid, &f, &lag); err != nil {
		return f, lag, err
	}
	b.kafkaFacts(ctx, from, &f, &lag)
	f.Ledger, f.LedgerNote, lag.Consumer, lag.ConsumerNote = b.ledger(ctx, sid, f.Orders)
	if gl, ok, err := groupLag(ctx, b.cfg.KafkaBrokers, b.cfg.KafkaTopic, o.LedgerGroup); err == nil && ok {
		lag.GroupLag = &gl
		lag.ConsumerNote += fmt.Sprintf(" Group %s lag after the checks: %d messages.", o.LedgerGroup, gl)
	}
	return f, lag, nil
}

// storeFacts waits for the outbox to drain, then reads the sale's orders,
// its stock and its state in Redis.
func (b *bench) storeFacts(ctx context.Context, sid int64, f *Facts, lag *LagReport) error {
	n, waited, err := waitDrained(ctx, b.pools, b.opts.DrainTimeout)
	lag.DrainWaited = waited.Seconds()
	f.Unpublished = n
	if err != nil {
		f.OutboxNote = "could not count unpublished rows: " + err.Error()
	}
	b.say("outbox: %d unpublished rows after %s", n, waited.Round(time.Millisecond))
	if f.Orders, err = loadOrders(ctx, b.pools, sid); err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	if err := b.pools[0].QueryRow(ctx, "SELECT stock FROM sales WHERE id = $1", sid).Scan(&f.Stock); err != nil {
		return fmt.Errorf("read sale: %w", err)
	}
	if f.Redis, err = redisFacts(ctx, b.stock, b.cfg.RedisPrefix, f.SaleID); err != nil {
		return fmt.Errorf("read redis: %w", err)
	}
	return nil
}

// kafkaFacts reads the sale's events from the topic (from the offsets of
// before the sale with --kafka-from run) and measures the relay's lag.
func (b *bench) kafkaFacts(ctx context.Context, from map[int]int64, f *Facts, lag *LagReport) {
	t := time.Now()
	var kfrom map[int]int64
	if b.opts.KafkaFrom == "run" {
		kfrom = from
	}
	events, scanned, err := readEvents(ctx, b.cfg.KafkaBrokers, b.cfg.KafkaTopic, kfrom, f.SaleID)
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
	w, err := b.waitLedger(ctx, sid, len(orders))
	if err != nil {
		return &LedgerFacts{Created: map[int64]int{}, Note: "read failed: " + err.Error()}, "", LatencyStats{}, ""
	}
	b.say("ledger: %d of %d orders recorded after waiting %s", len(w.counts), len(orders), w.waited.Round(time.Millisecond))
	h := newHist(3)
	for _, o := range orders {
		if t, ok := w.at[o.ID]; ok {
			_ = h.RecordValue(micros(t.Sub(o.CreatedAt)))
		}
	}
	note := fmt.Sprintf("waited %s for the ledger, which recorded %.0f entries/s of any sale meanwhile",
		w.waited.Round(time.Millisecond), float64(w.entries)/w.waited.Seconds())
	if w.stalled {
		note += "; it recorded nothing for 15 s: is `flashsale consume inventory` running?"
	}
	return &LedgerFacts{Created: w.counts, Note: note}, "", statsOf(h),
		"ledger_entries.recorded_at minus the order's created_at (relay, Kafka and the inventory consumer's transaction)."
}

// ledgerWait is what waiting for the ledger saw.
type ledgerWait struct {
	counts  map[int64]int       // created entries by order
	at      map[int64]time.Time // when each order's entry was recorded
	entries int64               // entries of any sale recorded meanwhile
	waited  time.Duration
	stalled bool // it recorded nothing for 15 s
}

// waitLedger polls the ledger until it holds the sale's n orders, the
// ledger timeout passes, or the ledger stops recording anything at all.
func (b *bench) waitLedger(ctx context.Context, sid int64, n int) (ledgerWait, error) {
	var w ledgerWait
	start := time.Now()
	total0, _ := ledgerTotal(ctx, b.pools[0])
	total, lastTotal, lastMove := total0, total0, start
	for {
		var err error
		if w.counts, w.at, err = ledgerCreated(ctx, b.pools[0], sid); err != nil {
			return w, err
		}
		if len(w.counts) >= n || time.Since(start) > b.opts.LedgerTimeout || ctx.Err() != nil {
			break
		}
		// The ledger may be busy with earlier events: give up early only
		// when it records nothing at all.
		if total, _ = ledgerTotal(ctx, b.pools[0]); total != lastTotal {
			lastTotal, lastMove = total, time.Now()
		} else if time.Since(lastMove) > 15*time.Second {
			w.stalled = true
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	w.waited, w.entries = time.Since(start), total-total0
	return w, nil
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
