package main

import (
	"context"
	"io"

	"flashsale/app"
	"flashsale/config"
)

// relayCmd runs only the outbox relay until the signal context ends.
func relayCmd(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	cfg, log, err := load("flashsale relay", config.Relay, args, getenv, stderr)
	if err != nil {
		return err
	}
	r, err := app.NewRelay(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Run(ctx)
}
