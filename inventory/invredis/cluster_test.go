package invredis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/inventory/invredis"
	"flashsale/ratelimit"
)

// newClusterFixture is the live stock on a three-master Redis Cluster of
// the test's own, reached through a cluster client as the service reaches
// the stock cluster.
func newClusterFixture(t testing.TB) (fixture, *redis.ClusterClient) {
	t.Helper()
	cluster := testenv.StartRedisCluster(t)
	cc := cluster.Client()
	t.Cleanup(func() { _ = cc.Close() })
	prefix := "fs-" + t.Name()
	return fixture{prefix: prefix,
		stock: invredis.NewStock(cc, prefix, ratelimit.Limits{UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000})}, cc
}

// TestClusterReservationsUnderContention releases 600 buyers at once on
// three sales of 50 units through the batched stock on a Redis Cluster:
// batches mix the sales, so one pipeline spans several masters, and each
// sale still sells exactly its stock, no more.
func TestClusterReservationsUnderContention(t *testing.T) {
	f, _ := newClusterFixture(t)
	sales := []inventory.Sale{f.newSale(t, 50), f.newSale(t, 50), f.newSale(t, 50)}
	b := runBatched(t, f.stock, 64)
	one, _ := inventory.NewQuantity(1)
	var reserved [3]atomic.Int32
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range 600 {
		wg.Go(func() {
			<-gate
			_, err := b.Reserve(context.Background(), inventory.Reservation{Sale: sales[i%3].ID, Buyer: fmt.Sprintf("b%d", i),
				Key: "k", Fingerprint: "fp", Qty: one, ClientIP: fmt.Sprintf("10.0.0.%d", i%200)})
			switch {
			case err == nil:
				reserved[i%3].Add(1)
			case !errors.Is(err, inventory.ErrSoldOut):
				t.Errorf("buyer %d: %v", i, err)
			}
		})
	}
	close(gate)
	wg.Wait()
	for i, s := range sales {
		left, err := f.stock.Remaining(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := reserved[i].Load(); got != 50 || left != 0 {
			t.Errorf("sale %d: %d reserved, %d left; want 50 and 0", i, got, left)
		}
	}
}

// TestClusterRebuild rebuilds a sale with live orders on the cluster: the
// orders' reservations and idempotency claims are back in the sale's slot,
// so a retry of one of them is recognised, and the stock counts them.
func TestClusterRebuild(t *testing.T) {
	f, _ := newClusterFixture(t)
	sale := f.newSale(t, 10)
	live := []inventory.LiveOrder{{Buyer: "b1", Key: "k1", Qty: 2, RequestHash: []byte{1}},
		{Buyer: "b2", Key: "k2", Qty: 1, RequestHash: []byte{2}}}
	got, err := f.stock.Rebuild(context.Background(), sale, live, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stock != 7 || got.Added != 2 {
		t.Errorf("rebuilt %+v; want 7 left, 2 added", got)
	}
	holds, err := f.stock.Holds(context.Background(), sale.ID)
	if err != nil || len(holds) != 2 {
		t.Fatalf("holds %v, %v; want the two live orders", holds, err)
	}
	one, _ := inventory.NewQuantity(1)
	_, err = f.stock.Reserve(context.Background(), inventory.Reservation{Sale: sale.ID, Buyer: "b1", Key: "k1",
		Fingerprint: "01", Qty: one, ClientIP: "127.0.0.1"})
	if !errors.Is(err, inventory.ErrKeyClaimed) {
		t.Errorf("retry of a rebuilt order: %v; want ErrKeyClaimed", err)
	}
}

// TestClusterSoldOutReopensOnRelease marks a sold-out sale in the memory
// of an instance subscribed through the cluster client; a release, which
// release.lua announces with PUBLISH on whichever master holds the sale,
// reaches the subscription and reopens the sale. The periodic look at the
// stock is turned off, so only the announcement can reopen it.
func TestClusterSoldOutReopensOnRelease(t *testing.T) {
	f, cc := newClusterFixture(t)
	sale := f.newSale(t, 1)
	one, _ := inventory.NewQuantity(1)
	r := inventory.Reservation{Sale: sale.ID, Buyer: "b1", Key: "k1", Fingerprint: "fp", Qty: one, ClientIP: "127.0.0.1"}
	if _, err := f.stock.Reserve(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	memory := invredis.NewSoldOut(f.stock, liveUnits(1), testenv.Logger(t))
	memory.SetRecheck(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = memory.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitSubscribed(t, cc, f.stock.Channel())
	// Redis counting the subscriber is not enough: the memory forgets every
	// mark when it handles the confirmation, which may come after Mark.
	for deadline := time.Now().Add(10 * time.Second); memory.Subscriptions() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sold-out memory did not handle its subscription within 10 s")
		}
	}
	memory.Mark(context.Background(), sale.ID)
	if v := memory.Check(sale.ID, "b2", "k2"); v != inventory.VerdictGone {
		t.Fatalf("verdict for another buyer once sold out: %v; want gone", v)
	}
	if _, err := f.stock.Release(context.Background(), sale.ID, "b1", "k1", true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for memory.Check(sale.ID, "b2", "k2") != inventory.VerdictOpen {
		if time.Now().After(deadline) {
			t.Fatal("the release's announcement did not reopen the sale within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// liveUnits answers that every sale has n units in live orders.
type liveUnits int

func (n liveUnits) LiveUnits(context.Context, inventory.SaleID) (int, error) { return int(n), nil }

// waitSubscribed waits until some master counts a subscriber of channel.
func waitSubscribed(t testing.TB, cc *redis.ClusterClient, channel string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var subs atomic.Int64
		_ = cc.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
			m, err := n.PubSubNumSub(ctx, channel).Result()
			subs.Add(m[channel])
			return err
		})
		if subs.Load() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sold-out memory did not subscribe within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rebuilds counts the watcher's calls for a rebuild of every live sale.
type rebuilds struct{ n atomic.Int64 }

func (r *rebuilds) RebuildAll(context.Context) (int, error) { r.n.Add(1); return 0, nil }

// TestClusterWatcherSeesEveryMaster empties each master of the cluster in
// turn: the watcher keeps an epoch key on every master, so it notices
// whichever one lost its data, not only the one a single key lands on.
func TestClusterWatcherSeesEveryMaster(t *testing.T) {
	f, cc := newClusterFixture(t)
	rb := &rebuilds{}
	w := invredis.NewWatcher(rb, f.stock, invredis.WatchConfig{Every: 20 * time.Millisecond, Again: time.Hour}, testenv.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitDetections(t, w, 1) // the first look creates the epoch keys
	steady(t, w, 1)
	var mu sync.Mutex
	var masters []*redis.Client
	_ = cc.ForEachMaster(context.Background(), func(_ context.Context, n *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, n)
		return nil
	})
	if len(masters) != 3 {
		t.Fatalf("%d masters; want 3", len(masters))
	}
	for i, m := range masters {
		if err := m.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		waitDetections(t, w, int64(i+2))
		steady(t, w, int64(i+2))
	}
}

// steady checks that five more looks at an unchanged cluster detect
// nothing: a detection must come from the data lost, not from looking.
func steady(t testing.TB, w *invredis.Watcher, want int64) {
	t.Helper()
	from := w.Stats().Looks
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Looks < from+5 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher made no five looks within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := w.Stats().Detections; got != want {
		t.Fatalf("%d detections on an unchanged cluster; want %d", got, want)
	}
}

func waitDetections(t testing.TB, w *invredis.Watcher, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Detections < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d detections within 10 s; want %d", w.Stats().Detections, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
