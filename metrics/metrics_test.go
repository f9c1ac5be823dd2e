package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"flashsale/inventory"
)

// testOutcome labels what these tests tell apart; the service labels by
// api.Outcome.
func testOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, inventory.ErrSoldOut):
		return "sold_out"
	}
	return "error"
}

// fakeStock answers reservations from a script of errors.
type fakeStock struct{ errs []error }

func (f *fakeStock) Reserve(context.Context, inventory.Reservation) (inventory.Reserved, error) {
	err := f.errs[0]
	f.errs = f.errs[1:]
	return inventory.Reserved{StockLeft: 7}, err
}

func (f *fakeStock) Release(context.Context, inventory.SaleID, string, string, bool) (int, error) {
	return 2, nil
}

func (f *fakeStock) Discard(context.Context, inventory.SaleID, string, string) (int, error) {
	return 1, nil
}

func (f *fakeStock) Abandon(context.Context, inventory.Reservation) (int, error) {
	return 1, nil
}

func (f *fakeStock) Confirm(context.Context, inventory.SaleID, []inventory.BuyerKey) error {
	return nil
}

// TestStockDecoratorPassesThroughAndCounts: results reach the caller
// unchanged and each call lands in its op and outcome series.
func TestStockDecoratorPassesThroughAndCounts(t *testing.T) {
	m := New(testOutcome)
	s := m.Stock(&fakeStock{errs: []error{nil, inventory.ErrSoldOut, inventory.ErrSoldOut, errors.New("boom")}})
	for range 4 {
		if res, _ := s.Reserve(context.Background(), inventory.Reservation{}); res.StockLeft != 7 {
			t.Fatalf("result changed: %+v", res)
		}
	}
	if n, err := s.Release(context.Background(), inventory.SaleID{}, "b", "k", true); n != 2 || err != nil {
		t.Fatalf("release: %d %v", n, err)
	}
	h := m.stockTimer(t)
	for labels, want := range map[[2]string]int{{"reserve", "ok"}: 1, {"reserve", "sold_out"}: 2, {"reserve", "error"}: 1, {"release", "ok"}: 1} {
		if got := histogramCount(t, h, labels[0], labels[1]); got != want {
			t.Errorf("%v: %d observations, want %d", labels, got, want)
		}
	}
}

// fakeSoldOut remembers marked sales, as gone for every key.
type fakeSoldOut map[inventory.SaleID]bool

func (f fakeSoldOut) Check(id inventory.SaleID, _, _ string) inventory.Verdict {
	if f[id] {
		return inventory.VerdictGone
	}
	return inventory.VerdictOpen
}
func (f fakeSoldOut) Mark(_ context.Context, id inventory.SaleID) { f[id] = true }
func (f fakeSoldOut) Reopen(id inventory.SaleID)                  { delete(f, id) }

// TestSoldOutDecoratorCountsHitsNotMisses: only answers given from memory
// are hits.
func TestSoldOutDecoratorCountsHitsNotMisses(t *testing.T) {
	m := New(testOutcome)
	so := m.SoldOut(fakeSoldOut{})
	id, _ := inventory.NewSaleID(3)
	so.Check(id, "b", "k") // a miss
	so.Mark(context.Background(), id)
	for range 2 {
		if so.Check(id, "b", "k") != inventory.VerdictGone {
			t.Fatal("a marked sale must read as sold out")
		}
	}
	so.Reopen(id)
	if so.Check(id, "b", "k") != inventory.VerdictOpen {
		t.Fatal("a reopened sale must not read as sold out")
	}
	d := so.(*soldOut)
	for name, c := range map[string]struct {
		got  float64
		want float64
	}{"hit": {testutil.ToFloat64(d.hits), 2}, "mark": {testutil.ToFloat64(d.marks), 1}, "reopen": {testutil.ToFloat64(d.reopens), 1}} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
}

// stockTimer finds the stock histogram in m's registry.
func (m *Metrics) stockTimer(t *testing.T) *dto.MetricFamily {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "flashsale_stock_seconds" {
			return f
		}
	}
	t.Fatal("flashsale_stock_seconds not registered")
	return nil
}

// histogramCount is the observation count of the series op, outcome.
func histogramCount(t *testing.T, f *dto.MetricFamily, op, outcome string) int {
	t.Helper()
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["op"] == op && labels["outcome"] == outcome {
			return int(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// failingCanceller fails its calls while err is set.
type failingCanceller struct{ err error }

func (f *failingCanceller) CancelOversold(context.Context, []int64) error { return f.err }

// TestOversoldCountsCancelledOrders: only cancellations that happened are
// counted, one per order.
func TestOversoldCountsCancelledOrders(t *testing.T) {
	inner := &failingCanceller{}
	o := New(testOutcome).Oversold(inner)
	if err := o.CancelOversold(context.Background(), []int64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	inner.err = errors.New("boom")
	if err := o.CancelOversold(context.Background(), []int64{4}); err == nil {
		t.Fatal("the inner error was swallowed")
	}
	if got := testutil.ToFloat64(o.(*oversold).cancelled); got != 3 {
		t.Fatalf("counted %v cancelled orders, want 3", got)
	}
}
