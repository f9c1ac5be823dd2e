package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// OrderRow is one order of the sale, as PostgreSQL holds it.
type OrderRow struct {
	ID           int64
	Buyer        string
	Qty          int
	Status       string
	CancelReason string
	CreatedAt    time.Time
}

// EventRow is one Kafka message of the sale's order events.
type EventRow struct {
	EventID   string
	Type      string
	OrderID   int64
	Buyer     string
	Partition int
	Offset    int64
	Time      time.Time // the message timestamp: when the relay's writer sent it
}

// RedisFacts is the sale's live stock in Redis after the run.
type RedisFacts struct {
	Present  bool
	Stock    int // hash field stock: units left
	Total    int // hash field total: units ever loaded
	Reserved int // units held by reservations (confirmed or not)
	Holds    int // number of reservations
}

// LedgerFacts are the inventory ledger's created entries of the sale.
type LedgerFacts struct {
	Created map[int64]int // order id -> created entries
	Note    string
}

// ClientOrder is a 201 the generator received.
type ClientOrder struct {
	Buyer   string
	OrderID int64
}

// Facts is everything the verification looks at; gathering them is
// collect.go's job, judging them is Verify's.
type Facts struct {
	SaleID         string
	Stock          int // the sale's stock in PostgreSQL
	Limit          int
	Quantity       int
	DemandUnits    int64 // units the buyers asked for, each up to the limit
	Orders         []OrderRow
	Events         []EventRow     // created events of the sale, duplicates included
	EventsNote     string         // why events could not be read, if so
	ForeignEvents  int            // events of the same sale id from other databases sharing the topic, left out
	Foreign        map[int64]bool // their order ids
	Redis          RedisFacts
	Unpublished    int // outbox rows not published after the wait, all shards
	OutboxNote     string
	Ledger         *LedgerFacts // nil: no ledger table
	LedgerNote     string
	ClientOrders   []ClientOrder
	Unresolved5xx  int64 // logical requests whose last answer was a 5xx, timeout or never sent
	UnresolvedNote string
}

// Check is one verdict of the verification.
type Check struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
}

// live reports whether an order still holds its units.
func live(o OrderRow) bool { return o.Status != "cancelled" && o.Status != "expired" }

// Verify judges the facts. Every check can fail: the tests feed each its
// broken case.
func Verify(f Facts) []Check {
	var out []Check
	add := func(name string, ok bool, format string, a ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	skip := func(name, why string) { out = append(out, Check{Name: name, OK: true, Skipped: true, Detail: why}) }

	var liveUnits, allUnits, oversoldCancels int
	perBuyer := map[string]int{}
	byID := make(map[int64]OrderRow, len(f.Orders))
	for _, o := range f.Orders {
		byID[o.ID] = o
		allUnits += o.Qty
		if o.CancelReason == "oversold" {
			oversoldCancels++
		}
		if live(o) {
			liveUnits += o.Qty
			perBuyer[o.Buyer] += o.Qty
		}
	}

	// 1. No oversell.
	add("no-oversell", liveUnits <= f.Stock && oversoldCancels == 0,
		"%d units in live orders (%d orders, %d units ever ordered) for a stock of %d; %d orders cancelled as oversold",
		liveUnits, len(f.Orders), allUnits, f.Stock, oversoldCancels)

	// 2. No undersell: when demand exceeded supply, what is left is less
	// than one request's quantity.
	if f.DemandUnits >= int64(f.Stock) {
		left := f.Stock - liveUnits
		add("no-undersell", left < max(1, f.Quantity),
			"demand %d units >= stock %d; %d units sold, %d left (a request asks for %d)",
			f.DemandUnits, f.Stock, liveUnits, left, f.Quantity)
	} else {
		skip("no-undersell", fmt.Sprintf("demand %d units < stock %d: the sale was not meant to sell out", f.DemandUnits, f.Stock))
	}

	// 3. No buyer above the limit.
	var above []string
	for b, n := range perBuyer {
		if n > f.Limit {
			above = append(above, fmt.Sprintf("%s=%d", b, n))
		}
	}
	sort.Strings(above)
	add("per-buyer-limit", len(above) == 0, "%d buyers hold orders; limit %d; above it: %s",
		len(perBuyer), f.Limit, listOrNone(above, 5))

	// 4. Exactly one created event id per order; duplicate deliveries of
	// one event id are at-least-once and allowed.
	if f.EventsNote != "" {
		add("one-created-event-per-order", false, "events not read: %s", f.EventsNote)
	} else {
		ids := map[int64]map[string]int{}
		for _, e := range f.Events {
			if e.Type != "flashsale.order.created" {
				continue
			}
			if ids[e.OrderID] == nil {
				ids[e.OrderID] = map[string]int{}
			}
			ids[e.OrderID][e.EventID]++
		}
		var missing, multi, phantom []string
		dups := 0
		for _, o := range f.Orders {
			switch n := len(ids[o.ID]); {
			case n == 0:
				missing = append(missing, fmt.Sprint(o.ID))
			case n > 1:
				multi = append(multi, fmt.Sprint(o.ID))
			}
		}
		for id, evs := range ids {
			if _, ok := byID[id]; !ok {
				phantom = append(phantom, fmt.Sprint(id))
			}
			for _, n := range evs {
				dups += n - 1
			}
		}
		sort.Strings(phantom)
		foreign := ""
		if f.ForeignEvents > 0 {
			foreign = fmt.Sprintf("; %d events of other databases' orders with the same sale id on the shared topic left out", f.ForeignEvents)
		}
		add("one-created-event-per-order", len(missing) == 0 && len(multi) == 0 && len(phantom) == 0,
			"%d orders, %d created event ids; missing: %s; several event ids: %s; events without an order: %s; "+
				"redelivered copies of one event id (allowed): %d%s",
			len(f.Orders), countIDs(ids), listOrNone(missing, 5), listOrNone(multi, 5), listOrNone(phantom, 5), dups, foreign)
	}

	// 5. Redis: units left plus units reserved is everything ever loaded,
	// which is PostgreSQL's stock; and every live order's units are among
	// the reservations (fewer would mean units sold twice).
	if !f.Redis.Present {
		add("redis-stock-balance", false, "the sale hash is missing from Redis")
	} else {
		r := f.Redis
		ok := r.Stock+r.Reserved == r.Total && r.Total == f.Stock && r.Stock >= 0 && r.Reserved >= liveUnits
		add("redis-stock-balance", ok,
			"stock %d + reserved %d (%d reservations) = %d, total %d, PostgreSQL stock %d; live order units %d (reservations without a live order: %d units)",
			r.Stock, r.Reserved, r.Holds, r.Stock+r.Reserved, r.Total, f.Stock, liveUnits, r.Reserved-liveUnits)
	}

	// 6. Outbox drained.
	if f.OutboxNote != "" {
		add("outbox-drained", false, "%s", f.OutboxNote)
	} else {
		add("outbox-drained", f.Unpublished == 0, "%d unpublished outbox rows over every shard", f.Unpublished)
	}

	// 7. One ledger entry per order, when there is a ledger.
	switch {
	case f.Ledger == nil:
		skip("one-ledger-entry-per-order", "skipped: "+f.LedgerNote)
	default:
		var missing, extra []string
		for _, o := range f.Orders {
			if f.Ledger.Created[o.ID] != 1 {
				missing = append(missing, fmt.Sprintf("%d(%d)", o.ID, f.Ledger.Created[o.ID]))
			}
		}
		for id := range f.Ledger.Created {
			if _, ok := byID[id]; !ok && !f.Foreign[id] {
				extra = append(extra, fmt.Sprint(id))
			}
		}
		sort.Strings(extra)
		add("one-ledger-entry-per-order", len(missing) == 0 && len(extra) == 0,
			"%d orders, %d with a created entry; orders without exactly one: %s; entries without an order: %s%s",
			len(f.Orders), len(f.Ledger.Created), listOrNone(missing, 5), listOrNone(extra, 5), noteSuffix(f.Ledger.Note))
	}

	// 8. No 5xx left unresolved by the client's retries.
	add("no-unretried-5xx", f.Unresolved5xx == 0, "%d requests ended on a 5xx, a timeout or unsent after their retries%s",
		f.Unresolved5xx, noteSuffix(f.UnresolvedNote))

	// 9. Every 201 is a durable order of that buyer.
	var lost []string
	for _, c := range f.ClientOrders {
		if o, ok := byID[c.OrderID]; !ok || o.Buyer != c.Buyer {
			lost = append(lost, fmt.Sprint(c.OrderID))
		}
	}
	add("every-201-is-durable", len(lost) == 0, "%d orders answered 201; not in PostgreSQL for that buyer: %s",
		len(f.ClientOrders), listOrNone(lost, 5))
	return out
}

func countIDs(ids map[int64]map[string]int) int {
	n := 0
	for _, evs := range ids {
		n += len(evs)
	}
	return n
}

func listOrNone(xs []string, n int) string {
	if len(xs) == 0 {
		return "none"
	}
	if len(xs) > n {
		return fmt.Sprintf("%s … (%d in all)", strings.Join(xs[:n], ", "), len(xs))
	}
	return strings.Join(xs, ", ")
}

func noteSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// Passed reports whether no check failed.
func Passed(cs []Check) bool {
	for _, c := range cs {
		if !c.OK {
			return false
		}
	}
	return true
}
