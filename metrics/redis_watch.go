package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"flashsale/inventory/invredis"
)

// RedisWatch exports the Redis node 1 watcher's counters, read at scrape
// time: how often node 1 was found to have lost data, how many sales were
// rebuilt from PostgreSQL, and how many rounds failed (a rebuild storm was
// visible only in serve's log before).
func (m *Metrics) RedisWatch(w *invredis.Watcher) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "redis_data_loss_detections_total",
			Help: "Times Redis node 1 restarted, was flushed or replaced, or was found new (run_id or epoch key changed)."},
			func() float64 { return float64(w.Stats().Detections) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "redis_sale_rebuilds_total",
			Help: "Sales rebuilt in Redis from PostgreSQL's live orders after a detection."},
			func() float64 { return float64(w.Stats().Rebuilt) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "redis_rebuild_rounds_failed_total",
			Help: "Rebuild rounds that failed and were put off (1, 2, 4 … 30 s); while it grows, sales may be missing from Redis."},
			func() float64 { return float64(w.Stats().Failed) }),
	)
}
