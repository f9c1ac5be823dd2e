package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/inventory/invredis"
	"flashsale/lease"
	"flashsale/order/orderpg"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// fixture is inventory on the real stack: sales in PostgreSQL, stock in
// Redis node 1, leases over all three nodes.
type fixture struct {
	sales  *invpg.SaleStore
	stock  *invredis.Stock
	locker *lease.Locker
	svc    *inventory.Service
	node1  *redis.Client // the stock's client
	prefix string        // of every Redis key
}

// noOrders answers that no reservation ever became an order.
type noOrders struct{}

func (noOrders) ExistingOrders(context.Context, []inventory.BuyerKey) (map[inventory.BuyerKey]bool, error) {
	return nil, nil
}

func (noOrders) LiveOrders(context.Context, inventory.SaleID) ([]inventory.LiveOrder, error) {
	return nil, nil
}

func (noOrders) ClosedKeys(context.Context, inventory.SaleID) ([]inventory.BuyerKey, error) {
	return nil, nil
}

// noLiveUnits answers that no sale has units in orders; these tests never
// consult the sold-out memory's held count.
type noLiveUnits struct{}

func (noLiveUnits) LiveUnits(context.Context, inventory.SaleID) (int, error) { return 0, nil }

func newFixture(t testing.TB, leaseTTL, grace time.Duration, orders inventory.OrderLookup) fixture {
	t.Helper()
	cfg := testenv.Config(t, 2)
	pools := testenv.Pools(t, cfg)
	var nodes []*redis.Client
	for i := range cfg.RedisAddrs {
		nodes = append(nodes, testenv.Redis(t, cfg, i))
	}
	f := fixture{sales: invpg.NewSaleStore(pools[0]), node1: nodes[0], prefix: cfg.RedisPrefix}
	f.stock = invredis.NewStock(nodes[0], cfg.RedisPrefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})
	f.locker = lease.NewLocker(nodes, cfg.RedisPrefix, leaseTTL, f.sales.NextToken)
	m, err := shard.NewMap(cfg.Shards, len(pools))
	if err != nil {
		t.Fatal(err)
	}
	allot := orderpg.New(pools, m, orderpg.Options{}) // only allots: nothing here commits orders
	f.svc = inventory.NewService(f.sales, f.stock, invredis.NewSoldOut(f.stock, noLiveUnits{}, testenv.Logger(t)), invredis.Locker{L: f.locker}, orders, allot, grace, testenv.Logger(t))
	return f
}

func (f fixture) newSale(t testing.TB, stock int) inventory.SaleView {
	t.Helper()
	now := time.Now().UTC()
	v, err := f.svc.CreateSale(context.Background(), inventory.NewSale{SKU: "S", Title: "T", PriceCents: 100, Currency: "EUR",
		Stock: stock, PerUserLimit: 5, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPausedLeaseHolderIsFenced pauses a lease holder past its TTL: a
// second holder writes, and the first one's writes are refused by
// PostgreSQL and by Redis alike.
func TestPausedLeaseHolderIsFenced(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 300*time.Millisecond, time.Minute, noOrders{})
	sale := f.newSale(t, 10)
	name := "sale:" + sale.ID.String()

	paused, err := f.locker.Acquire(ctx, name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.locker.Acquire(ctx, name, 0); !errors.Is(err, lease.ErrNotAcquired) {
		t.Fatalf("a held lease was acquired twice: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // the holder is paused past its TTL
	next, err := f.locker.Acquire(ctx, name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Release(ctx)
	five, _ := inventory.NewQuantity(5)
	fresh, err := f.sales.AddStock(ctx, sale.ID, five, next.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.stock.Warm(ctx, fresh, next.Token); err != nil {
		t.Fatal(err)
	}

	if _, err := f.sales.AddStock(ctx, sale.ID, five, paused.Token); !errors.Is(err, inventory.ErrStaleFence) {
		t.Errorf("stale PostgreSQL write: %v, want ErrStaleFence", err)
	}
	stale := fresh
	stale.Stock = 100
	if _, err := f.stock.Warm(ctx, stale, paused.Token); !errors.Is(err, inventory.ErrStaleFence) {
		t.Errorf("stale Redis write: %v, want ErrStaleFence", err)
	}
	got, err := f.svc.Sale(ctx, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stock != 15 || got.Remaining != 15 {
		t.Errorf("stock %d, remaining %d; want 15 and 15", got.Stock, got.Remaining)
	}
}

// TestReconcilerReturnsOrphanedReservations simulates a crash between
// reserve and commit: the reservation holds units with no order, and the
// reconciler gives them back once, forgetting the key's claim.
func TestReconcilerReturnsOrphanedReservations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 10*time.Second, time.Millisecond, noOrders{})
	sale := f.newSale(t, 10)
	two, _ := inventory.NewQuantity(2)
	res := inventory.Reservation{Sale: sale.ID, Buyer: "crashed", Key: "k1", Fingerprint: "fp", Qty: two, ClientIP: "127.0.0.1"}
	if _, err := f.stock.Reserve(ctx, res); err != nil {
		t.Fatal(err)
	}
	if _, err := f.stock.Reserve(ctx, res); !errors.Is(err, inventory.ErrKeyClaimed) {
		t.Fatalf("second reserve with the claimed key: %v", err)
	}
	time.Sleep(5 * time.Millisecond)
	for round, want := range []inventory.Reconciled{{Released: 1, UnitsReturned: 2}, {}} {
		got, err := f.svc.Reconcile(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("round %d: %+v, want %+v", round, got, want)
		}
	}
	if left, _ := f.stock.Remaining(ctx, sale.ID); left != 10 {
		t.Errorf("stock %d, want 10", left)
	}
	if _, err := f.stock.Reserve(ctx, res); err != nil {
		t.Errorf("the orphan's claim survived reconciliation: %v", err)
	}
}

type allOrders struct{}

func (allOrders) ExistingOrders(_ context.Context, keys []inventory.BuyerKey) (map[inventory.BuyerKey]bool, error) {
	out := map[inventory.BuyerKey]bool{}
	for _, k := range keys {
		out[k] = true
	}
	return out, nil
}

// LiveOrders finds none: these tests never rebuild a sale that had orders.
func (allOrders) LiveOrders(context.Context, inventory.SaleID) ([]inventory.LiveOrder, error) {
	return nil, nil
}

func (allOrders) ClosedKeys(context.Context, inventory.SaleID) ([]inventory.BuyerKey, error) {
	return nil, nil
}

// TestReconcilerConfirmsReservationsWithOrders keeps the units of
// reservations whose order exists, and stops looking at them.
func TestReconcilerConfirmsReservationsWithOrders(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 10*time.Second, time.Millisecond, allOrders{})
	sale := f.newSale(t, 10)
	one, _ := inventory.NewQuantity(1)
	for _, k := range []string{"a", "b"} {
		if _, err := f.stock.Reserve(ctx, inventory.Reservation{Sale: sale.ID, Buyer: "b-" + k, Key: k, Fingerprint: "fp", Qty: one, ClientIP: "::1"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond)
	for round, want := range []inventory.Reconciled{{Confirmed: 2}, {}} {
		got, err := f.svc.Reconcile(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("round %d: %+v, want %+v", round, got, want)
		}
	}
	if left, _ := f.stock.Remaining(ctx, sale.ID); left != 8 {
		t.Errorf("stock %d, want 8", left)
	}
}

// TestRestockAfterLostRedisWrite: PostgreSQL took a restock that Redis
// never saw (a crash between the two); reconciliation adds it once.
func TestRestockAfterLostRedisWrite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 10*time.Second, time.Minute, noOrders{})
	sale := f.newSale(t, 3)
	lease, err := f.locker.Acquire(ctx, "sale:"+sale.ID.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	four, _ := inventory.NewQuantity(4)
	if _, err := f.sales.AddStock(ctx, sale.ID, four, lease.Token); err != nil {
		t.Fatal(err)
	}
	lease.Release(ctx) // "crashed" before Redis heard of it
	for range 2 {
		if _, err := f.svc.Reconcile(ctx, sale.ID); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := f.stock.Remaining(ctx, sale.ID); left != 7 {
		t.Errorf("stock %d, want 7", left)
	}
}

// scans counts the HSCAN calls a client sends: the reconciler's sweep of
// a whole sale.
type scans struct{ n atomic.Int64 }

func (s *scans) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *scans) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hscan" {
			s.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (s *scans) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestReconcilerSettlesFromTheQueueAfterOneSweep: a process sweeps each
// sale's reservations once; after that the queue alone brings the
// reconciler a crashed request's reservation, and it reads no whole sale.
func TestReconcilerSettlesFromTheQueueAfterOneSweep(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 10*time.Second, time.Millisecond, noOrders{})
	calls := &scans{}
	f.node1.AddHook(calls)
	sale := f.newSale(t, 10)
	if got, err := f.svc.Reconcile(ctx, sale.ID); err != nil || got != (inventory.Reconciled{}) || calls.n.Load() == 0 {
		t.Fatalf("first round: %+v, %v, %d scans; want nothing found by a sweep", got, err, calls.n.Load())
	}
	two, _ := inventory.NewQuantity(2)
	if _, err := f.stock.Reserve(ctx, inventory.Reservation{Sale: sale.ID, Buyer: "crashed", Key: "k1", Fingerprint: "fp", Qty: two, ClientIP: "::1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	swept := calls.n.Load()
	got, err := f.svc.Reconcile(ctx, sale.ID)
	if err != nil || got != (inventory.Reconciled{Released: 1, UnitsReturned: 2}) {
		t.Fatalf("second round: %+v, %v; want the orphan released", got, err)
	}
	if n := calls.n.Load() - swept; n != 0 {
		t.Errorf("the second round scanned the sale %d times", n)
	}
	if left, _ := f.stock.Remaining(ctx, sale.ID); left != 10 {
		t.Errorf("stock %d, want 10", left)
	}
}

// TestReconcilerSweepsReservationsInNoQueue: a reservation made before
// the queue existed (by an older version) is in none; the process's first
// round finds it all the same.
func TestReconcilerSweepsReservationsInNoQueue(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 10*time.Second, time.Millisecond, noOrders{})
	sale := f.newSale(t, 10)
	three, _ := inventory.NewQuantity(3)
	if _, err := f.stock.Reserve(ctx, inventory.Reservation{Sale: sale.ID, Buyer: "old", Key: "k1", Fingerprint: "fp", Qty: three, ClientIP: "::1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.node1.Del(ctx, f.prefix+":{sale:"+sale.ID.String()+"}:queue").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if got, err := f.svc.Reconcile(ctx, sale.ID); err != nil || got != (inventory.Reconciled{Released: 1, UnitsReturned: 3}) {
		t.Fatalf("first round: %+v, %v; want the unqueued orphan released", got, err)
	}
	if left, _ := f.stock.Remaining(ctx, sale.ID); left != 10 {
		t.Errorf("stock %d, want 10", left)
	}
}

// askedOrders answers that every reservation became an order, and keeps
// the keys it was asked about.
type askedOrders struct {
	allOrders
	asked []inventory.BuyerKey
}

func (a *askedOrders) ExistingOrders(ctx context.Context, keys []inventory.BuyerKey) (map[inventory.BuyerKey]bool, error) {
	a.asked = append(a.asked, keys...)
	return a.allOrders.ExistingOrders(ctx, keys)
}

// TestReconcilerAsksNothingAboutConfirmedReservations: a reservation the
// buy path told of after its commit is confirmed without a question to
// PostgreSQL; only the other one is looked up.
func TestReconcilerAsksNothingAboutConfirmedReservations(t *testing.T) {
	ctx := context.Background()
	orders := &askedOrders{}
	f := newFixture(t, 10*time.Second, time.Millisecond, orders)
	sale := f.newSale(t, 10)
	if _, err := f.svc.Reconcile(ctx, sale.ID); err != nil { // the process's sweep, of nothing
		t.Fatal(err)
	}
	one, _ := inventory.NewQuantity(1)
	for _, b := range []string{"told", "silent"} {
		if _, err := f.stock.Reserve(ctx, inventory.Reservation{Sale: sale.ID, Buyer: b, Key: "k", Fingerprint: "fp", Qty: one, ClientIP: "::1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.stock.Confirm(ctx, sale.ID, []inventory.BuyerKey{{Buyer: "told", Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	got, err := f.svc.Reconcile(ctx, sale.ID)
	if err != nil || got != (inventory.Reconciled{Confirmed: 2}) {
		t.Fatalf("round: %+v, %v; want both confirmed", got, err)
	}
	if fmt.Sprint(orders.asked) != "[{silent k}]" {
		t.Errorf("PostgreSQL was asked about %v, want only the silent reservation", orders.asked)
	}
	if left, _ := f.stock.Remaining(ctx, sale.ID); left != 8 {
		t.Errorf("stock %d, want 8", left)
	}
}
