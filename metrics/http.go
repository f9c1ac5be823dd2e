package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP records the API's requests (api.RequestObserver): their rate and
// errors by route, method and status (flashsale_http_requests_total) and
// their duration by route and method
// (flashsale_http_request_duration_seconds). Routes are chi's patterns
// ("/v1/orders/{id}"), never paths, so ids do not multiply the series.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	mu       sync.RWMutex
	series   map[httpKey]httpSeries
}

type httpKey struct {
	route, method string
	status        int
}

// httpSeries is one key's counter and histogram, looked up once: a vector's
// WithLabelValues hashes the labels and formats the status on every call.
type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// HTTP registers the request metrics and returns their recorder.
func (m *Metrics) HTTP() *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help: "Time from a request's routing to its handler's return, by route pattern and method.", Buckets: latencyBuckets},
			[]string{"route", "method"}),
		series: map[httpKey]httpSeries{},
	}
	m.reg.MustRegister(h.requests, h.duration)
	return h
}

// ObserveRequest counts one answered request and its duration.
func (h *HTTP) ObserveRequest(route, method string, status int, elapsed time.Duration) {
	k := httpKey{route, method, status}
	h.mu.RLock()
	s, ok := h.series[k]
	h.mu.RUnlock()
	if !ok {
		s = h.add(k)
	}
	s.requests.Inc()
	s.duration.Observe(elapsed.Seconds())
}

func (h *HTTP) add(k httpKey) httpSeries {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := httpSeries{requests: h.requests.WithLabelValues(k.route, k.method, strconv.Itoa(k.status)),
		duration: h.duration.WithLabelValues(k.route, k.method)}
	h.series[k] = s
	return s
}
