package order_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/config"
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

// rebuildRig is the rig on chosen Redis nodes, with what the rebuild
// tests reach into: node 1, the key prefix, and the parts to build another
// inventory service over the same stores.
type rebuildRig struct {
	*rig
	node1     *redis.Client
	prefix    string
	saleStore *invpg.SaleStore
	locker    *lease.Locker
}

// newRebuildRig builds the buy path on the shared stack, or with every
// Redis role on nodes when given (a private server a test may kill).
func newRebuildRig(t *testing.T, cfg *config.Config, nodes []*redis.Client) *rebuildRig {
	t.Helper()
	if cfg == nil {
		cfg = testenv.Config(t, 4)
	}
	if nodes == nil {
		for i := range cfg.RedisAddrs {
			nodes = append(nodes, testenv.Redis(t, cfg, i))
		}
	}
	pools := testenv.Pools(t, cfg)
	m, _ := shard.NewMap(cfg.Shards, len(pools))
	r := &rebuildRig{rig: &rig{pools: pools, m: m, stock: &countingStock{Stock: invredis.NewStock(nodes[0], cfg.RedisPrefix,
		ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1_000_000, IPBurst: 1_000_000})}},
		node1: nodes[0], prefix: cfg.RedisPrefix}
	r.store = orderpg.New(pools, m, orderpg.Options{MaxBatch: 16, Workers: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.saleStore = invpg.NewSaleStore(pools[0])
	r.soldOut = invredis.NewSoldOut(r.stock.Stock, r.store, testenv.Logger(t))
	r.locker = lease.NewLocker(nodes, cfg.RedisPrefix, 5*time.Second, r.saleStore.NextToken)
	r.sales = r.service(t, r.store, time.Minute)
	r.faulty = &faultyStore{Store: r.store}
	r.catalog = inventory.NewCatalog(r.saleStore)
	r.svc = order.NewService(r.faulty, r.stock, r.catalog, r.soldOut,
		order.Config{PaymentWindow: 15 * time.Minute, CommitDeadline: 10 * time.Second, MaxInFlight: 64}, testenv.Logger(t))
	return r
}

// service is another inventory service over the rig's stores.
func (r *rebuildRig) service(t *testing.T, orders inventory.OrderLookup, grace time.Duration) *inventory.Service {
	return inventory.NewService(r.saleStore, r.stock.Stock, r.soldOut, invredis.Locker{L: r.locker}, orders, r.store, grace, testenv.Logger(t))
}

// saleKeys lists every Redis key of the sale: its hash, buyers,
// reservations, idempotency claims and rate-limit cells.
func (r *rebuildRig) saleKeys(t *testing.T, sale inventory.SaleID) []string {
	t.Helper()
	keys, err := r.node1.Keys(context.Background(), r.prefix+":{sale:"+sale.String()+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// forget deletes the sale's keys, as a Redis that lost its data would
// have them: only this test's prefix is touched.
func (r *rebuildRig) forget(t *testing.T, sale inventory.SaleID) {
	t.Helper()
	if keys := r.saleKeys(t, sale); len(keys) > 0 {
		if err := r.node1.Del(context.Background(), keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

type dumped struct {
	value string
	ttl   time.Duration
}

// snapshot dumps the sale's keys, as a replica lagging behind holds them.
func (r *rebuildRig) snapshot(t *testing.T, sale inventory.SaleID) map[string]dumped {
	t.Helper()
	ctx := context.Background()
	out := map[string]dumped{}
	for _, k := range r.saleKeys(t, sale) {
		v, err := r.node1.Dump(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // a rate-limit cell that expired since it was listed
		}
		ttl, err2 := r.node1.PTTL(ctx, k).Result()
		if err := errors.Join(err, err2); err != nil {
			t.Fatal(err)
		}
		if ttl == -2 { // expired between the two calls
			continue
		}
		out[k] = dumped{v, max(0, ttl)}
	}
	return out
}

// rollBack puts the sale's keys back as snap had them: what failing over
// to that replica does.
func (r *rebuildRig) rollBack(t *testing.T, sale inventory.SaleID, snap map[string]dumped) {
	t.Helper()
	r.forget(t, sale)
	for k, d := range snap {
		if err := r.node1.Restore(context.Background(), k, d.ttl, d.value).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// liveUnits sums the units of the sale's pending and paid orders, read
// from PostgreSQL on every shard.
func (r *rig) liveUnits(t *testing.T, sale inventory.SaleID) int {
	t.Helper()
	total := 0
	for sh := range shard.ID(r.m.Shards()) {
		var n int
		err := r.pools[r.m.Database(sh)].QueryRow(context.Background(), "SELECT coalesce(sum(quantity), 0) FROM "+sh.Schema()+
			".orders WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')", sale.Int64()).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

func (r *rebuildRig) rebuild(t *testing.T, sale inventory.SaleID, want inventory.Rebuilt) {
	t.Helper()
	got, err := r.sales.Rebuild(context.Background(), sale)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("rebuild: %+v, want %+v", got, want)
	}
}

// TestRebuildAfterRedisLostTheSale: Redis lost every key of a sale with
// orders. The rebuild gives back the stock less the ordered units (not the
// original total), the buyers' counts (the limit holds), the reservations
// (a cancellation returns its units) and the idempotency claims (a retry
// replays from the claim, without reaching the order store).
func TestRebuildAfterRedisLostTheSale(t *testing.T) {
	ctx := context.Background()
	r := newRebuildRig(t, nil, nil)
	sale := r.newSale(t, 10)
	_, full := r.place(t, r.svc, sale, "full", 3) // at the sale's limit of 3
	r.place(t, r.svc, sale, "two", 2)
	one, oneReq := r.place(t, r.svc, sale, "one", 1)

	r.forget(t, sale)
	if _, err := r.stock.Remaining(ctx, sale); !errors.Is(err, inventory.ErrSaleNotFound) {
		t.Fatalf("the sale is still in Redis: %v", err)
	}
	r.rebuild(t, sale, inventory.Rebuilt{Stock: 4, Added: 3})
	if left := r.remaining(t, sale); left != 4 {
		t.Fatalf("stock %d after the rebuild, want 10 - 6 ordered = 4", left)
	}
	if _, _, err := r.svc.Place(ctx, request(t, sale, "full", "another", 1)); !errors.Is(err, inventory.ErrLimitReached) {
		t.Errorf("a buyer at the limit bought again after the rebuild: %v", err)
	}
	if _, err := r.svc.Cancel(ctx, one.Buyer, one.ID); err != nil {
		t.Fatal(err)
	}
	if left := r.remaining(t, sale); left != 5 {
		t.Errorf("stock %d after cancelling a 1-unit order, want 5", left)
	}

	// The cancelled order's reservation is gone; only its claim answers a
	// retry now. The store fails every Create, so a retry that got past
	// the claim would fail.
	boom := errors.New("injected: the retry reached the order store")
	r.faulty.err.Store(&boom)
	for _, req := range []order.PlaceRequest{oneReq, full} {
		if _, replayed, err := r.svc.Place(ctx, req); err != nil || !replayed {
			t.Errorf("retry of %s: replayed %v, %v; want a replay", req.Buyer, replayed, err)
		}
	}
	r.faulty.err.Store(nil)
	r.rebuild(t, sale, inventory.Rebuilt{Stock: 5}) // idempotent
}

// TestLostSaleIsNeverReloadedWhole: every path that finds the sale missing
// in Redis (reading it, reconciling, restocking) rebuilds it from the
// orders instead of loading its original total again.
func TestLostSaleIsNeverReloadedWhole(t *testing.T) {
	ctx := context.Background()
	r := newRebuildRig(t, nil, nil)
	sale := r.newSale(t, 10)
	r.place(t, r.svc, sale, "a", 3)
	r.place(t, r.svc, sale, "b", 1)

	r.forget(t, sale)
	if v, err := r.sales.Sale(ctx, sale); err != nil || v.Remaining != 6 {
		t.Errorf("read after the loss: remaining %d, %v; want 6", v.Remaining, err)
	}
	r.forget(t, sale)
	if _, err := r.sales.Reconcile(ctx, sale); err != nil {
		t.Fatal(err)
	}
	if left := r.remaining(t, sale); left != 6 {
		t.Errorf("stock %d after reconciling a lost sale, want 6", left)
	}
	r.forget(t, sale)
	two, _ := inventory.NewQuantity(2)
	if v, err := r.sales.Restock(ctx, sale, two); err != nil || v.Remaining != 8 {
		t.Errorf("restock of a lost sale: remaining %d, %v; want 12 - 4 = 8", v.Remaining, err)
	}
}

// TestRebuildAfterRollback: Redis goes back to an older copy of itself (a
// failover to a lagging replica) and forgets reservations whose orders
// committed. The rebuild takes the stock down to exactly total - units in
// live orders - units held in flight, and selling on until sold out sells
// no unit twice.
func TestRebuildAfterRollback(t *testing.T) {
	ctx := context.Background()
	r := newRebuildRig(t, nil, nil)
	sale := r.newSale(t, 20)
	for i := range 5 {
		r.place(t, r.svc, sale, fmt.Sprint("early-", i), 1)
	}
	one, _ := inventory.NewQuantity(1)
	inFlight := inventory.Reservation{Sale: sale, Buyer: "in-flight", Key: "k", Fingerprint: "fp", Qty: one, ClientIP: "127.0.0.1"}
	if _, err := r.stock.Stock.Reserve(ctx, inFlight); err != nil { // its commit has not happened yet
		t.Fatal(err)
	}
	snap := r.snapshot(t, sale)
	for i := range 5 {
		r.place(t, r.svc, sale, fmt.Sprint("late-", i), 2)
	}
	r.rollBack(t, sale, snap)
	if left := r.remaining(t, sale); left != 14 {
		t.Fatalf("stock %d after the rollback, want the copy's 14", left)
	}

	r.rebuild(t, sale, inventory.Rebuilt{Stock: 4, Added: 5})
	sold := 0
	for i := 0; ; i++ {
		_, _, err := r.svc.Place(ctx, request(t, sale, fmt.Sprint("after-", i), "k", 1))
		if errors.Is(err, inventory.ErrSoldOut) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if sold++; sold > 20 {
			t.Fatal("the sale never sold out")
		}
	}
	if sold != 4 {
		t.Errorf("sold %d after the rebuild, want 20 - 15 ordered - 1 in flight = 4", sold)
	}
	if got := r.liveUnits(t, sale); got != 19 {
		t.Errorf("%d units in live orders, want 19 (the 20th is held in flight)", got)
	}
}

// TestRebuildDropsReservationOfClosedOrder: an order was cancelled in
// PostgreSQL but its release never reached Redis (lost in the rollback);
// its confirmed reservation goes and its units come back.
func TestRebuildDropsReservationOfClosedOrder(t *testing.T) {
	ctx := context.Background()
	r := newRebuildRig(t, nil, nil)
	sale := r.newSale(t, 10)
	gone, _ := r.place(t, r.svc, sale, "gone", 2)
	r.place(t, r.svc, sale, "kept", 1)
	time.Sleep(5 * time.Millisecond)
	if got, err := r.service(t, r.store, time.Millisecond).Reconcile(ctx, sale); err != nil || got.Confirmed != 2 {
		t.Fatalf("reconcile: %+v, %v; want both reservations confirmed", got, err)
	}
	if _, err := r.store.Cancel(ctx, gone.Buyer, gone.ID); err != nil { // PostgreSQL only: the release is lost
		t.Fatal(err)
	}
	if left := r.remaining(t, sale); left != 7 {
		t.Fatalf("stock %d, want 7 while the lost release holds 2 units", left)
	}
	r.rebuild(t, sale, inventory.Rebuilt{Stock: 9, Dropped: 1})
	if left := r.remaining(t, sale); left != 9 {
		t.Errorf("stock %d after the rebuild, want 9", left)
	}
}

// closingLookup is the real order store whose first LiveOrders answer is
// followed by close: an order closes between the rebuild's read of
// PostgreSQL and its Redis script.
type closingLookup struct {
	*orderpg.Store
	once  sync.Once
	close func()
}

func (c *closingLookup) LiveOrders(ctx context.Context, sale inventory.SaleID) ([]inventory.LiveOrder, error) {
	live, err := c.Store.LiveOrders(ctx, sale)
	c.once.Do(c.close)
	return live, err
}

// TestRebuildReleasesOrderClosedMeanwhile: an order cancelled (and
// released, finding nothing to release) after the rebuild read it as live
// must not keep the units the rebuild gave its reservation back.
func TestRebuildReleasesOrderClosedMeanwhile(t *testing.T) {
	ctx := context.Background()
	r := newRebuildRig(t, nil, nil)
	sale := r.newSale(t, 10)
	gone, _ := r.place(t, r.svc, sale, "gone", 2)
	r.place(t, r.svc, sale, "kept", 1)
	r.forget(t, sale)
	lookup := &closingLookup{Store: r.store, close: func() {
		if _, err := r.svc.Cancel(ctx, gone.Buyer, gone.ID); err != nil {
			t.Error(err)
		}
	}}
	got, err := r.service(t, lookup, time.Minute).Rebuild(ctx, sale)
	if err != nil {
		t.Fatal(err)
	}
	want := inventory.Rebuilt{Stock: 9, Added: 2, Released: 1}
	if got != want {
		t.Errorf("rebuild: %+v, want %+v", got, want)
	}
	if left := r.remaining(t, sale); left != 9 {
		t.Errorf("stock %d, want 9: the cancelled order holds nothing", left)
	}
}

// TestWatcherRebuildsAfterRestartOrFlush runs node 1 as a private
// redis-server. Killed with SIGKILL and restarted from an AOF that holds a
// wrong stock (writes lost), it is noticed by its run_id; flushed without
// a restart, by its epoch key. Both times every live sale is rebuilt, at
// once and again after the commit deadline.
func TestWatcherRebuildsAfterRestartOrFlush(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	node := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = node.Close() })
	r := newRebuildRig(t, nil, []*redis.Client{node})
	sale := r.newSale(t, 10)
	for _, b := range []string{"a", "b", "c"} {
		r.place(t, r.svc, sale, b, 1)
	}

	w := invredis.NewWatcher(r.sales, r.stock.Stock, invredis.WatchConfig{Every: 50 * time.Millisecond, Again: 300 * time.Millisecond},
		testenv.Logger(t))
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })
	// A node without an epoch key is new or emptied: the first look
	// counts as a detection.
	waitFor(t, "the first detection's two rounds", func() bool { return w.Stats().Rounds >= 2 })

	// Redis lost the decrements of the three orders, then crashed and
	// restarted from its AOF; fsync always makes the loss what the AOF
	// holds.
	key := r.prefix + ":{sale:" + sale.String() + "}"
	if err := errors.Join(node.ConfigSet(ctx, "appendfsync", "always").Err(), node.HSet(ctx, key, "stock", 10).Err()); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Start()
	waitFor(t, "stock 7 after the restart", func() bool { n, err := r.stock.Remaining(ctx, sale); return err == nil && n == 7 })
	if s := w.Stats(); s.Detections != 2 {
		t.Errorf("detections %d after the restart, want 2", s.Detections)
	}
	waitFor(t, "the second round", func() bool { return w.Stats().Rounds >= 4 })

	if err := node.FlushAll(ctx).Err(); err != nil { // the private server only
		t.Fatal(err)
	}
	waitFor(t, "the flush's two rounds", func() bool { return w.Stats().Rounds >= 6 })
	if left := r.remaining(t, sale); left != 7 {
		t.Errorf("stock %d after the flush, want 7", left)
	}
	if s := w.Stats(); s.Detections != 3 || s.Rebuilt != 6 {
		t.Errorf("stats %+v after the flush, want 3 detections and 6 rebuilds of the one sale", s)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRebuildRemembersClosedKeys: a cancelled order's key stays in its
// sale's closed set after Redis lost the sale, so once the sale sells out
// again the sold-out memory still sends that buyer to PostgreSQL for the
// replay instead of refusing it.
func TestRebuildRemembersClosedKeys(t *testing.T) {
	ctx := context.Background()
	r := newRebuildRig(t, nil, nil)
	sale := r.newSale(t, 5)
	o, _ := r.place(t, r.svc, sale, "changed-mind", 1)
	if _, err := r.svc.Cancel(ctx, o.Buyer, o.ID); err != nil {
		t.Fatal(err)
	}
	closed := r.prefix + ":{sale:" + sale.String() + "}:closed"
	member := o.Buyer.String() + "\x00" + o.Key.String()
	if in, err := r.node1.SIsMember(ctx, closed, member).Result(); err != nil || !in {
		t.Fatalf("the cancel left no closed key (%v, %v)", in, err)
	}
	r.forget(t, sale)
	r.rebuild(t, sale, inventory.Rebuilt{Stock: 5})
	if in, err := r.node1.SIsMember(ctx, closed, member).Result(); err != nil || !in {
		t.Fatalf("the rebuild did not put the cancelled order's key back in the closed set (%v, %v)", in, err)
	}
}
