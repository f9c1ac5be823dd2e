package main

import (
	"context"
	"io"
	"log/slog"
	"net"

	"flashsale/app"
)

func serve(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	fs, cfg := newFlagSet("flashsale serve", stderr)
	if err := loadConfig(fs, cfg, args, getenv); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting", "config", cfg)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}
