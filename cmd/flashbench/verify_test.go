package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// goodFacts is a sold-out sale of 10 units, limit 2, quantity 1: eight
// buyers, two of them with two orders, every event and ledger entry in
// place, one event delivered twice (at least once allows it).
func goodFacts() Facts {
	f := Facts{SaleID: "7", Stock: 10, Limit: 2, Quantity: 1, DemandUnits: 500,
		Redis:  RedisFacts{Present: true, Stock: 0, Total: 10, Reserved: 10, Holds: 10},
		Ledger: &LedgerFacts{Created: map[int64]int{}}}
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 10 {
		buyer := fmt.Sprintf("b%d", i%8)
		id := int64(1000 + i)
		f.Orders = append(f.Orders, OrderRow{ID: id, Buyer: buyer, Qty: 1, Status: "pending_payment", CreatedAt: t0})
		f.Events = append(f.Events, EventRow{EventID: fmt.Sprintf("ev-%d", i), Type: "flashsale.order.created", OrderID: id, Time: t0.Add(time.Millisecond)})
		f.Ledger.Created[id] = 1
		f.ClientOrders = append(f.ClientOrders, ClientOrder{Buyer: buyer, OrderID: id})
	}
	f.Events = append(f.Events, f.Events[3]) // a redelivery of the same event id
	return f
}

func failed(cs []Check) []string {
	var out []string
	for _, c := range cs {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestVerifyPassesAConsistentSale(t *testing.T) {
	cs := Verify(goodFacts())
	if !Passed(cs) {
		for _, c := range cs {
			t.Logf("%s ok=%v %s", c.Name, c.OK, c.Detail)
		}
		t.Fatalf("failed: %v", failed(cs))
	}
	if len(cs) != 9 {
		t.Errorf("%d checks, want 9", len(cs))
	}
	for _, c := range cs {
		if c.Name == "one-created-event-per-order" && !strings.Contains(c.Detail, "(allowed): 1") {
			t.Errorf("the redelivery is not reported: %s", c.Detail)
		}
	}
}

// TestVerifyCatchesEveryBreakage breaks one thing at a time: each must fail
// the verification, its own check first (an oversell also unbalances
// Redis, for one).
func TestVerifyCatchesEveryBreakage(t *testing.T) {
	cases := map[string]struct {
		breakIt func(f *Facts)
		want    string
	}{
		"oversell: an 11th order": {func(f *Facts) {
			f.Orders = append(f.Orders, OrderRow{ID: 2000, Buyer: "b9", Qty: 1, Status: "pending_payment"})
			f.Events = append(f.Events, EventRow{EventID: "ev-x", Type: "flashsale.order.created", OrderID: 2000})
			f.Ledger.Created[2000] = 1
		}, "no-oversell"},
		"oversell caught by the ledger": {func(f *Facts) {
			f.Orders[9].Status, f.Orders[9].CancelReason = "cancelled", "oversold"
			f.Orders = append(f.Orders, OrderRow{ID: 2000, Buyer: "b9", Qty: 1, Status: "pending_payment"})
			f.Events = append(f.Events, EventRow{EventID: "ev-x", Type: "flashsale.order.created", OrderID: 2000})
			f.Ledger.Created[2000] = 1
		}, "no-oversell"},
		"undersell: a unit left while demand exceeded supply": {func(f *Facts) {
			f.Orders, f.Events = f.Orders[:9], f.Events[:9]
			f.ClientOrders = f.ClientOrders[:9]
			delete(f.Ledger.Created, 1009)
			f.Redis.Stock, f.Redis.Reserved, f.Redis.Holds = 1, 9, 9
		}, "no-undersell"},
		"a buyer above the limit": {func(f *Facts) {
			for i := range f.Orders[:3] {
				f.Orders[i].Buyer = "greedy"
				f.ClientOrders[i].Buyer = "greedy"
			}
		}, "per-buyer-limit"},
		"two event ids for one order": {func(f *Facts) {
			f.Events = append(f.Events, EventRow{EventID: "ev-other", Type: "flashsale.order.created", OrderID: 1004})
		}, "one-created-event-per-order"},
		"a missing event": {func(f *Facts) {
			f.Events = append(f.Events[:5], f.Events[6:10]...)
		}, "one-created-event-per-order"},
		"an event for no order": {func(f *Facts) {
			f.Events = append(f.Events, EventRow{EventID: "ev-ghost", Type: "flashsale.order.created", OrderID: 9999})
		}, "one-created-event-per-order"},
		"events unreadable": {func(f *Facts) { f.EventsNote = "broker down" }, "one-created-event-per-order"},
		"redis lost a reservation": {func(f *Facts) {
			f.Redis.Reserved, f.Redis.Holds = 9, 9
		}, "redis-stock-balance"},
		"redis sold a unit twice": {func(f *Facts) {
			f.Redis.Stock, f.Redis.Reserved = 1, 9 // balanced, but 10 live orders hold units
		}, "redis-stock-balance"},
		"redis total differs from the sale": {func(f *Facts) {
			f.Redis.Total, f.Redis.Stock = 12, 2
		}, "redis-stock-balance"},
		"redis forgot the sale": {func(f *Facts) { f.Redis = RedisFacts{} }, "redis-stock-balance"},
		"outbox not drained":    {func(f *Facts) { f.Unpublished = 3 }, "outbox-drained"},
		"outbox unreadable":     {func(f *Facts) { f.OutboxNote = "connection refused" }, "outbox-drained"},
		"a missing ledger entry": {func(f *Facts) {
			delete(f.Ledger.Created, 1002)
		}, "one-ledger-entry-per-order"},
		"a ledger entry twice": {func(f *Facts) { f.Ledger.Created[1002] = 2 }, "one-ledger-entry-per-order"},
		"a ledger entry for no order": {func(f *Facts) {
			f.Ledger.Created[4242] = 1
		}, "one-ledger-entry-per-order"},
		"a 5xx left unresolved": {func(f *Facts) { f.Unresolved5xx = 1 }, "no-unretried-5xx"},
		"a 201 that is not in PostgreSQL": {func(f *Facts) {
			f.ClientOrders = append(f.ClientOrders, ClientOrder{Buyer: "b1", OrderID: 31337})
		}, "every-201-is-durable"},
		"a 201 of another buyer's order": {func(f *Facts) {
			f.ClientOrders[0].Buyer = "mallory"
		}, "every-201-is-durable"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := goodFacts()
			tc.breakIt(&f)
			cs := Verify(f)
			got := failed(cs)
			if Passed(cs) || len(got) == 0 || got[0] != tc.want {
				t.Fatalf("failed checks %v, want %s first", got, tc.want)
			}
		})
	}
}

func TestVerifySkipsWhatDoesNotApply(t *testing.T) {
	f := goodFacts()
	f.Ledger, f.LedgerNote = nil, "no ledger_entries table"
	f.DemandUnits = 5 // demand below supply: no sell-out expected
	f.Orders, f.Events, f.ClientOrders = f.Orders[:5], f.Events[:5], f.ClientOrders[:5]
	f.Redis = RedisFacts{Present: true, Stock: 5, Total: 10, Reserved: 5, Holds: 5}
	cs := Verify(f)
	if !Passed(cs) {
		t.Fatalf("failed %v", failed(cs))
	}
	skipped := map[string]bool{}
	for _, c := range cs {
		if c.Skipped {
			skipped[c.Name] = true
			if c.Name == "one-ledger-entry-per-order" && !strings.Contains(c.Detail, "no ledger_entries table") {
				t.Errorf("the skip does not say why: %s", c.Detail)
			}
		}
	}
	if !skipped["no-undersell"] || !skipped["one-ledger-entry-per-order"] || len(skipped) != 2 {
		t.Errorf("skipped %v, want no-undersell and the ledger", skipped)
	}
}

func TestUndersellAllowsARemainderSmallerThanARequest(t *testing.T) {
	f := goodFacts()
	// Stock 10, quantity 3, limit 3: three orders of 3 sold 9; the last
	// unit cannot be sold to a request of 3.
	f.Quantity, f.Limit = 3, 3
	f.Orders, f.Events, f.ClientOrders = f.Orders[:3], f.Events[:3], f.ClientOrders[:3]
	f.Ledger.Created = map[int64]int{1000: 1, 1001: 1, 1002: 1}
	for i := range f.Orders {
		f.Orders[i].Qty = 3
	}
	f.Redis = RedisFacts{Present: true, Stock: 1, Total: 10, Reserved: 9, Holds: 3}
	if cs := Verify(f); !Passed(cs) {
		t.Fatalf("failed %v", failed(cs))
	}
	f.Orders, f.Events, f.ClientOrders = f.Orders[:2], f.Events[:2], f.ClientOrders[:2]
	delete(f.Ledger.Created, 1002)
	f.Redis = RedisFacts{Present: true, Stock: 4, Total: 10, Reserved: 6, Holds: 2}
	if got := failed(Verify(f)); len(got) != 1 || got[0] != "no-undersell" {
		t.Fatalf("4 units left for requests of 3: failed %v, want no-undersell", got)
	}
}

func TestVerifyLeavesOutOtherDatabasesOrders(t *testing.T) {
	f := goodFacts()
	// Another database's order of the same sale id went through the
	// ledger on database 0; gather left its event out.
	f.Ledger.Created[777] = 1
	f.Foreign, f.ForeignEvents = map[int64]bool{777: true}, 1
	cs := Verify(f)
	if !Passed(cs) {
		t.Fatalf("failed %v", failed(cs))
	}
	for _, c := range cs {
		if c.Name == "one-created-event-per-order" && !strings.Contains(c.Detail, "1 events of other databases") {
			t.Errorf("the foreign event is not reported: %s", c.Detail)
		}
	}
}
