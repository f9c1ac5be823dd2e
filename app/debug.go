package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"golang.org/x/sync/errgroup"

	"flashsale/metrics"
)

// DebugHandler serves m's Prometheus metrics (/metrics) and the runtime
// profiles (net/http/pprof) on their own listener, never on the API's:
// both reveal internals, and profiles cost CPU.
func DebugHandler(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Metrics is the instance's registry: the buy path's decorators, the
// relay and the in-process consumers report to it.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// withDebug runs run, serving m's metrics and the profiles on addr
// meanwhile (nothing when addr is empty); the listener closes when run
// returns, and its failure is reported with run's error.
func withDebug(ctx context.Context, addr string, m *metrics.Metrics, log *slog.Logger, run func(context.Context) error) error {
	if addr == "" {
		return run(ctx)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: DebugHandler(m), ReadHeaderTimeout: 5 * time.Second}
	var g errgroup.Group
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("app: debug listener: %w", err)
		}
		return nil
	})
	log.Info("serving metrics and profiles", "addr", ln.Addr().String())
	err = run(ctx)
	_ = srv.Close()
	return errors.Join(err, g.Wait())
}
