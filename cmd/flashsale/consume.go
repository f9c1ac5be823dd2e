package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/api"
	"flashsale/app"
	"flashsale/config"
	"flashsale/consumer"
	"flashsale/dbschema"
	"flashsale/ledger"
	"flashsale/metrics"
	"flashsale/notify"
	"flashsale/shard"
)

// consumeCmd runs one event consumer until the signal context ends:
// inventory keeps the stock ledger, notify posts the webhooks. Run several
// processes of one kind to share the topic's partitions.
func consumeCmd(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "inventory" && args[0] != "notify") {
		return errors.New("consume needs inventory or notify")
	}
	which := args[0]
	fs, cfg := newFlagSet("flashsale consume "+which, stderr)
	// The consumers verify no tokens; a placeholder keeps validation
	// honest about everything else.
	withSecret := func(k string) string {
		if v := getenv(k); v != "" || k != config.EnvPrefix+"JWT_SECRET" {
			return v
		}
		return "consumers-need-no-jwt-secret"
	}
	if err := loadConfig(fs, cfg, args[1:], withSecret); err != nil {
		return err
	}
	if which == "notify" && cfg.WebhookURL == "" {
		return errors.New("consume notify: webhook-url is required")
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting consumer", "consumer", which, "config", cfg)
	if cfg.MigrateOnStart {
		m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
		if err != nil {
			return err
		}
		if err := dbschema.New(cfg.DatabaseURLs, m).Up(ctx); err != nil {
			return fmt.Errorf("consume: migrate: %w", err)
		}
	}
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURLs[0])
	if err != nil {
		return fmt.Errorf("consume: database url: %w", err)
	}
	pc.MaxConns = int32(cfg.DBMaxConns)
	db, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("consume: database pool: %w", err)
	}
	defer db.Close()

	var h consumer.Handler
	batch := 0 // the consumer's default
	m := metrics.New(api.Outcome)
	switch which {
	case "inventory":
		// The order service cancels what an oversell sold; it needs the
		// whole service wired.
		acfg := *cfg
		acfg.MigrateOnStart, acfg.ConsumersEnabled = false, false
		a, err := app.New(ctx, &acfg, log)
		if err != nil {
			return err
		}
		defer a.Close()
		h = ledger.New(db, m.Oversold(a.OrderStore()), log)
	case "notify":
		s, err := notify.New(notify.Config{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Timeout: cfg.WebhookTimeout, Log: log})
		if err != nil {
			return err
		}
		h, batch = s, notify.BatchSize
	}
	c, err := consumer.New(consumer.Config{Name: which, GroupID: cfg.ConsumerGroupPrefix + "-" + which, Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic,
		DeadLetterTopic: cfg.DeadLetterTopic, MaxAttempts: cfg.ConsumerMaxAttempts, CloseTimeout: cfg.ShutdownTimeout, BatchSize: batch, Log: log}, db, h)
	if err != nil {
		return err
	}
	m.Consumer(which, c)
	stop, err := startDebug(ctx, cfg.DebugAddr, m, log)
	if err != nil {
		return err
	}
	defer stop()
	return c.Run(ctx)
}
