package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"flashsale/order"
)

// Abandoner exports the counters of the buy path's giver-back of
// reservations whose reply was lost, read at scrape time.
func (m *Metrics) Abandoner(a *order.Abandoner) {
	m.reg.MustRegister(
		statCounter(a.Stats, "reservations_abandoned_total", "Reservations whose Reserve failed without a reply, handed over to be given back.",
			func(s order.AbandonStats) uint64 { return s.Queued }),
		statCounter(a.Stats, "reservations_abandoned_returned_total", "Abandoned reservations whose units were given back (the others were never made).",
			func(s order.AbandonStats) uint64 { return s.Returned }),
		statCounter(a.Stats, "reservations_abandoned_dropped_total", "Abandoned reservations left to the reconciler: queue full, or Redis away too long.",
			func(s order.AbandonStats) uint64 { return s.Dropped }),
	)
}

// Confirmer exports the counters of the buy path's teller of committed
// orders to the stock, read at scrape time.
func (m *Metrics) Confirmer(c *order.Confirmer) {
	m.reg.MustRegister(
		statCounter(c.Stats, "reservations_confirmed_total", "Reservations of committed orders confirmed in Redis by the buy path.",
			func(s order.ConfirmStats) uint64 { return s.Sent }),
		statCounter(c.Stats, "reservations_confirm_dropped_total", "Committed orders left for the reconciler to confirm: queue full, or their batch failed.",
			func(s order.ConfirmStats) uint64 { return s.Dropped }),
	)
}

// statCounter is a counter read at scrape time from one field of a
// loop's stats.
func statCounter[S any](stats func() S, name, help string, read func(S) uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
		func() float64 { return float64(read(stats())) })
}
