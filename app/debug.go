package app

import (
	"net/http"
	"net/http/pprof"

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
