package metrics

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLiveRatesAndQuantilesFromTheDecoratorsSeries: the sale page's
// figures are differences of what the decorators already count: rates
// over the last tick, quantiles over the window, the HTTP row only when
// HTTP metrics exist.
func TestLiveRatesAndQuantilesFromTheDecoratorsSeries(t *testing.T) {
	m := New(testOutcome)
	stock := m.newTimer("stock_seconds", "h")
	store := m.newTimer("store_seconds", "h")
	soldOut := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sold_out_memory_total", Help: "h"}, []string{"event"})
	m.reg.MustRegister(soldOut)
	live := m.Live(time.Second, 10)
	t0 := time.Unix(1_000_000, 0)

	store.h.WithLabelValues("create", "ok").Observe(0.5) // before the first gather: in no figure
	live.Sample(t0)
	if got := string(live.JSON()); got != "null" {
		t.Fatalf("figures after one gather: %s, want null", got)
	}
	for range 90 {
		stock.h.WithLabelValues("reserve", "ok").Observe(0.0002)
		store.h.WithLabelValues("create", "ok").Observe(0.004)
	}
	for range 10 {
		stock.h.WithLabelValues("reserve", "ok").Observe(0.2)
	}
	stock.h.WithLabelValues("reserve", "sold_out").Observe(0.0002)
	stock.h.WithLabelValues("reserve", "sold_out").Observe(0.0002)
	for range 6 {
		stock.h.WithLabelValues("reserve", "rate_limited").Observe(0.0002)
	}
	soldOut.WithLabelValues("hit").Add(28)
	live.Sample(t0.Add(2 * time.Second))

	f := decode(t, live.JSON())
	if f.OrdersPerSec != 45 || f.SoldOutPerSec != 15 || f.RateLimitedPerSec != 3 {
		t.Errorf("rates per second: orders %v sold out %v rate limited %v, want 45, 15, 3", f.OrdersPerSec, f.SoldOutPerSec, f.RateLimitedPerSec)
	}
	// 108 reservations: 98 at 0.2 ms, 10 at 200 ms; the commits all at 4 ms.
	if p := f.Reserve.P50; p == nil || *p <= 0.1 || *p > 0.25 {
		t.Errorf("reserve p50 %v ms, want in the 0.1–0.25 ms bucket", show(p))
	}
	if p := f.Reserve.P99; p == nil || *p <= 152 || *p > 382 {
		t.Errorf("reserve p99 %v ms, want in the 152–381 ms bucket", show(p))
	}
	if p := f.Commit.P99; p == nil || *p <= 3.9 || *p > 9.8 {
		t.Errorf("commit p99 %v ms, want in the 3.9–9.8 ms bucket (the 500 ms commit came before the window)", show(p))
	}
	if f.RelayLag.P99 != nil || f.BuyHTTP != nil {
		t.Errorf("relay lag %v, HTTP %v: want none, nothing was observed", show(f.RelayLag.P99), f.BuyHTTP)
	}

	buy := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flashsale_http_request_duration_seconds", Help: "h",
		Buckets: latencyBuckets}, []string{"route", "method"})
	m.reg.MustRegister(buy)
	buy.WithLabelValues("/v1/orders", "POST").Observe(0.001)
	buy.WithLabelValues("/v1/orders", "GET").Observe(2)
	live.Sample(t0.Add(3 * time.Second))
	f = decode(t, live.JSON())
	if f.OrdersPerSec != 0 || f.BuyHTTP == nil || f.BuyHTTP.P99 == nil || *f.BuyHTTP.P99 > 1.6 {
		t.Errorf("after a quiet second: orders/s %v, buy path over HTTP %+v: want 0 and p99 ≤ 1.6 ms", f.OrdersPerSec, f.BuyHTTP)
	}
}

func decode(t *testing.T, b json.RawMessage) Figures {
	t.Helper()
	var f Figures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return f
}

func show(p *float64) any {
	if p == nil {
		return "none"
	}
	return *p
}
