package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/ledger"
	"flashsale/order"
)

// transitions is, for three sales, orders created, paid, cancelled and
// expired, interleaved across sales, with every way of repeating a
// transition: under another event id (again after its release, and right
// behind the first), a second release of another kind, and an event id
// delivered twice. An event of another type is mixed in, twice.
func transitions(sales []inventory.SaleID) []inbox.Event {
	var evs []inbox.Event
	for i := range 18 {
		id, sale, q := testenv.NextOrderID(), sales[i%3], i%3+1
		created := testenv.OrderEvent("created", id, sale, q, "")
		evs = append(evs, created)
		switch i % 6 {
		case 1:
			evs = append(evs, testenv.OrderEvent("paid", id, sale, q, ""), testenv.OrderEvent("paid", id, sale, q, ""))
		case 2:
			evs = append(evs, testenv.OrderEvent("cancelled", id, sale, q, "buyer"), testenv.OrderEvent("expired", id, sale, q, ""))
		case 3:
			evs = append(evs, testenv.OrderEvent("expired", id, sale, q, ""), testenv.OrderEvent("created", id, sale, q+1, ""))
		case 4:
			evs = append(evs, testenv.OrderEvent("created", id, sale, q+1, ""), created)
		case 5:
			evs = append(evs, testenv.OrderEvent("paid", id, sale, q, ""), testenv.OrderEvent("cancelled", id, sale, q, order.ReasonOversold))
		}
		if i == 7 { // twice: only the first copy counts as applied
			other := inbox.Event{ID: testenv.EventID(), Source: "/t", Type: "flashsale.sale.created", Data: []byte(`{}`)}
			evs = append(evs, other, other)
		}
	}
	return evs
}

// ledgerRows is the ledger as rows of text, sale by sale, for comparing
// two databases.
func (f ledgerFixture) ledgerRows(t *testing.T) []string {
	t.Helper()
	rows, _ := f.db.Query(context.Background(), `
		SELECT format('entry %s sale %s order %s %s quantity %s delta %s reason %s', event_id, sale_id, order_id, kind, quantity, delta, reason)
		FROM ledger_entries
		UNION ALL
		SELECT format('sale %s sold %s released %s', sale_id, sold, released) FROM stock_ledger
		ORDER BY 1`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestLedgerBatchMatchesOneByOne applies the same events to two fresh
// databases, one event per transaction and in one batch: the entries and the sales' counters are the same.
func TestLedgerBatchMatchesOneByOne(t *testing.T) {
	one, batch := newLedgerFixture(t), newLedgerFixture(t)
	var sales []inventory.SaleID
	for range 3 {
		s := one.sale(t, 1000)
		if other := batch.sale(t, 1000); other != s {
			t.Fatalf("fresh databases numbered a sale %s and %s", s, other)
		}
		sales = append(sales, s)
	}
	evs := transitions(sales)
	for _, ev := range evs {
		one.mustApply(t, ev)
	}
	applied, err := inbox.ApplyBatch(context.Background(), batch.db, "inventory", evs, batch.ledger)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	if n, distinct := count(applied, true), len(slices.Compact(slices.Sorted(slices.Values(ids)))); n != distinct {
		t.Fatalf("%d of %d events applied, want every distinct id, %d", n, len(evs), distinct)
	}
	want, got := one.ledgerRows(t), batch.ledgerRows(t)
	if len(want) != 33+3 {
		t.Fatalf("one by one, the ledger holds %d rows, want 33 entries and 3 sales: %q", len(want), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("batched ledger differs from one by one:\ngot  %q\nwant %q", got, want)
	}
}

// TestLedgerBatchCountsARepeatedTransitionOnce gives HandleNew an order
// created twice (with different quantities), paid twice and released
// twice under different event ids, an id twice, and the creation of an
// order recorded by an earlier batch: the first of each in message order
// counts, each other transition is logged as ignored and counts as
// applied (its id is new), and the id's second copy is a redelivery.
func TestLedgerBatchCountsARepeatedTransitionOnce(t *testing.T) {
	f := newLedgerFixture(t)
	var logs testenv.SyncBuffer
	ledger := ledger.New(f.db, f.cancel, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	sale, x, y := f.sale(t, 100), testenv.NextOrderID(), testenv.NextOrderID()
	f.mustApply(t, testenv.OrderEvent("created", y, sale, 1, ""))
	first := testenv.OrderEvent("created", x, sale, 2, "")
	evs := []inbox.Event{
		first, testenv.OrderEvent("created", x, sale, 3, ""), first,
		testenv.OrderEvent("paid", x, sale, 2, ""), testenv.OrderEvent("paid", x, sale, 2, ""),
		testenv.OrderEvent("cancelled", x, sale, 2, "buyer"), testenv.OrderEvent("expired", x, sale, 2, ""),
		testenv.OrderEvent("created", y, sale, 1, ""),
	}
	var applied []bool
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) (err error) {
		applied, err = ledger.HandleNew(ctx, tx, evs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true, true, true, true, true}; !slices.Equal(applied, want) {
		t.Errorf("applied %v, want %v", applied, want)
	}
	if p := f.position(t, sale); p.Sold != 3 || p.Released != 2 {
		t.Errorf("position %+v, want 3 sold (2 of the first creation, 1 of y) and 2 released", p)
	}
	rows, _ := f.db.Query(ctx, `SELECT event_id::text FROM ledger_entries WHERE order_id = $1`, x)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{evs[0].ID, evs[3].ID, evs[5].ID}; !sameSet(got, want) {
		t.Errorf("entries of x %v, want %v", got, want)
	}
	ignored := []int{1, 4, 6, 7}
	warned := strings.Count(logs.String(), "already recorded under another event id")
	for _, i := range ignored {
		line := fmt.Sprintf("event_id=%s order_id=%s kind=", evs[i].ID, evs[i].Subject)
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no warning for event %d (%s)", i, evs[i].Type)
		}
	}
	if warned != len(ignored) {
		t.Errorf("%d warnings, want %d:\n%s", warned, len(ignored), logs.String())
	}
}

func count[T comparable](s []T, v T) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// TestLedgerBatchFailsLikeHandle puts each event Handle refuses in a batch
// of good ones: HandleNew fails with Handle's error, so the consumer's
// retries and dead letters say the same, and the batch leaves nothing.
func TestLedgerBatchFailsLikeHandle(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 10)
	wrongSubject := testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, "")
	wrongSubject.Subject = "42"
	for _, bad := range []inbox.Event{
		testenv.OrderEvent("created", testenv.NextOrderID(), sale, 0, ""),
		{ID: testenv.EventID(), Source: "/t", Type: order.EventPaid, Subject: "1", Data: []byte(`{"order_id":"x"}`)},
		wrongSubject,
	} {
		good := testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, "")
		handleErr := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error { return f.ledger.Handle(ctx, tx, bad) })
		batchErr := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
			_, err := f.ledger.HandleNew(ctx, tx, []inbox.Event{good, bad})
			return err
		})
		if handleErr == nil || batchErr == nil || batchErr.Error() != handleErr.Error() {
			t.Errorf("%s: batch error %v, want Handle's %v", bad.Data, batchErr, handleErr)
		}
		if !errors.Is(batchErr, inventory.ErrInvalidValue) {
			t.Errorf("%s: %v is no ErrInvalidValue", bad.Data, batchErr)
		}
	}
	if rows := f.ledgerRows(t); len(rows) != 0 {
		t.Errorf("failed batches left %q", rows)
	}
}

// TestLedgerBatchUpdatesCountersInSaleOrder holds the counters of sale a
// while a batch names sales b then a, and then updates b's in another
// transaction: had the batch taken b's counters in message order, the two
// transactions would deadlock and PostgreSQL would fail one after a
// second. In sale order the batch holds nothing of b while it waits for a.
// Nothing locks ahead of the statement: it must be safe by itself.
func TestLedgerBatchUpdatesCountersInSaleOrder(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	a, b := f.sale(t, 100), f.sale(t, 100)
	for _, sale := range []inventory.SaleID{a, b} { // the counters exist
		f.mustApply(t, testenv.OrderEvent("created", testenv.NextOrderID(), sale, 1, ""))
	}
	holder, err := f.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck
	if _, err := holder.Exec(ctx, `SELECT 1 FROM stock_ledger WHERE sale_id = $1 FOR UPDATE`, a.Int64()); err != nil {
		t.Fatal(err)
	}
	batch := []inbox.Event{testenv.OrderEvent("created", testenv.NextOrderID(), b, 1, ""), testenv.OrderEvent("created", testenv.NextOrderID(), a, 1, "")}
	done := make(chan error, 1)
	go func() {
		done <- pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
			_, err := f.ledger.HandleNew(ctx, tx, batch)
			return err
		})
	}()
	waitForLockWaiter(t, f)
	_, err = f.ledger.HandleNew(ctx, holder, []inbox.Event{testenv.OrderEvent("created", testenv.NextOrderID(), b, 1, "")})
	if err != nil {
		t.Fatalf("updating b while the batch waits for a: %v", err)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("batch: %v", err)
	}
	if pa, pb := f.position(t, a), f.position(t, b); pa.Sold != 2 || pb.Sold != 3 {
		t.Errorf("positions %+v, %+v; want 2 and 3 sold", pa, pb)
	}
}

// waitForLockWaiter waits until a session of f's database waits for a lock.
func waitForLockWaiter(t *testing.T, f ledgerFixture) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		err := f.db.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited for sale a's counters")
		}
	}
}
