// Package app wires flashsale by hand from its Config: the pools, clients,
// stores, services and the HTTP handler, and runs the long-lived parts
// until told to stop. cmd/flashsale and the end-to-end tests share it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"flashsale/api"
	"flashsale/auth"
	"flashsale/breaker"
	"flashsale/config"
	"flashsale/consumer"
	"flashsale/dashboard"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/inventory/invredis"
	"flashsale/live"
	"flashsale/metrics"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/outbox"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// App is one flashsale instance.
type App struct {
	process                             // config, log, metrics, databases
	redis         []*redis.Client       // node 1 first; the buy path's client
	lockNodes     []*redis.Client       // short retries: a down node must not stall a lock
	stockRdb      redis.UniversalClient // node 1, or the stock's Redis Cluster (stockredis.go)
	rebuildRdb    redis.UniversalClient // the same, with the rebuilds' timeouts
	store         *orderpg.Store
	reserver      *invredis.BatchedStock
	soldOut       *invredis.SoldOut
	sales         *inventory.Service
	watcher       *invredis.Watcher // rebuilds Redis from PostgreSQL when node 1 lost data
	orders        *order.Service
	expirer       *order.Expirer
	handler       http.Handler
	writer        *outbox.Writer
	relay         *outbox.Relay
	waker         *outbox.Waker // wakes the relay holding a shard, here or in another instance
	consumers     []*consumer.Consumer
	consumerNames []string // of each consumer, for the logs
	breakers      breakers
	figures       *metrics.Live // the sale page's figures
	closing       chan struct{} // closed when the server shuts down: ends the sale page's streams
	closeOnce     sync.Once
	died          atomic.Pointer[error] // the first background loop to die, which ends Serve
	hub           *live.Hub             // this instance's event streams
	publisher     *live.Publisher       // order transitions, to every instance's hub
}

// New connects to every dependency, applies migrations when configured and
// builds the handler. Close releases what New opened.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *App, err error) {
	base, err := openProcess(ctx, cfg, log, len(cfg.DatabaseURLs))
	if err != nil {
		return nil, err
	}
	a := &App{process: base}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.connectRedis()
	a.wire(base.shards)
	if cfg.ConsumersEnabled {
		if err := a.wireConsumers(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// connectRedis makes the buy path's client and the lock client of each
// Redis node; they dial when first used.
func (a *App) connectRedis() {
	for _, addr := range a.cfg.RedisAddrs {
		a.redis = append(a.redis, redis.NewClient(a.redisOptions(addr)))
	}
	a.lockNodes = openLockNodes(a.cfg)
	a.stockRdb = a.connectStock()
	a.rebuildRdb = a.connectRebuild()
}

func (a *App) wire(m shard.Map) {
	cfg := a.cfg
	node1 := a.redis[0]
	stock := invredis.NewStock(a.stockRdb, cfg.RedisPrefix, ratelimit.Limits{UserRate: cfg.UserRate, UserBurst: cfg.UserBurst,
		IPRate: cfg.IPRate, IPBurst: cfg.IPBurst})
	stock.RebuildWith(a.rebuildRdb)
	saleStore := invpg.NewSaleStore(a.pools[0])
	// Only the buy path batches: a flash sale's burst is where round trips
	// add up. Two round trips in flight: Redis runs one batch while the
	// next one's request and the last one's reply travel.
	a.reserver = invredis.NewBatchedStock(stock, cfg.ReserveBatch, 2)
	locker := newLocker(cfg, a.pools[0], a.lockNodes, saleLockTTL)
	// The relay exists before the store that wakes it on each commit.
	a.writer = outbox.NewWriter(cfg.KafkaBrokers, cfg.KafkaTopic)
	a.relay = newRelay(cfg, a.pools, m, a.writer, newLocker(cfg, a.pools[0], a.lockNodes, cfg.RelayLeaseTTL), a.lockNodes[0], a.log)
	a.metrics.Relay(a.relay.Stats())
	waker := outbox.NewWaker(a.relay, a.lockNodes[0], cfg.RedisPrefix, a.log)
	a.waker = waker
	a.store = orderpg.New(a.pools, m, orderpg.Options{MaxBatch: cfg.CommitBatch, Workers: cfg.CommitWorkers,
		OnCommit: func(s shard.ID) { waker.Committed(int(s)) }, Log: a.log})
	a.soldOut = invredis.NewSoldOut(stock, a.store, a.log)
	a.sales = inventory.NewService(saleStore, stock, a.soldOut, invredis.Locker{L: locker}, a.store, a.store, cfg.ReservationGrace, a.log)
	// The second round comes past the commit deadline (plus a second of
	// clock skew) of any reservation in flight when node 1 lost it.
	a.watcher = invredis.NewWatcher(a.sales, stock, invredis.WatchConfig{Every: time.Second, Again: cfg.CommitDeadline + time.Second}, a.log)
	a.metrics.RedisWatch(a.watcher)
	notify := a.wireLive(node1)
	// The buy path's dependencies, measured as the order service sees them:
	// outside the breakers, so their fast refusals count too.
	a.breakers = a.newBreakers()
	a.orders = order.NewService(live.OrderStore(a.metrics.Store(breaker.Store(a.store, m, a.breakers.dbs)), notify),
		a.metrics.Stock(breaker.Stock(a.reserver, a.breakers.redis)), inventory.NewCatalog(breaker.Sales(saleStore, a.breakers.dbs[0])),
		a.metrics.SoldOut(a.soldOut), order.Config{
			PaymentWindow: cfg.PaymentWindow, CommitDeadline: cfg.CommitDeadline, MaxInFlight: cfg.MaxInFlight}, a.log)
	a.metrics.Abandoner(a.orders.Abandoner())
	a.metrics.Confirmer(a.orders.Confirmer())
	a.expirer = order.NewExpirer(live.ExpiryStore(a.store, notify), stock, a.soldOut, order.ExpirerConfig{Interval: cfg.ExpiryInterval}, a.log)
	// The sale page's figures: latencies over the last 10 s, from what the
	// decorators count anyway.
	a.figures, a.closing = a.metrics.Live(time.Second, 10), make(chan struct{})
	a.handler = api.NewHandler(api.Deps{
		Orders: a.orders, Sales: a.sales, Verifier: auth.NewVerifier(cfg.JWTSecret),
		Limiter: redis_rate.NewLimiter(a.stockRdb), KeyPrefix: cfg.RedisPrefix,
		Limits:         ratelimit.Limits{UserRate: cfg.UserRate, UserBurst: cfg.UserBurst, IPRate: cfg.IPRate, IPBurst: cfg.IPBurst},
		TrustedProxies: cfg.TrustedProxies, MaxBodyBytes: cfg.MaxBodyBytes, Ready: a.readiness(), Log: a.log,
		Page: dashboard.Handler(), Figures: a.figures.JSON, Closing: a.closing,
		Observer: a.metrics.HTTP(), AccessLog: api.AccessLog(cfg.AccessLog),
		Live: a.hub, StreamWriteTimeout: cfg.WriteTimeout,
	})
}

// wireLive builds the event streams' hub and publisher on one channel of
// node 1 under the deployment's prefix, and returns what the order stores
// tell of each committed transition.
func (a *App) wireLive(node1 *redis.Client) live.Notify {
	channel := a.cfg.RedisPrefix + ":live"
	a.hub = live.NewHub(node1, live.HubConfig{Channel: channel, Log: a.log})
	a.publisher = live.NewPublisher(node1, channel, a.log)
	return func(o order.Order) { a.publisher.PublishFunc(func() *live.Event { return api.OrderEvent(o) }) }
}

// Hub is the instance's event-stream hub, for its statistics.
func (a *App) Hub() *live.Hub { return a.hub }

// Consumers are the in-process event consumers, for their lag and counters.
func (a *App) Consumers() []*consumer.Consumer { return a.consumers }

// Watcher watches Redis node 1 for lost data, for its statistics.
func (a *App) Watcher() *invredis.Watcher { return a.watcher }

// Relay is the outbox relay, for its statistics.
func (a *App) Relay() *outbox.Relay { return a.relay }

// readiness lists what /readyz checks: every shard database, Redis node 1
// and Kafka, that no circuit breaker is open and that no background loop
// has died.
func (a *App) readiness() []api.Check {
	var checks []api.Check
	for i, p := range a.pools {
		checks = append(checks, api.Check{Name: fmt.Sprintf("postgres[%d]", i), Check: p.Ping})
	}
	checks = append(checks, api.Check{Name: "redis", Check: a.pingStock})
	checks = append(checks, api.Check{Name: "kafka", Check: a.pingKafka})
	checks = append(checks, api.Check{Name: "loops", Check: a.loopsAlive})
	return append(checks, a.breakers.checks()...)
}

// pingKafka asks any broker for the cluster metadata.
func (a *App) pingKafka(ctx context.Context) error {
	var errs []error
	for _, b := range a.cfg.KafkaBrokers {
		conn, err := (&kafka.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		_, err = conn.Brokers()
		_ = conn.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Handler is the HTTP API.
func (a *App) Handler() http.Handler { return a.handler }

// Orders is the order service, for in-process tools and tests.
func (a *App) Orders() *order.Service { return a.orders }

// OrderStore is the sharded order store; it cancels oversold orders for
// the ledger.
func (a *App) OrderStore() *orderpg.Store { return a.store }

// Sales is the inventory service, for in-process tools and tests.
func (a *App) Sales() *inventory.Service { return a.sales }

// Close releases every pool and client.
func (a *App) Close() {
	if a.writer != nil {
		_ = a.writer.Close()
	}
	a.closeStock()
	for _, c := range append(a.redis, a.lockNodes...) {
		_ = c.Close()
	}
	closePools(a.pools)
}
