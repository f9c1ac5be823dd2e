package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"flashsale/consumer"
	"flashsale/outbox"
)

// Relay exports the outbox relay's own counters and its commit-to-ack lag,
// read at scrape time.
func (m *Metrics) Relay(s *outbox.Stats) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "outbox_published_total",
			Help: "Outbox events Kafka acknowledged, redeliveries included."}, func() float64 { return float64(s.Published()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "outbox_fenced_total",
			Help: "Relay marks refused because a newer relay held the shard."}, func() float64 { return float64(s.Fenced()) }),
		&relayLag{stats: s, desc: prometheus.NewDesc(namespace+"_outbox_lag_seconds",
			"Time from an outbox row's commit to Kafka's acknowledgement of its event.", nil, nil)},
	)
}

// relayLag is the relay's lag histogram as a Prometheus histogram.
type relayLag struct {
	stats *outbox.Stats
	desc  *prometheus.Desc
}

func (c *relayLag) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *relayLag) Collect(ch chan<- prometheus.Metric) {
	upper, counts := c.stats.LagHistogram()
	buckets := make(map[float64]uint64, len(upper))
	for i, u := range upper {
		buckets[u.Seconds()] = uint64(counts[i])
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, uint64(c.stats.Published()), c.stats.LagSum().Seconds(), buckets)
}

// Consumer exports one event consumer's counters and lag, read at scrape
// time, labelled with its name.
func (m *Metrics) Consumer(name string, c *consumer.Consumer) {
	labels := prometheus.Labels{"consumer": name}
	counter := func(metric, help string, v func(consumer.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: metric, Help: help, ConstLabels: labels},
			func() float64 { return float64(v(c.Stats())) })
	}
	m.reg.MustRegister(
		counter("consumer_applied_total", "Events whose effect the consumer committed.", func(s consumer.Stats) int64 { return s.Applied }),
		counter("consumer_duplicates_total", "Redeliveries the inbox skipped.", func(s consumer.Stats) int64 { return s.Duplicates }),
		counter("consumer_failures_total", "Failed attempts to handle an event.", func(s consumer.Stats) int64 { return s.Failures }),
		counter("consumer_dead_lettered_total", "Messages written to the dead-letter topic.", func(s consumer.Stats) int64 { return s.DeadLettered }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "consumer_lag_messages", ConstLabels: labels,
			Help: "Messages the consumer is behind on its partitions, fetched but unhandled ones included."},
			func() float64 { return float64(c.Lag()) }),
	)
}
