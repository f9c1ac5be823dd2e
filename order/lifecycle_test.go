package order_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/order"
)

// releaseCounter counts the releases that reach Redis and the units they
// return, and fails them while fail is set.
type releaseCounter struct {
	order.Stock
	calls, units atomic.Int64
	fail         atomic.Bool
}

func (c *releaseCounter) Release(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("injected: redis unreachable")
	}
	c.calls.Add(1)
	n, err := c.Stock.Release(ctx, sale, buyer, key, forget)
	c.units.Add(int64(n))
	return n, err
}

// withWindow is the rig's buy path with another payment window and stock.
func (r *rig) withWindow(t *testing.T, window time.Duration, stock order.Stock) *order.Service {
	return order.NewService(r.store, stock, r.catalog, r.soldOut,
		order.Config{PaymentWindow: window, CommitDeadline: 10 * time.Second, MaxInFlight: 64}, testenv.Logger(t))
}

func (r *rig) expirer(t *testing.T, stock order.Stock, cfg order.ExpirerConfig) *order.Expirer {
	return order.NewExpirer(r.store, stock, r.soldOut, cfg, testenv.Logger(t))
}

func (r *rig) place(t *testing.T, svc *order.Service, sale inventory.SaleID, buyer string, qty int64) (order.Order, order.PlaceRequest) {
	t.Helper()
	req := request(t, sale, buyer, "key-"+buyer, qty)
	o, _, err := svc.Place(context.Background(), req)
	if err != nil {
		t.Fatalf("place for %s: %v", buyer, err)
	}
	return o, req
}

// events lists the outbox event types of an order, in outbox order.
func (r *rig) events(t *testing.T, id order.ID) []string {
	t.Helper()
	var out []string
	for _, x := range r.outboxRows(t, id) {
		out = append(out, x.Type)
	}
	return out
}

func (r *rig) status(t *testing.T, id order.ID) order.Status {
	t.Helper()
	o, err := r.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o.Status
}

const (
	evCreated   = "flashsale.order.created"
	evPaid      = "flashsale.order.paid"
	evCancelled = "flashsale.order.cancelled"
	evExpired   = "flashsale.order.expired"
)

// TestPayRacesExpiry releases payments and sweepers of three instances at
// once at moments spread around an order's expiry, 20 times: never do both
// win, one always wins in the end, and the units come back exactly when
// the expiry won, once.
func TestPayRacesExpiry(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	stock := &releaseCounter{Stock: r.stock}
	const window = 300 * time.Millisecond
	svc := r.withWindow(t, window, stock)
	sweepers := []*order.Expirer{r.expirer(t, stock, order.ExpirerConfig{}), r.expirer(t, stock, order.ExpirerConfig{}),
		r.expirer(t, stock, order.ExpirerConfig{})}
	const rounds = 20
	var paidWins, expiryWins int
	for i := range rounds {
		sale := r.newSale(t, 1)
		o, req := r.place(t, svc, sale, fmt.Sprint("racer-", i), 1)
		// The first round starts 100ms before the expiry (the payment must
		// win), the last 100ms after it (the expiry must win), the others
		// within 10ms of it, where both statements may find the order due
		// for them and only the row lock decides.
		offset := -10*time.Millisecond + time.Duration(i-1)*20*time.Millisecond/(rounds-3)
		switch i {
		case 0:
			offset = -100 * time.Millisecond
		case rounds - 1:
			offset = 100 * time.Millisecond
		}
		time.Sleep(time.Until(o.ExpiresAt.Add(offset)))
		units := stock.units.Load()
		var paid, expired atomic.Int64
		var mu sync.Mutex
		var unexpected []error
		testenv.Burst(6, func(j int) {
			if j%2 == 0 {
				_, err := svc.Pay(ctx, req.Buyer, o.ID)
				switch {
				case err == nil:
					paid.Add(1)
				case !errors.Is(err, order.ErrNotTransitable):
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
				return
			}
			sw, err := sweepers[j/2].Sweep(ctx)
			if err != nil {
				mu.Lock()
				unexpected = append(unexpected, err)
				mu.Unlock()
			}
			expired.Add(int64(sw.Expired))
		})
		if len(unexpected) > 0 {
			t.Fatalf("round %d: %v", i, unexpected)
		}
		if paid.Load() > 0 && expired.Load() > 0 {
			t.Fatalf("round %d: the payment and the expiry both won", i)
		}
		if paid.Load()+expired.Load() == 0 {
			// Every payment came after the window and every sweep before
			// it: nobody has won yet. The next sweep must.
			time.Sleep(time.Until(o.ExpiresAt.Add(10 * time.Millisecond)))
			sw, err := sweepers[0].Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			expired.Add(int64(sw.Expired))
		}
		returned := stock.units.Load() - units
		switch {
		case paid.Load() == 1 && expired.Load() == 0:
			paidWins++
			if st := r.status(t, o.ID); st != order.StatusPaid {
				t.Fatalf("round %d: payment won but the order is %s", i, st)
			}
			if returned != 0 || r.remaining(t, sale) != 0 {
				t.Fatalf("round %d: paid order returned %d units, %d left", i, returned, r.remaining(t, sale))
			}
			if ev := r.events(t, o.ID); !slices.Equal(ev, []string{evCreated, evPaid}) {
				t.Fatalf("round %d: events %v", i, ev)
			}
		case paid.Load() == 0 && expired.Load() == 1:
			expiryWins++
			if st := r.status(t, o.ID); st != order.StatusExpired {
				t.Fatalf("round %d: expiry won but the order is %s", i, st)
			}
			if returned != 1 || r.remaining(t, sale) != 1 {
				t.Fatalf("round %d: expired order returned %d units, %d left; want 1 and 1", i, returned, r.remaining(t, sale))
			}
			if ev := r.events(t, o.ID); !slices.Equal(ev, []string{evCreated, evExpired}) {
				t.Fatalf("round %d: events %v", i, ev)
			}
		default:
			t.Fatalf("round %d: %d payments and %d expiries won, want exactly one in all", i, paid.Load(), expired.Load())
		}
	}
	t.Logf("payment won %d rounds, expiry %d", paidWins, expiryWins)
	if paidWins == 0 || expiryWins == 0 {
		t.Errorf("payment won %d rounds and expiry %d: the race was not exercised on both sides", paidWins, expiryWins)
	}
}

// TestConcurrentSweepersExpireEachOrderOnce runs the sweepers of four
// instances at once over 40 due orders in small batches: each order
// expires once, with one event, and each unit comes back once.
func TestConcurrentSweepersExpireEachOrderOnce(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	stock := &releaseCounter{Stock: r.stock}
	svc := r.withWindow(t, 50*time.Millisecond, stock)
	sale := r.newSale(t, 60)
	var orders []order.Order
	for i := range 40 {
		o, _ := r.place(t, svc, sale, fmt.Sprint("b", i), 1)
		orders = append(orders, o)
	}
	time.Sleep(time.Until(orders[len(orders)-1].ExpiresAt.Add(50 * time.Millisecond)))
	var expired atomic.Int64
	testenv.Burst(4, func(int) {
		sw, err := r.expirer(t, stock, order.ExpirerConfig{Batch: 3}).Sweep(ctx)
		if err != nil {
			t.Error(err)
		}
		expired.Add(int64(sw.Expired))
	})
	if expired.Load() != 40 || stock.units.Load() != 40 {
		t.Fatalf("expired %d orders returning %d units, want 40 and 40", expired.Load(), stock.units.Load())
	}
	if left := r.remaining(t, sale); left != 60 {
		t.Errorf("stock %d, want 60", left)
	}
	for _, o := range orders {
		if ev := r.events(t, o.ID); !slices.Equal(ev, []string{evCreated, evExpired}) {
			t.Errorf("order %s: events %v", o.ID, ev)
		}
	}
	if sw, err := r.expirer(t, stock, order.ExpirerConfig{}).Sweep(ctx); err != nil || sw.Expired != 0 || sw.UnitsReturned != 0 {
		t.Errorf("a later sweep: %+v, %v", sw, err)
	}
}

// TestSweeperSkipsARowAPaymentHolds: while a payment's transaction holds
// the order, a sweep after the window does not wait for it and does not
// expire it; the payment, which began inside the window, commits and wins.
func TestSweeperSkipsARowAPaymentHolds(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	stock := &releaseCounter{Stock: r.stock}
	sale := r.newSale(t, 1)
	o, req := r.place(t, r.withWindow(t, 200*time.Millisecond, stock), sale, "slow-payer", 1)
	sh, _ := r.m.ForOrder(o.ID.Int64())
	tx, err := r.pools[r.m.Database(sh)].Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	// The payment's transaction began inside the window and locks the row.
	if _, err := tx.Exec(ctx, "SELECT 1 FROM "+sh.Schema()+".orders WHERE id = $1 AND expires_at > now() FOR UPDATE", o.ID.Int64()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(o.ExpiresAt.Add(20 * time.Millisecond)))
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	began := time.Now()
	sw, err := r.expirer(t, stock, order.ExpirerConfig{}).Sweep(sctx)
	if err != nil || sw.Expired != 0 {
		t.Fatalf("sweep while a payment holds the order: %+v, %v", sw, err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("the sweep waited %s for the payment's lock", d)
	}
	if _, err := tx.Exec(ctx, "UPDATE "+sh.Schema()+".orders SET status = 'paid', updated_at = now() WHERE id = $1 AND status = 'pending_payment' AND expires_at > now()", o.ID.Int64()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if sw, err := r.expirer(t, stock, order.ExpirerConfig{}).Sweep(ctx); err != nil || sw.Expired != 0 || stock.units.Load() != 0 {
		t.Fatalf("sweep after the payment committed: %+v, %v, %d units returned", sw, err, stock.units.Load())
	}
	if _, err := r.svc.Pay(ctx, req.Buyer, o.ID); !errors.Is(err, order.ErrNotTransitable) {
		t.Errorf("second payment: %v, want ErrNotTransitable", err)
	}
	if st := r.status(t, o.ID); st != order.StatusPaid {
		t.Errorf("order is %s, want paid", st)
	}
}

// TestPaymentWindowIsPostgresClock: an order inside its window is not
// expired however often the sweeper runs; once the window closed, payment
// is refused even before a sweep, and the next sweep expires the order.
func TestPaymentWindowIsPostgresClock(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ex := r.expirer(t, r.stock, order.ExpirerConfig{})
	sale := r.newSale(t, 5)
	long, _ := r.place(t, r.svc, sale, "patient", 1)
	short, req := r.place(t, r.withWindow(t, 200*time.Millisecond, r.stock), sale, "late", 1)
	if sw, err := ex.Sweep(ctx); err != nil || sw.Expired != 0 {
		t.Fatalf("sweep before any window closed: %+v, %v", sw, err)
	}
	time.Sleep(time.Until(short.ExpiresAt.Add(20 * time.Millisecond)))
	if _, err := r.svc.Pay(ctx, req.Buyer, short.ID); !errors.Is(err, order.ErrNotTransitable) {
		t.Fatalf("payment after the window: %v, want ErrNotTransitable", err)
	}
	if st := r.status(t, short.ID); st != order.StatusPendingPayment {
		t.Fatalf("a refused payment changed the order to %s", st)
	}
	sw, err := ex.Sweep(ctx)
	if err != nil || sw.Expired != 1 || sw.UnitsReturned != 1 {
		t.Fatalf("sweep after the window: %+v, %v", sw, err)
	}
	if st := r.status(t, long.ID); st != order.StatusPendingPayment {
		t.Errorf("the order inside its window is %s", st)
	}
	if left := r.remaining(t, sale); left != 4 {
		t.Errorf("stock %d, want 4", left)
	}
}

// TestLostReleaseIsRepairedOnce commits transitions whose release never
// happens (through the store directly, and with Redis failing under
// Cancel): the next sweep returns their units, reopens the sold-out sale,
// and neither a second sweep nor another instance's returns them twice.
// An order cancelled as oversold is not the lifecycle's to return.
func TestLostReleaseIsRepairedOnce(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 5)

	// Cancelled, release lost.
	a, reqA := r.place(t, r.svc, sale, "a", 2)
	if o, err := r.store.Cancel(ctx, reqA.Buyer, a.ID); err != nil || o.Status != order.StatusCancelled {
		t.Fatalf("store cancel: %+v, %v", o, err)
	}
	// Expired, release lost.
	b, _ := r.place(t, r.withWindow(t, 50*time.Millisecond, r.stock), sale, "b", 1)
	time.Sleep(time.Until(b.ExpiresAt.Add(20 * time.Millisecond)))
	var expired []order.Order
	for part := range r.store.Partitions() {
		got, err := r.store.ExpireDue(ctx, part, 10)
		if err != nil {
			t.Fatal(err)
		}
		expired = append(expired, got...)
	}
	if len(expired) != 1 || expired[0].ID != b.ID {
		t.Fatalf("store expiry expired %+v, want order %s", expired, b.ID)
	}
	// Cancelled while Redis fails: the cancellation stands.
	failing := &releaseCounter{Stock: r.stock}
	failing.fail.Store(true)
	c, reqC := r.place(t, r.svc, sale, "c", 1)
	if o, err := r.withWindow(t, time.Minute, failing).Cancel(ctx, reqC.Buyer, c.ID); err != nil || o.Status != order.StatusCancelled {
		t.Fatalf("cancel with Redis failing: %+v, %v", o, err)
	}
	// Cancelled as oversold by the inventory ledger: not ours to return.
	d, _ := r.place(t, r.svc, sale, "d", 1)
	sh, _ := r.m.ForOrder(d.ID.Int64())
	if _, err := r.pools[r.m.Database(sh)].Exec(ctx, "UPDATE "+sh.Schema()+
		".orders SET status = 'cancelled', cancel_reason = 'oversold', updated_at = now() WHERE id = $1", d.ID.Int64()); err != nil {
		t.Fatal(err)
	}
	if left := r.remaining(t, sale); left != 0 {
		t.Fatalf("stock %d before the repair, want 0 (every release was lost)", left)
	}
	if r.soldOut.Check(sale, "nobody", "k") == inventory.VerdictOpen {
		t.Fatal("the sale is not marked sold out")
	}

	stock := &releaseCounter{Stock: r.stock}
	ex := r.expirer(t, stock, order.ExpirerConfig{})
	sw, err := ex.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sw.Repaired != 3 || sw.UnitsReturned != 4 {
		t.Errorf("repair: %+v, want 3 orders and 4 units", sw)
	}
	if left := r.remaining(t, sale); left != 4 {
		t.Errorf("stock %d after the repair, want 4 (the oversold unit stays out)", left)
	}
	if r.soldOut.Check(sale, "nobody", "k") != inventory.VerdictOpen {
		t.Error("the repair returned units but the sale is still marked sold out here")
	}

	calls := stock.calls.Load()
	if sw, err := ex.Sweep(ctx); err != nil || sw.Repaired != 0 || sw.UnitsReturned != 0 {
		t.Errorf("second sweep: %+v, %v", sw, err)
	}
	if n := stock.calls.Load() - calls; n != 0 {
		t.Errorf("second sweep called Redis %d times about orders it already released", n)
	}
	// Another instance, or this one restarted, knows nothing: the
	// idempotent release returns nothing twice.
	if sw, err := r.expirer(t, stock, order.ExpirerConfig{}).Sweep(ctx); err != nil || sw.Repaired != 0 || sw.UnitsReturned != 0 {
		t.Errorf("another instance's sweep: %+v, %v", sw, err)
	}
	if left := r.remaining(t, sale); left != 4 {
		t.Errorf("stock %d after more sweeps, want 4", left)
	}
	// The claim was kept: a retry of a's original request replays its order,
	// as it was first answered (pending payment), not as it stands now.
	o, replayed, err := r.svc.Place(ctx, reqA)
	if err != nil || !replayed || o.ID != a.ID || o.Status != order.StatusPendingPayment {
		t.Errorf("retry of the cancelled order's request: %+v replayed=%t err=%v", o, replayed, err)
	}
	if ev := r.events(t, a.ID); !slices.Equal(ev, []string{evCreated, evCancelled}) {
		t.Errorf("events of a: %v", ev)
	}
}

// TestExpirerRunStopsWithContext: Run sweeps on its ticker and returns
// promptly once its context ends.
func TestExpirerRunStopsWithContext(t *testing.T) {
	r := newRig(t)
	sale := r.newSale(t, 1)
	o, _ := r.place(t, r.withWindow(t, 50*time.Millisecond, r.stock), sale, "x", 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.expirer(t, r.stock, order.ExpirerConfig{Interval: 20 * time.Millisecond}).Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for r.status(t, o.ID) != order.StatusExpired {
		if time.Now().After(deadline) {
			t.Fatal("Run did not expire the order")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of its context ending")
	}
	if left := r.remaining(t, sale); left != 1 {
		t.Errorf("stock %d, want 1", left)
	}
}
