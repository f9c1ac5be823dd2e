package main

import (
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Outcome is how a logical request ended, after its retries.
type Outcome uint8

// Outcomes, in report order.
const (
	OutCreated     Outcome = iota // 201: an order (first answer or a replay)
	OutSoldOut                    // 409 sold-out
	OutLimit                      // 409 purchase-limit-reached
	OutRateLimited                // 429
	OutOverloaded                 // 503 overloaded, retries exhausted
	OutServerError                // any other 5xx, retries exhausted
	OutTransport                  // timeout or connection error, retries exhausted
	OutOther                      // any other answer
	OutOK                         // 2xx of a ceiling target (bare handler, Lua, insert)
	OutNotSent                    // the run ended before the sender got to it
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"created", "sold_out", "limit_reached", "rate_limited", "overloaded",
	"server_error", "timeout_or_transport", "other", "ok", "not_sent"}

func (o Outcome) String() string { return outcomeNames[o] }

// unresolved5xx reports whether the outcome is a server failure the
// client's retries did not get past.
func (o Outcome) unresolved5xx() bool {
	return o == OutOverloaded || o == OutServerError || o == OutTransport || o == OutNotSent
}

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, three
// significant digits; the per-second series keeps two.
const (
	histMinUS = 1
	histMaxUS = int64(10 * time.Minute / time.Microsecond)
)

func newHist(digits int) *hdr.Histogram { return hdr.New(histMinUS, histMaxUS, digits) }

func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	return min(max(us, histMinUS), histMaxUS)
}

// Recorder collects the latency of every logical request by outcome, the
// time from its actual send (service time, which coordinated omission
// would report) and a per-second series. It is sharded so that concurrent
// senders rarely contend.
type Recorder struct {
	start  time.Time
	shards []recShard
	next   atomic.Uint32
}

type recShard struct {
	mu      sync.Mutex
	byOut   [numOutcomes]*hdr.Histogram // from the intended send time
	service *hdr.Histogram              // from the actual send of the first attempt
	series  []*second
	_       [64]byte
}

// second is one second of completions.
type second struct {
	counts [numOutcomes]int64
	lat    *hdr.Histogram
}

// NewRecorder starts a recorder whose series counts seconds from start.
func NewRecorder(start time.Time, shards int) *Recorder {
	r := &Recorder{start: start, shards: make([]recShard, max(1, shards))}
	for i := range r.shards {
		s := &r.shards[i]
		for o := range s.byOut {
			s.byOut[o] = newHist(3)
		}
		s.service = newHist(3)
	}
	return r
}

// Shard hands out shard indexes round-robin; a sender keeps one.
func (r *Recorder) Shard() int { return int(r.next.Add(1)) % len(r.shards) }

// Record files one logical request: intended is when it should have been
// sent (the actual send in a closed model), sent when its first attempt
// was, done when its final answer arrived.
func (r *Recorder) Record(shard int, o Outcome, intended, sent, done time.Time) {
	lat, svc := micros(done.Sub(intended)), micros(done.Sub(sent))
	sec := int(done.Sub(r.start) / time.Second)
	s := &r.shards[shard]
	s.mu.Lock()
	_ = s.byOut[o].RecordValue(lat)
	_ = s.service.RecordValue(svc)
	if sec >= 0 {
		for len(s.series) <= sec {
			s.series = append(s.series, nil)
		}
		b := s.series[sec]
		if b == nil {
			b = &second{lat: newHist(2)}
			s.series[sec] = b
		}
		b.counts[o]++
		_ = b.lat.RecordValue(lat)
	}
	s.mu.Unlock()
}

// Merged is everything recorded, shards folded together.
type Merged struct {
	ByOutcome [numOutcomes]*hdr.Histogram
	All       *hdr.Histogram // every outcome
	Service   *hdr.Histogram
	Series    []Second
}

// Second is one second of the merged series.
type Second struct {
	Counts [numOutcomes]int64
	Lat    *hdr.Histogram
}

// Merge folds the shards; call it once the senders are done.
func (r *Recorder) Merge() Merged {
	m := Merged{All: newHist(3), Service: newHist(3)}
	for o := range m.ByOutcome {
		m.ByOutcome[o] = newHist(3)
	}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for o, h := range s.byOut {
			m.ByOutcome[o].Merge(h)
			m.All.Merge(h)
		}
		m.Service.Merge(s.service)
		for sec, b := range s.series {
			for len(m.Series) <= sec {
				m.Series = append(m.Series, Second{Lat: newHist(2)})
			}
			if b == nil {
				continue
			}
			for o, n := range b.counts {
				m.Series[sec].Counts[o] += n
			}
			m.Series[sec].Lat.Merge(b.lat)
		}
		s.mu.Unlock()
	}
	return m
}

// Count is the number of logical requests that ended with o.
func (m Merged) Count(o Outcome) int64 { return m.ByOutcome[o].TotalCount() }

// LatencyStats are the percentiles reported for one histogram, in
// milliseconds.
type LatencyStats struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func statsOf(h *hdr.Histogram) LatencyStats {
	if h == nil || h.TotalCount() == 0 {
		return LatencyStats{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return LatencyStats{Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000}
}
