package main

import (
	"context"
	"errors"
	"io"

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
	cfg, log, err := load("flashsale consume "+args[0], config.Consume, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	c, err := app.NewConsume(ctx, cfg, args[0], log)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Run(ctx)
}
