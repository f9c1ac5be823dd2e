package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
)

// transferCheck is how often interrupted stock transfers between databases
// are looked for and finished.
const transferCheck = 5 * time.Second

// deadLoopDrain is how long an instance whose background loop died keeps
// answering /readyz not-ready before it shuts down, so that a load
// balancer's probe sees it leave rather than a refused connection.
const deadLoopDrain = 2 * time.Second

// loop is one of the instance's background loops, named for the logs.
type loop struct {
	name string
	run  func(context.Context) error
}

// loops are the background loops Serve runs beside the HTTP server.
func (a *App) loops() []loop {
	ls := []loop{{"committer", a.store.Run}, {"sold-out memory", a.soldOut.Run}, {"reservation batcher", a.reserver.Run},
		{"transfers", func(ctx context.Context) error { return a.store.RunTransfers(ctx, transferCheck) }},
		{"redis watcher", a.watcher.Run}, {"sale figures", a.figures.Run}, {"live hub", a.hub.Run}, {"live publisher", a.publisher.Run},
		{"relay waker", a.waker.Run}, {"abandoner", a.orders.Abandoner().Run},
		{"confirmer", a.orders.Confirmer().Run}}
	if a.cfg.RelayEnabled {
		ls = append(ls, loop{"relay", func(ctx context.Context) error { return runRelay(ctx, a.cfg, a.relay, a.log) }})
	}
	for i, c := range a.consumers {
		ls = append(ls, loop{"consumer " + a.consumerNames[i], c.Run})
	}
	if a.cfg.ReconcileInterval > 0 {
		ls = append(ls, loop{"reconciler", func(ctx context.Context) error { return a.sales.RunReconciler(ctx, a.cfg.ReconcileInterval) }})
	}
	if a.cfg.ExpiryInterval > 0 {
		ls = append(ls, loop{"expirer", a.expirer.Run})
	}
	return ls
}

// Run serves the HTTP API on the configured address, with the debug
// listener when configured, until ctx ends or a background loop dies
// (flashsale serve).
func (a *App) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", a.cfg.HTTPAddr)
	if err != nil {
		return err
	}
	return withDebug(ctx, a.cfg.DebugAddr, a.metrics, a.log, func(ctx context.Context) error { return a.Serve(ctx, ln) })
}

// Serve runs the HTTP server on ln and the background loops until ctx
// ends, then shuts down in order: stop accepting and finish in-flight
// requests, then commit what is queued and stop the loops, all within the
// shutdown timeout. A loop that dies ends Serve with its error: /readyz
// answers not ready at once, the server shuts down deadLoopDrain later.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	return a.serve(ctx, ln, a.loops())
}

func (a *App) serve(ctx context.Context, ln net.Listener, loops []loop) error {
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout: a.cfg.ReadTimeout, WriteTimeout: a.cfg.WriteTimeout, IdleTimeout: a.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	// Shutdown waits for handlers; the sale page's streams end only when told.
	srv.RegisterOnShutdown(func() { a.closeOnce.Do(func() { close(a.closing) }) })
	// Open streams would hold the shutdown up to its timeout: they end
	// when it begins.
	srv.RegisterOnShutdown(a.hub.Close)
	// The loops outlive ctx: orders still in flight need the committer.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	bg, died := a.startLoops(bgCtx, loops)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.log.Info("serving", "addr", ln.Addr().String())
	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		err = a.shutdown(ctx, srv, serveErr)
	case <-died:
		a.drain(ctx)
		err = a.shutdown(ctx, srv, serveErr)
	}
	stopBg()
	err = errors.Join(err, bg.Wait())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// startLoops runs every loop on ctx; died is closed when the first one
// returns an error, which loopsAlive reports from then on.
func (a *App) startLoops(ctx context.Context, loops []loop) (*errgroup.Group, <-chan struct{}) {
	var bg errgroup.Group
	died := make(chan struct{})
	for _, l := range loops {
		bg.Go(func() error {
			err := l.run(ctx)
			if err == nil {
				return nil
			}
			err = fmt.Errorf("app: %s: %w", l.name, err)
			if a.died.CompareAndSwap(nil, &err) {
				a.log.Error("background loop died, shutting down", "loop", l.name, "err", err)
				close(died)
			}
			return err
		})
	}
	return &bg, died
}

// loopsAlive is /readyz's check that no background loop has died.
func (a *App) loopsAlive(context.Context) error {
	if err := a.died.Load(); err != nil {
		return *err
	}
	return nil
}

// drain waits deadLoopDrain, or until ctx ends, while /readyz says not
// ready.
func (a *App) drain(ctx context.Context) {
	t := time.NewTimer(deadLoopDrain)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// shutdown stops accepting, finishes in-flight requests within the
// shutdown timeout and waits for the server to return.
func (a *App) shutdown(ctx context.Context, srv *http.Server, serveErr <-chan error) error {
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-serveErr
	return err
}
