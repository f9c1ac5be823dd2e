// Package metrics exports the service's Prometheus metrics. Decorators over
// the buy path's interfaces (order.Store, order.Stock, order.SoldOut)
// record what passes through them, so no domain package knows Prometheus;
// the relay's and the consumers' own counters are read at scrape time.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the service.
const namespace = "flashsale"

// Metrics is one registry with the service's metrics.
type Metrics struct {
	reg     *prometheus.Registry
	outcome func(error) string // the label of a call's error
}

// New returns a registry with the Go runtime's and the process's metrics;
// outcome labels a call by its error (api.Outcome, from the one table that
// names domain errors), so that the series stay a fixed set.
func New(outcome func(error) string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Metrics{reg: reg, outcome: outcome}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// latencyBuckets span a sold-out answer's microseconds to a stalled
// dependency's seconds.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 12) // 100 µs … 2.4 s
