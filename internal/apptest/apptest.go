// Package apptest starts flashsale instances for tests: app.New over a
// test's configuration, serving on a loopback port until the test ends.
// It is the one "start an instance" harness of the app, cmd and chaos
// tests.
package apptest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"flashsale/app"
	"flashsale/config"
	"flashsale/internal/testenv"
)

// Instance is one running flashsale instance.
type Instance struct {
	App  *app.App
	Base string // http://127.0.0.1:port, the API's address

	cfg    *config.Config
	cancel context.CancelFunc
	served chan error
	once   sync.Once
	err    error
}

// Options tune how Start runs an instance; the zero value is the usual.
type Options struct {
	// Log is the instance's logger; testenv.Logger when nil.
	Log *slog.Logger
	// Serve runs the instance on ln until ctx ends; App.Serve when nil.
	Serve func(a *app.App, ctx context.Context, ln net.Listener) error
}

// Start builds an instance from cfg and serves it on a free loopback port
// until the test ends; then it stops it, fails the test if Serve failed,
// and closes it.
func Start(tb testing.TB, cfg *config.Config, opt Options) *Instance {
	tb.Helper()
	if opt.Log == nil {
		opt.Log = testenv.Logger(tb)
	}
	if opt.Serve == nil {
		opt.Serve = (*app.App).Serve
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, opt.Log)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		a.Close()
		tb.Fatal(err)
	}
	i := &Instance{App: a, Base: "http://" + ln.Addr().String(), cfg: cfg, cancel: cancel, served: make(chan error, 1)}
	go func() { i.served <- opt.Serve(a, ctx, ln) }()
	tb.Cleanup(func() {
		if err := i.Stop(); err != nil {
			tb.Errorf("serve: %v", err)
		}
		a.Close()
	})
	return i
}

// Stop ends the instance's context and returns what Serve returned, or an
// error when it has not returned 10 s past its shutdown timeout; later
// calls return the same.
func (i *Instance) Stop() error {
	i.once.Do(func() {
		i.cancel()
		select {
		case i.err = <-i.served:
		case <-time.After(i.cfg.ShutdownTimeout + 10*time.Second):
			i.err = fmt.Errorf("apptest: Serve did not return within %v of the shutdown", i.cfg.ShutdownTimeout+10*time.Second)
		}
	})
	return i.err
}
