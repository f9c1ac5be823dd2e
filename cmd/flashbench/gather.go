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
