package order_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/inventory/invredis"
	"flashsale/lease"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// rig is the buy path on the real stack, with seams where a test injects
// a fault or counts calls; the components behind the seams are real.
type rig struct {
	svc     *order.Service
	store   *orderpg.Store
	stock   *countingStock
	sales   *inventory.Service
	soldOut *invredis.SoldOut
	catalog *inventory.Catalog
	faulty  *faultyStore
	pools   []*pgxpool.Pool
	m       shard.Map
	node1   *redis.Client
	prefix  string // of the test's Redis keys
}

// countingStock counts the reservation calls that reach Redis.
type countingStock struct {
	*invredis.Stock
	reserves atomic.Int64
}

func (c *countingStock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	c.reserves.Add(1)
	return c.Stock.Reserve(ctx, r)
}

// faultyStore fails Create with err when set, after the reservation and
// before anything reaches PostgreSQL; it counts the key look-ups.
type faultyStore struct {
	order.Store
	err    atomic.Pointer[error]
	byKeys atomic.Int64
	// before runs as Create starts, after the reservation; ctxErr keeps
	// the error of the context Create then hands to the real store.
	before atomic.Pointer[func()]
	ctxErr atomic.Pointer[error]
}

func (f *faultyStore) ByKey(ctx context.Context, buyer order.BuyerID, key order.IdemKey) (order.Order, error) {
	f.byKeys.Add(1)
	return f.Store.ByKey(ctx, buyer, key)
}

func (f *faultyStore) Create(ctx context.Context, o order.NewOrder) (order.Order, error) {
	if err := f.err.Load(); err != nil {
		return order.Order{}, *err
	}
	if before := f.before.Load(); before != nil {
		(*before)()
		err := ctx.Err()
		f.ctxErr.Store(&err)
	}
	return f.Store.Create(ctx, o)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg := testenv.Config(t, 4)
	pools := testenv.Pools(t, cfg)
	m, _ := shard.NewMap(cfg.Shards, len(pools))
	node1 := testenv.Redis(t, cfg, 0)
	r := &rig{stock: &countingStock{Stock: invredis.NewStock(node1, cfg.RedisPrefix,
		ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1_000_000, IPBurst: 1_000_000})}}
	r.store = orderpg.New(pools, m, orderpg.Options{MaxBatch: 16, Workers: 2})
	r.pools, r.m, r.node1, r.prefix = pools, m, node1, cfg.RedisPrefix
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sales := invpg.NewSaleStore(pools[0])
	r.soldOut = invredis.NewSoldOut(r.stock.Stock, r.store, testenv.Logger(t))
	nodes := []*redis.Client{node1, testenv.Redis(t, cfg, 1), testenv.Redis(t, cfg, 2)}
	locker := lease.NewLocker(nodes, cfg.RedisPrefix, 5*time.Second, sales.NextToken)
	r.sales = inventory.NewService(sales, r.stock.Stock, r.soldOut, invredis.Locker{L: locker}, r.store, r.store, time.Minute, testenv.Logger(t))
	r.faulty = &faultyStore{Store: r.store}
	r.catalog = inventory.NewCatalog(sales)
	r.svc = order.NewService(r.faulty, r.stock, r.catalog, r.soldOut,
		order.Config{PaymentWindow: 15 * time.Minute, CommitDeadline: 10 * time.Second, MaxInFlight: 64}, testenv.Logger(t))
	return r
}

func (r *rig) newSale(t *testing.T, stock int) inventory.SaleID {
	t.Helper()
	now := time.Now().UTC()
	v, err := r.sales.CreateSale(context.Background(), inventory.NewSale{SKU: "S", Title: "T", PriceCents: 250, Currency: "EUR",
		Stock: stock, PerUserLimit: 3, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return v.ID
}

func request(t *testing.T, sale inventory.SaleID, buyer, key string, qty int64) order.PlaceRequest {
	t.Helper()
	b, err1 := order.ParseBuyerID(buyer)
	k, err2 := order.ParseIdemKey(key)
	q, err3 := inventory.NewQuantity(qty)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return order.PlaceRequest{Buyer: b, Key: k, Sale: sale, Qty: q, ClientIP: netip.MustParseAddr("127.0.0.1")}
}

func (r *rig) remaining(t *testing.T, sale inventory.SaleID) int {
	t.Helper()
	n, err := r.stock.Remaining(context.Background(), sale)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFailedCommitReturnsStock injects a store fault between reserve and
// commit: the units come back before the error is answered, no order
// exists, and a retry with the same key is judged afresh.
func TestFailedCommitReturnsStock(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 5)
	boom := errors.New("injected: database unreachable")
	r.faulty.err.Store(&boom)
	req := request(t, sale, "unlucky", "k1", 2)
	if _, _, err := r.svc.Place(ctx, req); !errors.Is(err, boom) {
		t.Fatalf("Place: %v, want the injected fault", err)
	}
	if left := r.remaining(t, sale); left != 5 {
		t.Errorf("stock %d after a failed commit, want 5", left)
	}
	if _, err := r.store.ByKey(ctx, req.Buyer, req.Key); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("an order exists after a failed commit: %v", err)
	}
	r.faulty.err.Store(nil)
	o, replayed, err := r.svc.Place(ctx, req)
	if err != nil || replayed || o.Quantity != 2 {
		t.Fatalf("retry after the fault: %+v replayed=%t err=%v", o, replayed, err)
	}
	if left := r.remaining(t, sale); left != 3 {
		t.Errorf("stock %d, want 3", left)
	}
}

// TestUnknownCommitOutcomeKeepsStock: when the commit's outcome is unknown
// the order may exist, so the units stay reserved and the key stays
// claimed until the reconciler decides.
func TestUnknownCommitOutcomeKeepsStock(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 5)
	unknown := fmt.Errorf("%w: connection reset", order.ErrCommitUnknown)
	r.faulty.err.Store(&unknown)
	req := request(t, sale, "in-doubt", "k1", 1)
	if _, _, err := r.svc.Place(ctx, req); !errors.Is(err, order.ErrCommitUnknown) {
		t.Fatalf("Place: %v", err)
	}
	if left := r.remaining(t, sale); left != 4 {
		t.Errorf("stock %d, want 4: an order that may exist keeps its units", left)
	}
	r.faulty.err.Store(nil)
	if _, _, err := r.svc.Place(ctx, req); !errors.Is(err, order.ErrKeyInUse) {
		t.Errorf("retry while in doubt: %v, want ErrKeyInUse", err)
	}
}

// TestAClientGoneAfterItsReservationStillGetsItsOrder: a client that
// gives up while its order commits (its request's context cancelled right
// after the reservation) does not cancel the commit, so its retry with the
// same key replays the order instead of finding the key in use while the
// units sit reserved until the reconciler returns them.
func TestAClientGoneAfterItsReservationStillGetsItsOrder(t *testing.T) {
	r := newRig(t)
	sale := r.newSale(t, 5)
	ctx, cancel := context.WithCancel(context.Background())
	hangUp := func() { cancel() }
	r.faulty.before.Store(&hangUp)
	req := request(t, sale, "impatient", "k1", 1)
	o, _, err := r.svc.Place(ctx, req)
	r.faulty.before.Store(nil)
	seen := r.faulty.ctxErr.Load()
	if seen == nil {
		t.Fatal("Create was not called")
	}
	if *seen != nil {
		t.Fatalf("the store's context once the client went away: %v, want live", *seen)
	}
	if err != nil {
		t.Fatalf("Place of a client gone after its reservation: %v", err)
	}
	again, replay, err := r.svc.Place(context.Background(), req)
	if err != nil || !replay || again.ID != o.ID {
		t.Fatalf("retry: %v, replay %t, order %v, want the replay of %v", err, replay, again.ID, o.ID)
	}
	if left := r.remaining(t, sale); left != 4 {
		t.Errorf("stock %d, want 4", left)
	}
}

// TestSoldOutIsAnsweredFromMemory: once a sale is sold out, no buy
// request reaches Redis, until stock is released again.
func TestSoldOutIsAnsweredFromMemory(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 2)
	for i := range 2 {
		if _, _, err := r.svc.Place(ctx, request(t, sale, fmt.Sprint("b", i), "k", 1)); err != nil {
			t.Fatal(err)
		}
	}
	before := r.stock.reserves.Load()
	for i := range 200 {
		if _, _, err := r.svc.Place(ctx, request(t, sale, fmt.Sprint("late", i), "k", 1)); !errors.Is(err, inventory.ErrSoldOut) {
			t.Fatalf("after sell-out: %v", err)
		}
	}
	if n := r.stock.reserves.Load() - before; n != 0 {
		t.Fatalf("%d reservation calls reached Redis after sell-out, want 0", n)
	}
	q, _ := inventory.NewQuantity(1)
	if _, err := r.sales.Restock(ctx, sale, q); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.Place(ctx, request(t, sale, "after-restock", "k", 1)); err != nil {
		t.Fatalf("after restock: %v", err)
	}
}

// blockingStock holds every reservation until released, so a test can fill
// the in-flight guard deterministically.
type blockingStock struct {
	order.Stock
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Stock.Reserve(ctx, r)
}

// TestOverloadShedsInsteadOfQueueing fills the in-flight guard; the next
// order is refused at once with ErrOverloaded and touches nothing.
func TestOverloadShedsInsteadOfQueueing(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	sale := r.newSale(t, 10)
	bs := &blockingStock{Stock: r.stock, entered: make(chan struct{}, 2), release: make(chan struct{})}
	svc := order.NewService(r.store, bs, r.catalog, r.soldOut,
		order.Config{PaymentWindow: time.Minute, CommitDeadline: 10 * time.Second, MaxInFlight: 2}, testenv.Logger(t))
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, _, err := svc.Place(ctx, request(t, sale, fmt.Sprint("first", i), "k", 1))
			errs <- err
		}()
		<-bs.entered
	}
	if _, _, err := svc.Place(ctx, request(t, sale, "third", "k", 1)); !errors.Is(err, order.ErrOverloaded) {
		t.Errorf("third order with two in flight: %v, want ErrOverloaded", err)
	}
	close(bs.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("in-flight order: %v", err)
		}
	}
	if left := r.remaining(t, sale); left != 8 {
		t.Errorf("stock %d, want 8: the shed order must take nothing", left)
	}
}
