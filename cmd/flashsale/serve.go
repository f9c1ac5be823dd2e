package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"flashsale/app"
	"flashsale/metrics"
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
	stop, err := startDebug(ctx, cfg.DebugAddr, a.Metrics(), log)
	if err != nil {
		return err
	}
	defer stop()
	return a.Serve(ctx, ln)
}

// startDebug serves m's metrics and the profiles on addr (nothing when
// addr is empty) until stop is called; stop returns once the server's
// goroutine has ended.
func startDebug(ctx context.Context, addr string, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: app.DebugHandler(m), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener failed", "err", err)
		}
	}()
	log.Info("serving metrics and profiles", "addr", ln.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}
