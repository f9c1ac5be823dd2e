package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)

func created(target int, id int64) Answer {
	return Answer{Target: target, Start: t0, Latency: 10 * time.Millisecond, Status: 201, OrderID: id}
}

func refused(slug string, retryAfter time.Duration) Answer {
	return Answer{Start: t0, Latency: 5 * time.Millisecond, Status: 409, Problem: slug, IsProblem: true, RetryAfter: retryAfter}
}

// cleanFacts is a sale of 3 units to 4 buyers where everything held:
// buyer b3 was refused at the end, one event was delivered twice.
func cleanFacts() Facts {
	f := Facts{Stock: 3, EventsRead: true, Settled: true, Recovered: true,
		Recovery: time.Second, RecoveryBound: 30 * time.Second, Ledger: map[int64]int{}}
	for i := range 3 {
		id := int64(100 + i)
		user := fmt.Sprintf("b%d", i)
		f.Orders = append(f.Orders, Order{ID: id, User: user, Key: "k" + user, Qty: 1, Status: "pending_payment"})
		f.Events = append(f.Events, Event{EventID: fmt.Sprintf("e%d", i), OrderID: id})
		f.Ledger[id] = 1
		f.Buyers = append(f.Buyers, Buyer{User: user, Key: "k" + user, Answers: []Answer{
			{Start: t0, Latency: 2 * time.Second, TimedOut: true, Err: "timeout"},
			created(0, id),
		}})
	}
	f.Events = append(f.Events, Event{EventID: "e0", OrderID: 100})
	f.Buyers = append(f.Buyers, Buyer{User: "b3", Key: "kb3", Answers: []Answer{
		{Status: 503, IsProblem: true, Problem: "overloaded", Start: t0},
		refused("sold-out", time.Second), refused("sold-out", 0)}})
	// The timeouts above fall in a window the suite made.
	f.Windows = []Window{{Target: 0, From: t0.Add(time.Second), To: t0.Add(3 * time.Second)}}
	return f
}

func breaches(r Result) []string {
	var out []string
	for _, b := range r.Breaches {
		out = append(out, b.Invariant)
	}
	return out
}

func TestCheckPassesCleanSale(t *testing.T) {
	r := Check(cleanFacts())
	if !r.OK() {
		t.Fatalf("breaches on a clean sale: %+v", r.Breaches)
	}
	want := Result{Requests: 9, Created: 3, Orders: 3, Events: 3, Redelivered: 1, LiveUnits: 3, Excuse: 3, Recovery: time.Second}
	if r.Requests != want.Requests || r.Created != want.Created || r.Orders != want.Orders || r.Events != want.Events ||
		r.Redelivered != want.Redelivered || r.LiveUnits != want.LiveUnits || r.Excuse != want.Excuse ||
		r.Answers5xx != 1 || r.Timeouts != 3 {
		t.Fatalf("figures %+v, want %+v", r, want)
	}
	if line := Line("x", r); !strings.HasSuffix(line, " ok") {
		t.Fatalf("line %q does not end in ok", line)
	}
}

// Each case breaks one invariant of a clean sale; the checker must flag
// exactly that one, with the ids that show it.
func TestCheckFlagsEachBreach(t *testing.T) {
	cases := []struct {
		name, want string
		id         string
		figure     func(Result) int
		breakIt    func(*Facts)
	}{
		{"unit beyond stock", "oversell", "", func(r Result) int { return r.LiveUnits }, func(f *Facts) {
			f.Stock = 2
			f.Remaining = -1 // keep the balance, so that only oversell fires
		}},
		{"201 revoked as oversold", "no-201-revoked", "101", func(r Result) int { return r.Oversold }, func(f *Facts) {
			f.Orders[1].Status, f.Orders[1].CancelReason = "cancelled", "oversold"
			f.Remaining = 1
			f.Buyers[3].Answers = f.Buyers[3].Answers[:2] // b3 still retrying: no undersell
			f.Buyers[3].Answers = append(f.Buyers[3].Answers, refused("purchase-limit-reached", 0))
		}},
		{"units neither sold nor for sale", "balance", "", func(r Result) int { return r.Gap }, func(f *Facts) {
			f.Orders[2].Status = "expired"
			f.Buyers[3].Answers[2] = refused("purchase-limit-reached", 0)
		}},
		{"more for sale than unsold (Redis lost writes)", "balance", "", func(r Result) int { return -r.Gap }, func(f *Facts) {
			f.Remaining = 2 // every unit is in a live order: refusing b3 was right
		}},
		{"not settled in time", "balance", "", func(Result) int { return 1 }, func(f *Facts) { f.Settled = false }},
		{"units held soon after the fault", "held-after-fault", "", func(Result) int { return 1 }, func(f *Facts) {
			f.Early = early{Within: 4 * time.Second, Gap: 2} // balanced later, by the reconciler
		}},
		{"refused while units left", "undersell", "", func(r Result) int { return r.Undersold }, func(f *Facts) {
			f.Orders = f.Orders[:2]
			f.Events = f.Events[:2]
			f.Buyers[2].Answers = []Answer{refused("sold-out", 0)}
			f.Remaining = 1
		}},
		{"201 without its order", "lost-201", "102", func(r Result) int { return r.Lost }, func(f *Facts) {
			f.Orders[2].ID = 999
			f.Events[2].OrderID = 999
			f.Ledger[999] = 1
		}},
		{"201 with another buyer's order", "lost-201", "101", func(r Result) int { return r.Lost }, func(f *Facts) {
			f.Orders[1].User = "b9"
			f.Orders[1].Key = "kb1"
		}},
		{"refused although owning an order", "denied-owned", "b2:order 102:told 409 sold-out", func(r Result) int { return r.DeniedOwned },
			func(f *Facts) { f.Buyers[2].Answers = append(f.Buyers[2].Answers, refused("sold-out", 0)) }},
		{"timeout outside a fault window", "undefined-answer", "b0:0:timeout", func(r Result) int { return r.Undefined },
			func(f *Facts) { f.Windows = nil }},
		{"5xx without problem+json", "undefined-answer", "b3:502:not problem+json", func(r Result) int { return r.Undefined },
			func(f *Facts) { f.Buyers[3].Answers[0] = Answer{Status: 502, Start: t0} }},
		{"no definite answer", "unresolved", "b3", func(r Result) int { return r.Unresolved }, func(f *Facts) {
			f.Buyers[3].Answers = f.Buyers[3].Answers[:2]
		}},
		{"two orders for one key", "one-order-per-key", "b1/kb1=101+104", func(r Result) int { return r.DupOrders }, func(f *Facts) {
			f.Orders = append(f.Orders, Order{ID: 104, User: "b1", Key: "kb1", Qty: 1, Status: "cancelled", CancelReason: "buyer"})
			f.Events = append(f.Events, Event{EventID: "e4", OrderID: 104})
			f.Ledger[104] = 1
		}},
		{"order without event", "one-created-event", "102", func(r Result) int { return r.MissingEvents }, func(f *Facts) {
			f.Events = f.Events[:2]
		}},
		{"two event ids for one order", "one-created-event", "101", func(r Result) int { return r.DupEvents }, func(f *Facts) {
			f.Events = append(f.Events, Event{EventID: "e9", OrderID: 101})
		}},
		{"event without order", "one-created-event", "555", func(r Result) int { return r.PhantomEvents }, func(f *Facts) {
			f.Events = append(f.Events, Event{EventID: "e5", OrderID: 555})
		}},
		{"topic unread", "events-read", "", func(Result) int { return 1 }, func(f *Facts) { f.EventsRead = false }},
		{"outbox not drained", "outbox-drained", "", func(r Result) int { return r.Unpublished }, func(f *Facts) { f.Unpublished = 4 }},
		{"ledger entry missing", "ledger-once", "100:0", func(r Result) int { return r.LedgerMissing }, func(f *Facts) { delete(f.Ledger, 100) }},
		{"never ready again", "readyz", "", func(Result) int { return 1 }, func(f *Facts) { f.Recovered = false }},
		{"ready too late", "readyz", "", func(Result) int { return 1 }, func(f *Facts) { f.Recovery = time.Minute }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := cleanFacts()
			c.breakIt(&f)
			r := Check(f)
			if got := breaches(r); !slices.Equal(got, []string{c.want}) {
				t.Fatalf("breaches %v, want [%s]: %+v", got, c.want, r.Breaches)
			}
			if c.id != "" && !slices.Contains(r.Breaches[0].IDs, c.id) {
				t.Fatalf("breach ids %v lack %q", r.Breaches[0].IDs, c.id)
			}
			if c.figure(r) <= 0 {
				t.Fatalf("the figure of %s is not positive: %+v", c.want, r)
			}
			if line := Line("x", r); !strings.Contains(line, "FAIL("+c.want+")") {
				t.Fatalf("line %q does not name %s", line, c.want)
			}
		})
	}
}

// A buyer with two order ids for one key: one of them is not its order
// (or its key has two orders), so lost-201 fires along with the mismatch.
func TestCheckFlagsReplayMismatch(t *testing.T) {
	f := cleanFacts()
	f.Buyers[1].Answers = append([]Answer{created(0, 100)}, f.Buyers[1].Answers...)
	r := Check(f)
	if got := breaches(r); !slices.Equal(got, []string{"lost-201", "replay-mismatch"}) || r.ReplayMismatch != 1 {
		t.Fatalf("breaches %v, mismatches %d", got, r.ReplayMismatch)
	}
	if !slices.Equal(r.Breaches[1].IDs, []string{"b1"}) || !slices.Equal(r.Breaches[0].IDs, []string{"100"}) {
		t.Fatalf("ids %v", r.Breaches)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		a    Answer
		want Verdict
	}{
		{Answer{Status: 201}, Created},
		{Answer{Status: 0, Err: "refused"}, Retry},
		{Answer{Status: 503, IsProblem: true}, Retry},
		{Answer{Status: 429, RetryAfter: time.Second}, Retry},
		{refused("idempotency-key-in-use", 0), Retry},
		{refused("sold-out", time.Second), Retry},
		{refused("sold-out", 0), Final},
		{refused("purchase-limit-reached", 0), Final},
		{refused("sale-not-active", 0), Final},
		{Answer{Status: 422, IsProblem: true, Problem: "idempotency-key-reused"}, Final},
	}
	for _, c := range cases {
		if got := Classify(c.a); got != c.want {
			t.Errorf("Classify(%+v) = %d, want %d", c.a, got, c.want)
		}
	}
	if problemSlug("https://flashsale.example/problems/sold-out") != "sold-out" {
		t.Fatal("problemSlug")
	}
}
