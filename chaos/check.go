package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Order is one order row of the sale, from PostgreSQL.
type Order struct {
	ID           int64
	User         string
	Key          string
	Qty          int
	Status       string
	CancelReason string
}

// live reports whether the order still holds its units.
func (o Order) live() bool { return o.Status != "cancelled" && o.Status != "expired" }

// Event is one flashsale.order.created message of the sale on Kafka.
type Event struct {
	EventID string
	OrderID int64
}

// Facts is everything the checker judges, gathered after recovery.
type Facts struct {
	Stock         int
	Orders        []Order
	Events        []Event // created events, redeliveries included
	EventsRead    bool    // false: the topic could not be read
	Remaining     int     // units the API says are left, after settling
	Settled       bool    // live units + remaining reached stock in time
	Unpublished   int     // outbox rows the relay had not published; -1: unreadable
	Buyers        []Buyer
	Windows       []Window
	Recovery      time.Duration // fault over → every /readyz 200
	Recovered     bool
	RecoveryBound time.Duration
	Ledger        map[int64]int // order id → created ledger entries; nil: not checked
	Early         early         // the balance soon after the fault; Within 0: not checked
}

// early is whether live units plus the remaining stock made the stock
// within Within of the fault's end, and the gap last seen if not.
type early struct {
	Within   time.Duration
	Balanced bool
	Gap      int
}

// Breach is one violated invariant, with the ids that show it.
type Breach struct {
	Invariant string
	Detail    string
	IDs       []string
}

// Result is the figures of one scenario and its breaches.
type Result struct {
	Requests, Created, Orders, Events  int
	Redelivered                        int // copies of one event id: at-least-once, allowed
	LiveUnits, Remaining, Gap          int // Gap: stock − live units − remaining
	Oversold, Lost                     int
	DupOrders, DupEvents               int
	MissingEvents, PhantomEvents       int
	Undersold, Undefined, Unresolved   int
	DeniedOwned, ReplayMismatch        int
	LedgerMissing, Unpublished, Excuse int
	Answers5xx, Timeouts               int // every 5xx answer, every attempt that timed out (figures, not breaches)
	Recovery                           time.Duration
	Breaches                           []Breach
}

// OK reports whether every invariant held.
func (r Result) OK() bool { return len(r.Breaches) == 0 }

func (r *Result) breach(inv string, ids []string, format string, a ...any) {
	sort.Strings(ids)
	r.Breaches = append(r.Breaches, Breach{Invariant: inv, Detail: fmt.Sprintf(format, a...), IDs: ids})
}

// Check judges the facts against every invariant of the suite.
func Check(f Facts) Result {
	r := Result{Orders: len(f.Orders), Remaining: f.Remaining, Unpublished: f.Unpublished, Recovery: f.Recovery}
	byID := make(map[int64]Order, len(f.Orders))
	for _, o := range f.Orders {
		byID[o.ID] = o
		if o.live() {
			r.LiveUnits += o.Qty
		}
	}
	checkStock(&r, f)
	checkClient(&r, f, byID)
	checkOrders(&r, f)
	checkEvents(&r, f, byID)
	checkRecovery(&r, f)
	return r
}

// checkStock: no unit beyond stock, none cancelled as oversold, and every
// unit either in a live order or still for sale once things settled.
func checkStock(r *Result, f Facts) {
	if r.LiveUnits > f.Stock {
		r.breach("oversell", nil, "%d units in live orders for a stock of %d", r.LiveUnits, f.Stock)
	}
	var oversold []string
	for _, o := range f.Orders {
		if o.CancelReason == "oversold" {
			oversold = append(oversold, fmt.Sprint(o.ID))
		}
	}
	if r.Oversold = len(oversold); r.Oversold > 0 {
		r.breach("no-201-revoked", oversold, "%d orders were cancelled as oversold after their 201", r.Oversold)
	}
	if e := f.Early; e.Within > 0 && !e.Balanced {
		r.breach("held-after-fault", nil, "%d units were neither in a live order nor for sale %s after the fault was undone (the reconciler's grace is %s)",
			e.Gap, e.Within, ReservationGrace)
	}
	r.Gap = f.Stock - r.LiveUnits - f.Remaining
	if !f.Settled || r.Gap != 0 {
		r.breach("balance", nil, "units in live orders %d + remaining %d = %d, stock %d (settled in time: %t)",
			r.LiveUnits, f.Remaining, r.LiveUnits+f.Remaining, f.Stock, f.Settled)
	}
	refused := 0
	for _, b := range f.Buyers {
		if l := b.Last(); b.Resolved() && l.Status == 409 && l.Problem == "sold-out" {
			refused++
		}
	}
	// Unsold units are counted from PostgreSQL, the truth: when the balance
	// is broken the API's remaining is not.
	if unsold := f.Stock - r.LiveUnits; refused > 0 && unsold > 0 {
		r.Undersold = unsold
		r.breach("undersell", nil, "%d buyers were finally refused sold-out while %d units are in no live order (the API shows %d left)",
			refused, unsold, f.Remaining)
	}
}

// checkClient compares the client's record with the orders: every 201 is
// an order with that id, no buyer is refused an order it has, every answer
// is well formed, every buyer got a definite answer.
func checkClient(r *Result, f Facts, byID map[int64]Order) {
	owned := map[string]int64{}
	for _, o := range f.Orders {
		owned[o.User+"\x00"+o.Key] = o.ID
	}
	var lost, mismatch, denied, undefined, unresolved []string
	for _, b := range f.Buyers {
		r.Requests += len(b.Answers)
		seen := map[int64]bool{}
		for _, a := range b.Answers {
			if a.Status == 201 {
				seen[a.OrderID] = true
			}
			if a.Status >= 500 {
				r.Answers5xx++
			}
			if a.TimedOut {
				r.Timeouts++
			}
			if !WellFormed(a) {
				if excused(a, f.Windows) {
					r.Excuse++
				} else {
					undefined = append(undefined, fmt.Sprintf("%s:%d:%s", b.User, a.Status, answerError(a)))
				}
			}
		}
		if len(seen) > 0 {
			r.Created++
		}
		if len(seen) > 1 {
			mismatch = append(mismatch, b.User)
		}
		for id := range seen {
			if o, ok := byID[id]; !ok || o.User != b.User {
				lost = append(lost, fmt.Sprint(id))
			}
		}
		if !b.Resolved() {
			unresolved = append(unresolved, b.User)
		} else if id, ok := owned[b.User+"\x00"+b.Key]; ok && b.Last().Status != 201 {
			denied = append(denied, fmt.Sprintf("%s:order %d:told %d %s", b.User, id, b.Last().Status, b.Last().Problem))
		}
	}
	r.Lost, r.ReplayMismatch, r.DeniedOwned = len(lost), len(mismatch), len(denied)
	r.Undefined, r.Unresolved = len(undefined), len(unresolved)
	if r.Lost > 0 {
		r.breach("lost-201", lost, "%d order ids answered 201 have no order row of that buyer", r.Lost)
	}
	if r.ReplayMismatch > 0 {
		r.breach("replay-mismatch", mismatch, "%d buyers got 201s with different order ids for one key", r.ReplayMismatch)
	}
	if r.DeniedOwned > 0 {
		r.breach("denied-owned", denied, "%d buyers were finally refused although their key has an order", r.DeniedOwned)
	}
	if r.Undefined > 0 {
		r.breach("undefined-answer", undefined, "%d answers were neither a definite status nor problem+json within the client timeout", r.Undefined)
	}
	if r.Unresolved > 0 {
		r.breach("unresolved", unresolved, "%d buyers got no definite answer within their retry budget", r.Unresolved)
	}
}

func answerError(a Answer) string {
	switch {
	case a.TimedOut:
		return "timeout"
	case a.Err != "":
		return a.Err
	}
	return "not problem+json"
}

// checkOrders: at most one order per (buyer, key).
func checkOrders(r *Result, f Facts) {
	n := map[string][]string{}
	for _, o := range f.Orders {
		k := o.User + "/" + o.Key
		n[k] = append(n[k], fmt.Sprint(o.ID))
	}
	var dups []string
	for k, ids := range n {
		if len(ids) > 1 {
			dups = append(dups, k+"="+strings.Join(ids, "+"))
		}
	}
	if r.DupOrders = len(dups); r.DupOrders > 0 {
		r.breach("one-order-per-key", dups, "%d (buyer, key) pairs have several orders", r.DupOrders)
	}
}

// checkEvents: exactly one created event id per order, none for a missing
// order, the outbox drained, and (when read) one ledger entry per order.
func checkEvents(r *Result, f Facts, byID map[int64]Order) {
	if r.Unpublished != 0 {
		r.breach("outbox-drained", nil, "%d outbox rows still unpublished (-1: unreadable)", r.Unpublished)
	}
	if !f.EventsRead {
		r.breach("events-read", nil, "the topic could not be read to the end")
		return
	}
	ids := map[int64]map[string]int{}
	for _, e := range f.Events {
		if ids[e.OrderID] == nil {
			ids[e.OrderID] = map[string]int{}
		}
		ids[e.OrderID][e.EventID]++
	}
	r.Events = len(ids)
	var missing, multi, phantom, noLedger []string
	for _, o := range f.Orders {
		if len(ids[o.ID]) == 0 {
			missing = append(missing, fmt.Sprint(o.ID))
		}
		if f.Ledger != nil && f.Ledger[o.ID] != 1 {
			noLedger = append(noLedger, fmt.Sprintf("%d:%d", o.ID, f.Ledger[o.ID]))
		}
	}
	for id, evs := range ids {
		if len(evs) > 1 {
			multi = append(multi, fmt.Sprint(id))
		}
		if _, ok := byID[id]; !ok {
			phantom = append(phantom, fmt.Sprint(id))
		}
		for _, n := range evs {
			r.Redelivered += n - 1
		}
	}
	r.MissingEvents, r.DupEvents, r.PhantomEvents, r.LedgerMissing = len(missing), len(multi), len(phantom), len(noLedger)
	if r.MissingEvents+r.DupEvents+r.PhantomEvents > 0 {
		r.breach("one-created-event", append(append(missing, multi...), phantom...),
			"orders without a created event %d, with several event ids %d, events without an order %d",
			r.MissingEvents, r.DupEvents, r.PhantomEvents)
	}
	if r.LedgerMissing > 0 {
		r.breach("ledger-once", noLedger, "%d orders have not exactly one created ledger entry (id:entries)", r.LedgerMissing)
	}
}

// checkRecovery: every instance ready again within the bound.
func checkRecovery(r *Result, f Facts) {
	if !f.Recovered || f.Recovery > f.RecoveryBound {
		r.breach("readyz", nil, "ready after %.1fs (recovered: %t, bound %s)", f.Recovery.Seconds(), f.Recovered, f.RecoveryBound)
	}
}
