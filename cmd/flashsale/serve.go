package main

import (
	"context"
	"io"

	"flashsale/app"
	"flashsale/config"
)

// serveCmd runs the HTTP API and its background loops until the signal
// context ends or one of the loops dies.
func serveCmd(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	cfg, log, err := load("flashsale serve", config.Serve, args, getenv, stderr)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}
