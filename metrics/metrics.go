// Package metrics exports the service's Prometheus metrics. Decorators over
// the buy path's interfaces (order.Store, order.Stock, order.SoldOut)
// record what passes through them, so no domain package knows Prometheus;
// the relay's and the consumers' own counters are read at scrape time.
package metrics

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"flashsale/inventory"
	"flashsale/order"
)

// namespace prefixes every metric of the service.
const namespace = "flashsale"

// Metrics is one registry with the service's metrics.
type Metrics struct {
	reg *prometheus.Registry
}

// New returns a registry with the Go runtime's and the process's metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Metrics{reg: reg}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// outcomes names the errors the decorators tell apart; anything else is
// "error". The labels are a fixed set, so the series stay few.
var outcomes = []struct {
	err   error
	label string
}{
	{order.ErrStockRefused, "stock_refused"}, // before sold_out, which it wraps
	{inventory.ErrSoldOut, "sold_out"},
	{inventory.ErrLimitReached, "limit_reached"},
	{inventory.ErrSaleNotActive, "sale_not_active"},
	{inventory.ErrSaleNotFound, "sale_not_found"},
	{inventory.ErrRateLimited, "rate_limited"},
	{inventory.ErrKeyClaimed, "key_claimed"},
	{inventory.ErrKeyReused, "key_reused"},
	{order.ErrKeyReused, "key_reused"},
	{order.ErrKeyInUse, "key_in_use"},
	{order.ErrNotFound, "not_found"},
	{order.ErrNotTransitable, "not_transitable"},
	{order.ErrOverloaded, "overloaded"},
	{order.ErrCommitExpired, "commit_expired"},
	{order.ErrCommitUnknown, "commit_unknown"},
	{order.ErrUnavailable, "unavailable"},
	{order.ErrDuplicate, "duplicate"},
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "timeout"},
}

// outcome is the label of err.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, o := range outcomes {
		if errors.Is(err, o.err) {
			return o.label
		}
	}
	return "error"
}

// latencyBuckets span a sold-out answer's microseconds to a stalled
// dependency's seconds.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 12) // 100 µs … 2.4 s
