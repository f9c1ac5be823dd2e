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
	lc := &net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		dln, err := lc.Listen(ctx, "tcp", cfg.DebugAddr)
		if err != nil {
			return err
		}
		stop := serveDebug(dln, a.DebugHandler(), log)
		defer stop()
	}
	return a.Serve(ctx, ln)
}

// serveDebug serves the profiles and metrics on ln until stop is called;
// stop returns once the server's goroutine has ended.
func serveDebug(ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener failed", "err", err)
		}
	}()
	log.Info("serving profiles and metrics", "addr", ln.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}
}
