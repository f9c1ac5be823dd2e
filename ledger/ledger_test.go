package ledger_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/ledger"
	"flashsale/order"
)

// cancellations is the test's canceller: it records what it was asked to
// cancel and fails while failing is set.
type cancellations struct {
	mu      sync.Mutex
	calls   [][]int64
	failing bool
}

func (c *cancellations) CancelOversold(_ context.Context, ids []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, slices.Clone(ids))
	if c.failing {
		return errors.New("order service unavailable")
	}
	return nil
}

func (c *cancellations) all() [][]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

type ledgerFixture struct {
	db     *pgxpool.Pool
	sales  *invpg.SaleStore
	ledger *ledger.Ledger
	cancel *cancellations
}

func newLedgerFixture(t *testing.T) ledgerFixture {
	t.Helper()
	cfg := testenv.Config(t, 2)
	db := testenv.Pools(t, cfg)[0]
	c := &cancellations{}
	return ledgerFixture{db: db, sales: invpg.NewSaleStore(db), ledger: ledger.New(db, c, testenv.Logger(t)), cancel: c}
}

func (f ledgerFixture) sale(t *testing.T, stock int) inventory.SaleID {
	t.Helper()
	now := time.Now().UTC()
	s, err := f.sales.Create(context.Background(), inventory.NewSale{SKU: "S", Title: "T", PriceCents: 100, Currency: "EUR",
		Stock: stock, PerUserLimit: 5, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// apply runs ev through the inbox as the inventory consumer does: the
// effect, then AfterCommit.
func (f ledgerFixture) apply(t *testing.T, ev inbox.Event) (bool, error) {
	t.Helper()
	ctx := context.Background()
	applied, err := inbox.Apply(ctx, f.db, "inventory", ev, f.ledger)
	if err != nil {
		return applied, err
	}
	return applied, f.ledger.AfterCommit(ctx, ev)
}

func (f ledgerFixture) mustApply(t *testing.T, ev inbox.Event) bool {
	t.Helper()
	applied, err := f.apply(t, ev)
	if err != nil {
		t.Fatalf("%s %s: %v", ev.Type, ev.Subject, err)
	}
	return applied
}

// count runs a query of one count.
func (f ledgerFixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f ledgerFixture) position(t *testing.T, sale inventory.SaleID) ledger.Position {
	t.Helper()
	p, err := f.ledger.Position(context.Background(), sale)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLedgerCountsEveryTransitionOnce(t *testing.T) {
	f := newLedgerFixture(t)
	sale := f.sale(t, 100)
	var events []inbox.Event
	orders := map[int64]int{}
	for i := range 10 {
		id := testenv.NextOrderID()
		orders[id] = i%3 + 1
		events = append(events, testenv.OrderEvent("created", id, sale, orders[id], ""))
		switch i % 4 {
		case 1:
			events = append(events, testenv.OrderEvent("paid", id, sale, orders[id], ""))
		case 2:
			events = append(events, testenv.OrderEvent("cancelled", id, sale, orders[id], "buyer"))
		case 3:
			events = append(events, testenv.OrderEvent("expired", id, sale, orders[id], ""))
		}
	}
	for _, ev := range events {
		if !f.mustApply(t, ev) {
			t.Fatalf("%s was not applied the first time", ev.ID)
		}
	}
	want := ledger.Position{Stock: 100}
	for i, id := range slices.Sorted(maps.Keys(orders)) {
		want.Sold += int64(orders[id])
		if i%4 == 2 || i%4 == 3 {
			want.Released += int64(orders[id])
		}
	}
	check := func(when string) {
		t.Helper()
		if got := f.position(t, sale); got != want {
			t.Fatalf("%s: position %+v, want %+v", when, got, want)
		}
		var entries, created, sum int64
		err := f.db.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE kind = 'created'), coalesce(sum(delta), 0)
			FROM ledger_entries WHERE sale_id = $1`, sale.Int64()).Scan(&entries, &created, &sum)
		if err != nil {
			t.Fatal(err)
		}
		if entries != int64(len(events)) || created != int64(len(orders)) || sum != want.Net() {
			t.Fatalf("%s: %d entries (%d created), sum(delta) %d; want %d (%d), %d", when, entries, created, sum, len(events), len(orders), want.Net())
		}
	}
	check("first delivery")

	// Redelivery: the ledger finds each event's entry and skips it; it
	// keeps no inbox rows, its entries are its record.
	for _, ev := range events {
		if f.mustApply(t, ev) {
			t.Fatalf("redelivered %s was applied again", ev.ID)
		}
	}
	check("redelivery")
	if n := f.count(t, `SELECT count(*) FROM inbox`); n != 0 {
		t.Errorf("the ledger wrote %d inbox rows", n)
	}

	// The same transitions published again under new event ids change
	// nothing either: an order is created, paid and released at most once.
	// Their ids are new, so they count as applied, with no entry.
	var republished [][16]byte
	for _, ev := range events {
		ev.ID = testenv.EventID()
		if !f.mustApply(t, ev) {
			t.Errorf("republished %s under a new id counted as a redelivery", ev.Type)
		}
		republished = append(republished, inbox.IDBytes(ev.ID))
	}
	if n := f.count(t, `SELECT count(*) FROM ledger_entries WHERE event_id = ANY ($1)`, republished); n != 0 {
		t.Errorf("%d entries for republished transitions, want none", n)
	}
	check("republished transitions")
	if calls := f.cancel.all(); len(calls) != 0 {
		t.Errorf("canceller called within stock: %v", calls)
	}
}

// TestLedgerCancelsTheNewestExcessOrders oversells a sale the way a Redis
// failover could, and checks that the newest orders covering the excess
// are named, and named again until their cancellations arrive.
func TestLedgerCancelsTheNewestExcessOrders(t *testing.T) {
	f := newLedgerFixture(t)
	sale := f.sale(t, 2)
	a, b, c := testenv.NextOrderID(), testenv.NextOrderID(), testenv.NextOrderID()
	// Applied out of order: the newest order arrives first.
	for _, id := range []int64{c, a} {
		f.mustApply(t, testenv.OrderEvent("created", id, sale, 1, ""))
	}
	if calls := f.cancel.all(); len(calls) != 0 {
		t.Fatalf("canceller called within stock: %v", calls)
	}
	f.mustApply(t, testenv.OrderEvent("created", b, sale, 1, ""))
	if calls := f.cancel.all(); len(calls) != 1 || !slices.Equal(calls[0], []int64{c}) {
		t.Fatalf("canceller calls %v, want [[%d]] (the newest order)", calls, c)
	}
	if p := f.position(t, sale); p.Net() != 3 || p.Excess() != 1 || p.Remaining() != -1 {
		t.Fatalf("position %+v", p)
	}
	// The order service cancels c and emits its event: the sale is whole.
	f.mustApply(t, testenv.OrderEvent("cancelled", c, sale, 1, order.ReasonOversold))
	if p := f.position(t, sale); p.Net() != 2 || p.Excess() != 0 {
		t.Fatalf("after the cancellation: %+v", p)
	}
	var reason string
	if err := f.db.QueryRow(context.Background(), `SELECT reason FROM ledger_entries WHERE order_id = $1 AND kind = 'cancelled'`, c).Scan(&reason); err != nil || reason != "oversold" {
		t.Fatalf("reason %q, %v", reason, err)
	}
	if err := f.ledger.ResolveOversold(context.Background(), sale); err != nil || len(f.cancel.all()) != 1 {
		t.Fatalf("resolve within stock: %v, calls %v", err, f.cancel.all())
	}
}

func TestLedgerExcessCoversQuantitiesNewestFirst(t *testing.T) {
	f := newLedgerFixture(t)
	sale := f.sale(t, 5)
	ids := []int64{testenv.NextOrderID(), testenv.NextOrderID(), testenv.NextOrderID(), testenv.NextOrderID()}
	qty := []int{2, 2, 3, 1} // net 8, excess 3: the newest (1) and the one before (3) cover it
	for i, id := range ids {
		f.mustApply(t, testenv.OrderEvent("created", id, sale, qty[i], ""))
	}
	calls := f.cancel.all()
	if len(calls) == 0 || !slices.Equal(calls[len(calls)-1], []int64{ids[3], ids[2]}) {
		t.Fatalf("canceller calls %v, want the last [%d %d]", calls, ids[3], ids[2])
	}
	// A buyer cancels an older order before the ledger's cancellations
	// land: the excess shrinks to 1, which the newest order covers.
	f.mustApply(t, testenv.OrderEvent("cancelled", ids[0], sale, 2, "buyer"))
	got, err := f.ledger.Oversold(context.Background(), sale)
	if err != nil || !slices.Equal(got, []int64{ids[3]}) {
		t.Fatalf("oversold %v, %v; want [%d]", got, err, ids[3])
	}
}

// TestLedgerRetriesTheCancellationAfterCommit fails the canceller: the
// effect stays committed, the attempt fails, and the redelivered event,
// skipped by the inbox, still reaches the canceller.
func TestLedgerRetriesTheCancellationAfterCommit(t *testing.T) {
	f := newLedgerFixture(t)
	sale := f.sale(t, 1)
	f.mustApply(t, testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, ""))
	f.cancel.failing = true
	newest := testenv.NextOrderID()
	ev := testenv.OrderEvent("created", newest, sale, 1, "")
	if _, err := f.apply(t, ev); err == nil {
		t.Fatal("a failed cancellation was not reported")
	}
	f.cancel.failing = false
	applied, err := f.apply(t, ev)
	if err != nil || applied {
		t.Fatalf("redelivery: applied %v, err %v", applied, err)
	}
	calls := f.cancel.all()
	if len(calls) != 2 || !slices.Equal(calls[1], []int64{newest}) {
		t.Fatalf("calls %v", calls)
	}
	if p := f.position(t, sale); p.Sold != 2 {
		t.Fatalf("position %+v", p)
	}
}

func TestLedgerRejectsBadEventsAndRollsBack(t *testing.T) {
	f := newLedgerFixture(t)
	sale := f.sale(t, 10)
	missing, _ := inventory.NewSaleID(sale.Int64() + 1000)
	bad := []inbox.Event{
		testenv.OrderEvent("created", testenv.NextOrderID(), missing, 1, ""), // no such sale
		testenv.OrderEvent("created", testenv.NextOrderID(), sale, 0, ""),    // no units
		{ID: testenv.EventID(), Source: "/t", Type: "flashsale.order.created", Subject: "1", Data: []byte(`{"order_id":"x"}`)},
	}
	other := testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, "")
	other.Subject = "42" // not its order
	bad = append(bad, other)
	for _, ev := range bad {
		if _, err := f.apply(t, ev); err == nil {
			t.Errorf("%s accepted", ev.Data)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM ledger_entries`); n != 0 {
		t.Fatalf("a failed event left %d entries", n)
	}
	// Types the ledger does not count change nothing, and are acknowledged.
	if !f.mustApply(t, inbox.Event{ID: testenv.EventID(), Source: "/t", Type: "flashsale.sale.created", Data: []byte(`{}`)}) {
		t.Fatal("unknown type not acknowledged")
	}
}

// TestLedgerAfterCommitBatchResolvesEachSaleOnce commits one batch of
// created orders, interleaved, that oversells two sales and stays within a
// third: AfterCommitBatch asks the canceller once per oversold sale, for
// its newest excess orders, where AfterCommit per event would ask once per
// order of an oversold sale.
func TestLedgerAfterCommitBatchResolvesEachSaleOnce(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	a, b, within := f.sale(t, 2), f.sale(t, 1), f.sale(t, 10)
	orders := map[inventory.SaleID][]int64{}
	var evs []inbox.Event
	for range 4 {
		for _, sale := range []inventory.SaleID{a, b, within} {
			id := testenv.NextOrderID()
			orders[sale] = append(orders[sale], id)
			evs = append(evs, testenv.OrderEvent("created", id, sale, 1, ""))
		}
	}
	evs = append(evs, testenv.OrderEvent("paid", orders[a][0], a, 1, ""))
	applied, err := inbox.ApplyBatch(ctx, f.db, "inventory", evs, f.ledger)
	if err != nil || slices.Contains(applied, false) {
		t.Fatalf("batch: applied %v, err %v", applied, err)
	}
	if calls := f.cancel.all(); len(calls) != 0 {
		t.Fatalf("canceller called before the commit: %v", calls)
	}
	if err := f.ledger.AfterCommitBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{orders[a][3], orders[a][2]}, {orders[b][3], orders[b][2], orders[b][1]}}
	if calls := f.cancel.all(); !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("canceller calls %v, want %v: once per oversold sale", calls, want)
	}
	// Redelivered, the batch asks again, once per sale, until the
	// cancellations reach the ledger.
	if err := f.ledger.AfterCommitBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if calls := f.cancel.all(); len(calls) != 4 {
		t.Fatalf("%d canceller calls after the redelivery, want 4", len(calls))
	}
	f.cancel.failing = true
	if err := f.ledger.AfterCommitBatch(ctx, evs); err == nil {
		t.Fatal("a failed cancellation was not reported")
	}
}
