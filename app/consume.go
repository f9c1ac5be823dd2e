package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/config"
	"flashsale/consumer"
	"flashsale/ledger"
	"flashsale/metrics"
	"flashsale/notify"
	"flashsale/order/orderpg"
)

// The event consumers, by the name flashsale consume takes.
const (
	LedgerConsumer = "inventory" // keeps the stock ledger
	NotifyConsumer = "notify"    // posts the webhooks
)

// ConsumeProcess is one event consumer run alone (flashsale consume
// NAME); run several processes of one kind to share the topic's
// partitions. It opens the databases it writes and nothing else.
type ConsumeProcess struct {
	process
	consumer *consumer.Consumer
}

// NewConsume builds the consumer called name (LedgerConsumer or
// NotifyConsumer), applying migrations first when configured. Close
// releases it.
func NewConsume(ctx context.Context, cfg *config.Config, name string, log *slog.Logger) (*ConsumeProcess, error) {
	if name != LedgerConsumer && name != NotifyConsumer {
		return nil, fmt.Errorf("consume needs %s or %s, not %q", LedgerConsumer, NotifyConsumer, name)
	}
	if name == NotifyConsumer && cfg.WebhookURL == "" {
		return nil, errors.New("consume notify: webhook-url is required")
	}
	// The ledger cancels what an oversell sold, on the order's shard; the
	// webhooks need only database 0's inbox.
	n := 1
	if name == LedgerConsumer {
		n = len(cfg.DatabaseURLs)
	}
	base, err := openProcess(ctx, cfg, log, n)
	if err != nil {
		return nil, err
	}
	p := &ConsumeProcess{process: base}
	var orders *orderpg.Store
	if name == LedgerConsumer {
		orders = orderpg.New(p.pools, p.shards, orderpg.Options{Log: log})
	}
	if p.consumer, err = newConsumer(name, cfg, p.pools[0], orders, p.metrics, cfg.ShutdownTimeout, log); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Run consumes until ctx ends, with the debug listener when configured.
func (p *ConsumeProcess) Run(ctx context.Context) error {
	return withDebug(ctx, p.cfg.DebugAddr, p.metrics, p.log, p.consumer.Run)
}

// Close releases the pools.
func (p *ConsumeProcess) Close() { closePools(p.pools) }

// wireConsumers builds the in-process event consumers on database 0: the
// stock ledger always, the webhook sender when webhook-url is set.
func (a *App) wireConsumers() error {
	names := []string{LedgerConsumer}
	if a.cfg.WebhookURL != "" {
		names = append(names, NotifyConsumer)
	}
	for _, name := range names {
		c, err := newConsumer(name, a.cfg, a.pools[0], a.store, a.metrics, a.cfg.ShutdownTimeout/2, a.log)
		if err != nil {
			return err
		}
		a.consumers, a.consumerNames = append(a.consumers, c), append(a.consumerNames, name)
	}
	return nil
}

// newConsumer builds the consumer called name on db, its inbox's database,
// and registers it with m. orders cancels oversold orders for the ledger.
func newConsumer(name string, cfg *config.Config, db *pgxpool.Pool, orders *orderpg.Store, m *metrics.Metrics,
	closeTimeout time.Duration, log *slog.Logger) (*consumer.Consumer, error) {
	cc := consumer.Config{Name: name, GroupID: cfg.ConsumerGroupPrefix + "-" + name, Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic,
		DeadLetterTopic: cfg.DeadLetterTopic, MaxAttempts: cfg.ConsumerMaxAttempts, CloseTimeout: closeTimeout,
		InboxRetention: cfg.InboxRetention, BatchSize: cfg.ConsumerBatch, Log: log}
	var h consumer.Handler
	if name == LedgerConsumer {
		h = ledger.New(db, m.Oversold(orders), log)
	} else {
		s, err := notify.New(notify.Config{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Timeout: cfg.WebhookTimeout, Log: log})
		if err != nil {
			return nil, err
		}
		h, cc.BatchSize = s, notify.BatchSize
	}
	c, err := consumer.New(cc, db, h)
	if err != nil {
		return nil, err
	}
	m.Consumer(name, c)
	return c, nil
}
