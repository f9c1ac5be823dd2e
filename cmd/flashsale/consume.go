package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"flashsale/app"
	"flashsale/config"
)

// consumeCmd runs one event consumer until the signal context ends:
// inventory keeps the stock ledger, notify posts the webhooks.
func consumeCmd(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	if helpAsked(args) {
		_, _, err := load("flashsale consume inventory|notify", config.Consume, args, getenv, stderr)
		return err
	}
	if len(args) == 0 || (args[0] != app.LedgerConsumer && args[0] != app.NotifyConsumer) {
		return errors.New("consume needs inventory or notify")
	}
	return runProcess(ctx, "consume "+args[0], config.Consume, args[1:], getenv, stderr,
		func(ctx context.Context, cfg *config.Config, log *slog.Logger) (process, error) {
			return app.NewConsume(ctx, cfg, args[0], log)
		})
}
