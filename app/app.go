// Package app wires flashsale by hand from its Config: the pools, clients,
// stores, services and the HTTP handler, and runs the long-lived parts
// until told to stop. cmd/flashsale and the end-to-end tests share it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"flashsale/api"
	"flashsale/auth"
	"flashsale/breaker"
	"flashsale/config"
	"flashsale/consumer"
	"flashsale/dashboard"
	"flashsale/dbschema"
	"flashsale/inventory"
	"flashsale/inventory/invpg"
	"flashsale/inventory/invredis"
	"flashsale/lease"
	"flashsale/ledger"
	"flashsale/live"
	"flashsale/metrics"
	"flashsale/notify"
	"flashsale/order"
	"flashsale/order/orderpg"
	"flashsale/outbox"
	"flashsale/ratelimit"
	"flashsale/shard"
)

// App is one flashsale instance.
type App struct {
	cfg       *config.Config
	log       *slog.Logger
	pools     []*pgxpool.Pool
	redis     []*redis.Client // node 1 first; the buy path's client
	lockNodes []*redis.Client // short retries: a down node must not stall a lock
	store     *orderpg.Store
	reserver  *invredis.BatchedStock
	soldOut   *invredis.SoldOut
	sales     *inventory.Service
	watcher   *invredis.Watcher // rebuilds Redis from PostgreSQL when node 1 lost data
	orders    *order.Service
	expirer   *order.Expirer
	handler   http.Handler
	writer    *outbox.Writer
	relay     *outbox.Relay
	consumers []*consumer.Consumer
	metrics   *metrics.Metrics
	breakers  breakers
	figures   *metrics.Live // the sale page's figures
	closing   chan struct{} // closed when the server shuts down: ends the sale page's streams
	closeOnce sync.Once
	hub       *live.Hub       // this instance's event streams
	publisher *live.Publisher // order transitions, to every instance's hub
}

// New connects to every dependency, applies migrations when configured and
// builds the handler. Close releases what New opened.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, metrics: metrics.New(api.Outcome)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		return nil, err
	}
	if cfg.MigrateOnStart {
		if err := dbschema.New(cfg.DatabaseURLs, m).Up(ctx); err != nil {
			return nil, fmt.Errorf("app: migrate: %w", err)
		}
	}
	if err := a.connect(ctx); err != nil {
		return nil, err
	}
	a.wire(m)
	if cfg.ConsumersEnabled {
		if err := a.wireConsumers(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *App) connect(ctx context.Context) error {
	for _, u := range a.cfg.DatabaseURLs {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			return fmt.Errorf("app: database url: %w", err)
		}
		pc.MaxConns = int32(a.cfg.DBMaxConns)
		a.failFastPool(pc)
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return fmt.Errorf("app: database pool: %w", err)
		}
		a.pools = append(a.pools, p)
	}
	for _, addr := range a.cfg.RedisAddrs {
		a.redis = append(a.redis, redis.NewClient(a.redisOptions(addr)))
		a.lockNodes = append(a.lockNodes, redis.NewClient(&redis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true,
			DialTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}))
	}
	return nil
}

func (a *App) wire(m shard.Map) {
	cfg := a.cfg
	node1 := a.redis[0]
	stock := invredis.NewStock(node1, cfg.RedisPrefix, ratelimit.Limits{UserRate: cfg.UserRate, UserBurst: cfg.UserBurst,
		IPRate: cfg.IPRate, IPBurst: cfg.IPBurst})
	saleStore := invpg.NewSaleStore(a.pools[0])
	// Only the buy path batches: a flash sale's burst is where round trips
	// add up. Two round trips in flight: Redis runs one batch while the
	// next one's request and the last one's reply travel.
	a.reserver = invredis.NewBatchedStock(stock, cfg.ReserveBatch, 2)
	a.store = orderpg.New(a.pools, m, orderpg.Options{MaxBatch: cfg.CommitBatch, Workers: 2,
		OnCommit: func(s shard.ID) { a.relay.Wake(s.Schema()) }, Log: a.log})
	a.soldOut = invredis.NewSoldOut(stock, a.store, a.log)
	locker := lease.NewLocker(a.lockNodes, cfg.RedisPrefix, 10*time.Second, saleStore.NextToken)
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
	a.expirer = order.NewExpirer(live.ExpiryStore(a.store, notify), stock, a.soldOut, order.ExpirerConfig{Interval: cfg.ExpiryInterval}, a.log)
	a.writer = outbox.NewWriter(cfg.KafkaBrokers, cfg.KafkaTopic)
	a.relay = outbox.New(relayTargets(a.pools, m), a.writer, locker, outbox.Config{Holder: holderName(),
		Source: "/flashsale", BatchSize: cfg.RelayBatch, Poll: time.Second, LeaseTTL: cfg.RelayLeaseTTL,
		Retention: cfg.OutboxRetention, RetryDelay: 50 * time.Millisecond}, a.log)
	a.metrics.Relay(a.relay.Stats())
	// The sale page's figures: latencies over the last 10 s, from what the
	// decorators count anyway.
	a.figures, a.closing = a.metrics.Live(time.Second, 10), make(chan struct{})
	a.handler = api.NewHandler(api.Deps{
		Orders: a.orders, Sales: a.sales, Verifier: auth.NewVerifier(cfg.JWTSecret),
		Limiter: redis_rate.NewLimiter(node1), KeyPrefix: cfg.RedisPrefix,
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

// relayTargets lists every shard's outbox on the database that holds it.
func relayTargets(pools []*pgxpool.Pool, m shard.Map) []outbox.Target {
	targets := make([]outbox.Target, 0, m.Shards())
	for s := range shard.ID(m.Shards()) {
		targets = append(targets, outbox.Target{Pool: pools[m.Database(s)], Schema: s.Schema(), Shard: int(s)})
	}
	return targets
}

// holderName names this instance in the relay leases it holds.
func holderName() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// RunRelay creates the topic when missing (retrying while Kafka is away;
// orders keep landing in the outbox meanwhile), then relays until ctx ends.
func (a *App) RunRelay(ctx context.Context) error {
	for {
		err := outbox.EnsureTopic(ctx, a.cfg.KafkaBrokers, a.cfg.KafkaTopic, a.cfg.KafkaPartitions, a.cfg.KafkaReplication)
		if err == nil {
			break
		}
		a.log.WarnContext(ctx, "kafka topic not ready, retrying", "topic", a.cfg.KafkaTopic, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	return a.relay.Run(ctx)
}

// wireConsumers builds the in-process event consumers on database 0: the
// stock ledger always, the webhook sender when webhook-url is set.
func (a *App) wireConsumers() error {
	cfg := a.cfg
	base := consumer.Config{Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic, DeadLetterTopic: cfg.DeadLetterTopic,
		MaxAttempts: cfg.ConsumerMaxAttempts, CloseTimeout: cfg.ShutdownTimeout / 2, InboxRetention: cfg.InboxRetention, Log: a.log}
	inv := base
	inv.Name, inv.GroupID = "inventory", cfg.ConsumerGroupPrefix+"-inventory"
	c, err := consumer.New(inv, a.pools[0], ledger.New(a.pools[0], a.metrics.Oversold(a.store), a.log))
	if err != nil {
		return err
	}
	a.consumers = append(a.consumers, c)
	a.metrics.Consumer(inv.Name, c)
	if cfg.WebhookURL == "" {
		return nil
	}
	sender, err := notify.New(notify.Config{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Timeout: cfg.WebhookTimeout, Log: a.log})
	if err != nil {
		return err
	}
	n := base
	n.Name, n.GroupID, n.BatchSize = "notify", cfg.ConsumerGroupPrefix+"-notify", notify.BatchSize
	if c, err = consumer.New(n, a.pools[0], sender); err != nil {
		return err
	}
	a.consumers = append(a.consumers, c)
	a.metrics.Consumer(n.Name, c)
	return nil
}

// Consumers are the in-process event consumers, for their lag and counters.
func (a *App) Consumers() []*consumer.Consumer { return a.consumers }

// Watcher watches Redis node 1 for lost data, for its statistics.
func (a *App) Watcher() *invredis.Watcher { return a.watcher }

// Relay is the outbox relay, for its statistics.
func (a *App) Relay() *outbox.Relay { return a.relay }

// readiness lists what /readyz checks: every shard database, Redis node 1
// and Kafka, and that no circuit breaker is open.
func (a *App) readiness() []api.Check {
	var checks []api.Check
	for i, p := range a.pools {
		checks = append(checks, api.Check{Name: fmt.Sprintf("postgres[%d]", i), Check: p.Ping})
	}
	checks = append(checks, api.Check{Name: "redis", Check: func(ctx context.Context) error {
		return a.redis[0].Ping(ctx).Err()
	}})
	checks = append(checks, api.Check{Name: "kafka", Check: a.pingKafka})
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

// transferCheck is how often interrupted stock transfers between databases
// are looked for and finished.
const transferCheck = 5 * time.Second

// Serve runs the HTTP server on ln and the background loops until ctx
// ends, then shuts down in order: stop accepting and finish in-flight
// requests, then commit what is queued and stop the loops, all within the
// shutdown timeout.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout: a.cfg.ReadTimeout, WriteTimeout: a.cfg.WriteTimeout, IdleTimeout: a.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	// Shutdown waits for handlers; the sale page's streams end only when told.
	srv.RegisterOnShutdown(func() { a.closeOnce.Do(func() { close(a.closing) }) })
	// The loops outlive ctx: orders still in flight need the committer.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	bg, bgCtx := errgroup.WithContext(bgCtx)
	bg.Go(func() error { return a.store.Run(bgCtx) })
	bg.Go(func() error { return a.soldOut.Run(bgCtx) })
	bg.Go(func() error { return a.reserver.Run(bgCtx) })
	bg.Go(func() error { return a.store.RunTransfers(bgCtx, transferCheck) })
	bg.Go(func() error { return a.watcher.Run(bgCtx) })
	bg.Go(func() error { return a.figures.Run(bgCtx) })
	bg.Go(func() error { return a.hub.Run(bgCtx) })
	bg.Go(func() error { return a.publisher.Run(bgCtx) })
	// Open streams would hold the shutdown up to its timeout: they end
	// when it begins.
	srv.RegisterOnShutdown(a.hub.Close)
	if a.cfg.RelayEnabled {
		bg.Go(func() error { return a.RunRelay(bgCtx) })
	}
	for _, c := range a.consumers {
		bg.Go(func() error { return c.Run(bgCtx) })
	}
	if a.cfg.ReconcileInterval > 0 {
		bg.Go(func() error { return a.sales.RunReconciler(bgCtx, a.cfg.ReconcileInterval) })
	}
	if a.cfg.ExpiryInterval > 0 {
		bg.Go(func() error { return a.expirer.Run(bgCtx) })
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.log.Info("serving", "addr", ln.Addr().String())
	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer cancel()
		err = srv.Shutdown(sctx)
		<-serveErr
	}
	stopBg()
	if bgErr := bg.Wait(); bgErr != nil {
		err = errors.Join(err, bgErr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases every pool and client.
func (a *App) Close() {
	if a.writer != nil {
		_ = a.writer.Close()
	}
	for _, c := range append(a.redis, a.lockNodes...) {
		_ = c.Close()
	}
	for _, p := range a.pools {
		p.Close()
	}
}
