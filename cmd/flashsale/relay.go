package main

import (
	"context"
	"io"
	"log/slog"

	"flashsale/app"
)

// relayCmd runs only the outbox relay: for deployments that keep it out of
// the API instances, or run more relays than API instances.
func relayCmd(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	fs, cfg := newFlagSet("flashsale relay", stderr)
	if err := loadConfig(fs, cfg, args, getenv); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting relay", "config", cfg)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	stop, err := startDebug(ctx, cfg.DebugAddr, a.Metrics(), log)
	if err != nil {
		return err
	}
	defer stop()
	return a.RunRelay(ctx)
}
