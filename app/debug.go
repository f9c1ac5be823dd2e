package app

import (
	"net/http"
	"net/http/pprof"
)

// DebugHandler serves the runtime profiles (net/http/pprof) and the
// Prometheus metrics (/metrics) on their own listener, never on the API's:
// both reveal internals, and profiles cost CPU.
func (a *App) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.metrics.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
