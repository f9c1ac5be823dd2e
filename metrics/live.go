package metrics

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Live turns the registry's counters and histograms into the per-second
// figures of the sale page: it gathers the registry once per tick and
// differences it with earlier gathers, so the buy path pays nothing for
// the page. The figures are this instance's, over all its sales: the
// decorators' series carry no sale label.
type Live struct {
	g       prometheus.Gatherer
	every   time.Duration
	window  int      // gathers the quantiles span
	samples []sample // oldest first, at most window+1
	mu      sync.Mutex
	last    json.RawMessage
}

// Live returns the sampler of m's registry, gathering every tick and
// taking quantiles over the last window ticks.
func (m *Metrics) Live(every time.Duration, window int) *Live {
	return NewLive(m.reg, every, window)
}

// NewLive returns a sampler of g; see Metrics.Live.
func NewLive(g prometheus.Gatherer, every time.Duration, window int) *Live {
	return &Live{g: g, every: every, window: max(1, window), last: json.RawMessage("null")}
}

// Figures are one instance's live numbers, as the sale page shows them.
type Figures struct {
	At                time.Time          `json:"at"`
	WindowSeconds     float64            `json:"window_seconds"` // what the quantiles span
	OrdersPerSec      float64            `json:"orders_per_s"`
	SoldOutPerSec     float64            `json:"sold_out_per_s"`
	RateLimitedPerSec float64            `json:"rate_limited_per_s"`
	BuyHTTP           *Quantiles         `json:"buy_http,omitempty"` // POST /v1/orders, when HTTP metrics exist
	Reserve           Quantiles          `json:"reserve"`
	Commit            Quantiles          `json:"commit"`
	RelayLag          Quantiles          `json:"relay_lag"`
	ConsumerLag       map[string]float64 `json:"consumer_lag"` // messages, by consumer
}

// Quantiles are the median and 99th percentile in milliseconds; nil when
// nothing was observed in the window.
type Quantiles struct {
	P50 *float64 `json:"p50_ms"`
	P99 *float64 `json:"p99_ms"`
}

// Run gathers every tick until ctx ends.
func (l *Live) Run(ctx context.Context) error {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		l.Sample(time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// JSON is the last figures, marshalled once for every viewer; null before
// the second gather.
func (l *Live) JSON() json.RawMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Sample gathers the registry as of now and updates the figures. Run
// calls it; tests call it to control time.
func (l *Live) Sample(now time.Time) {
	mfs, err := l.g.Gather()
	if err != nil && len(mfs) == 0 {
		return // a collector failed outright; keep the last figures
	}
	l.samples = append(l.samples, extract(mfs, now))
	if len(l.samples) > l.window+1 {
		l.samples = l.samples[1:]
	}
	if len(l.samples) < 2 {
		return
	}
	b, _ := json.Marshal(figures(l.samples))
	l.mu.Lock()
	l.last = b
	l.mu.Unlock()
}

// figures compares the newest sample with the one before (rates) and with
// the oldest (quantiles).
func figures(s []sample) Figures {
	first, prev, cur := s[0], s[len(s)-2], s[len(s)-1]
	secs := cur.at.Sub(prev.at).Seconds()
	rate := func(c, p float64) float64 { return math.Max(0, c-p) / secs }
	f := Figures{At: cur.at.UTC(), WindowSeconds: cur.at.Sub(first.at).Seconds(),
		OrdersPerSec: rate(cur.orders, prev.orders), SoldOutPerSec: rate(cur.soldOut, prev.soldOut),
		RateLimitedPerSec: rate(cur.rateLimited, prev.rateLimited),
		Reserve:           cur.reserve.since(first.reserve), Commit: cur.commit.since(first.commit),
		RelayLag: cur.relayLag.since(first.relayLag), ConsumerLag: cur.consumerLag}
	if cur.buyHTTP.count() > 0 {
		q := cur.buyHTTP.since(first.buyHTTP)
		f.BuyHTTP = &q
	}
	return f
}

// sample is what one gather holds of interest: cumulative counts.
type sample struct {
	at                           time.Time
	orders, soldOut, rateLimited float64
	reserve, commit, relayLag    hist
	buyHTTP                      hist
	consumerLag                  map[string]float64
}

// extract picks the sale page's series out of a gather.
func extract(mfs []*dto.MetricFamily, at time.Time) sample {
	s := sample{at: at, consumerLag: map[string]float64{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s.add(mf.GetName(), m)
		}
	}
	return s
}

func (s *sample) add(name string, m *dto.Metric) {
	l := labels(m)
	switch name {
	case namespace + "_store_seconds":
		if l["op"] == "create" {
			s.commit.add(m.GetHistogram())
			if l["outcome"] == "ok" {
				s.orders += float64(m.GetHistogram().GetSampleCount())
			}
		}
	case namespace + "_stock_seconds":
		if l["op"] == "reserve" {
			s.reserve.add(m.GetHistogram())
			s.countRefusal(l["outcome"], float64(m.GetHistogram().GetSampleCount()))
		}
	case namespace + "_sold_out_memory_total":
		if l["event"] == "hit" {
			s.soldOut += m.GetCounter().GetValue()
		}
	case namespace + "_outbox_lag_seconds":
		s.relayLag.add(m.GetHistogram())
	case namespace + "_consumer_lag_messages":
		s.consumerLag[l["consumer"]] = m.GetGauge().GetValue()
	case namespace + "_http_request_duration_seconds":
		if l["route"] == "/v1/orders" && l["method"] == "POST" {
			s.buyHTTP.add(m.GetHistogram())
		}
	}
}

// countRefusal counts the reservations Redis refused as sold out or rate
// limited; the sold-out memory's hits are the other sold-out answers.
func (s *sample) countRefusal(outcome string, n float64) {
	switch outcome {
	case "sold_out":
		s.soldOut += n
	case "rate_limited":
		s.rateLimited += n
	}
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// hist is a cumulative histogram: counts of observations at or below
// each upper bound, summed over the series added.
type hist struct {
	upper []float64
	cum   []float64
	total float64
}

func (h *hist) add(p *dto.Histogram) {
	if p == nil {
		return
	}
	for _, b := range p.GetBucket() {
		i := sort.SearchFloat64s(h.upper, b.GetUpperBound())
		if i == len(h.upper) || h.upper[i] != b.GetUpperBound() {
			h.upper = append(h.upper[:i], append([]float64{b.GetUpperBound()}, h.upper[i:]...)...)
			h.cum = append(h.cum[:i], append([]float64{0}, h.cum[i:]...)...)
		}
		h.cum[i] += float64(b.GetCumulativeCount())
	}
	h.total += float64(p.GetSampleCount())
}

func (h hist) count() float64 { return h.total }

// since is the quantiles of the observations made after old.
func (h hist) since(old hist) Quantiles {
	d := hist{upper: h.upper, cum: make([]float64, len(h.cum)), total: h.total - old.total}
	for i, u := range h.upper {
		d.cum[i] = h.cum[i] - old.at(u)
	}
	if d.total <= 0 {
		return Quantiles{}
	}
	return Quantiles{P50: d.quantile(0.5), P99: d.quantile(0.99)}
}

// at is the cumulative count at upper bound u (0 when h lacks it).
func (h hist) at(u float64) float64 {
	i := sort.SearchFloat64s(h.upper, u)
	if i < len(h.upper) && h.upper[i] == u {
		return h.cum[i]
	}
	return 0
}

// quantile interpolates linearly inside the bucket holding rank q, as
// Prometheus's histogram_quantile does; above the last bound it answers
// that bound. The result is in milliseconds.
func (h hist) quantile(q float64) *float64 {
	rank := q * h.total
	lower, below := 0.0, 0.0
	for i, u := range h.upper {
		if h.cum[i] >= rank && h.cum[i] > below {
			v := lower + (u-lower)*(rank-below)/(h.cum[i]-below)
			v *= 1000
			return &v
		}
		lower, below = u, h.cum[i]
	}
	v := lower * 1000
	return &v
}
