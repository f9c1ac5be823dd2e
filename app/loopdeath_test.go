package app_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"flashsale/app"
	"flashsale/internal/apptest"
	"flashsale/internal/testenv"
)

// TestServeFailsWhenALoopDies: when a background loop dies, /readyz turns
// not ready while the server still answers, then Serve returns the loop's
// error and the API stops listening, instead of taking orders that fail.
func TestServeFailsWhenALoopDies(t *testing.T) {
	cfg := testenv.Config(t, 4)
	kill, served := make(chan struct{}), make(chan error, 1)
	boom := errors.New("lost its connection for good")
	doomed := func(ctx context.Context) error {
		select {
		case <-kill:
			return boom
		case <-ctx.Done():
			return nil
		}
	}
	s := startOpts(t, cfg, apptest.Options{Serve: func(a *app.App, ctx context.Context, ln net.Listener) error {
		served <- app.ServeWithLoop("doomed", doomed)(a, ctx, ln)
		return nil
	}})
	waitReady(t, s, http.StatusOK, "")
	close(kill)
	r := waitReady(t, s, http.StatusServiceUnavailable, "loops")
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before /readyz said not ready: %s", err, r.Body)
	default:
	}
	select {
	case err := <-served:
		if !errors.Is(err, boom) {
			t.Fatalf("Serve returned %v, want the dead loop's error", err)
		}
	case <-time.After(cfg.ShutdownTimeout + 15*time.Second):
		t.Fatal("Serve went on after a background loop died")
	}
	if c, err := net.DialTimeout("tcp", s.base[len("http://"):], time.Second); err == nil {
		_ = c.Close()
		t.Error("the API still accepts connections after Serve returned")
	}
}
