package outbox

import (
	"sync"
	"time"
)

// Stats counts published events and the lag from their commit to Kafka's
// acknowledgement, in exponential buckets of 100 µs doubling, and the sum
// of those lags, so that a histogram's mean (sum/count) is real.
type Stats struct {
	mu        sync.Mutex
	published int64
	fenced    int64
	lagSum    time.Duration
	buckets   [32]int64
}

func newStats() *Stats { return &Stats{} }

const bucketBase = 100 * time.Microsecond

func (s *Stats) observe(rows []row, acked time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range rows {
		lag := acked.Sub(x.createdAt)
		s.published++
		s.lagSum += lag
		s.buckets[bucketOf(lag)]++
	}
}

func bucketOf(d time.Duration) int {
	b := 0
	for limit := bucketBase; d > limit && b < 31; limit *= 2 {
		b++
	}
	return b
}

// Published is how many events Kafka acknowledged (duplicates included).
func (s *Stats) Published() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published
}

// LagQuantile is an upper bound of the q-quantile (0 < q <= 1) of the
// commit-to-ack lag: the top of the bucket it falls in.
func (s *Stats) LagQuantile(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := int64(q*float64(s.published) + 0.5)
	var seen int64
	for b, n := range s.buckets {
		seen += n
		if seen >= want && n > 0 {
			return bucketBase << b
		}
	}
	return 0
}

// LagHistogram is the commit-to-ack lag as cumulative counts: counts[i]
// events were acknowledged within upper[i]; the last bucket has no upper
// bound and is left out, so it is Published minus the last count.
func (s *Stats) LagHistogram() (upper []time.Duration, counts []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	upper, counts = make([]time.Duration, len(s.buckets)-1), make([]int64, len(s.buckets)-1)
	var seen int64
	for b := range upper {
		seen += s.buckets[b]
		upper[b], counts[b] = bucketBase<<b, seen
	}
	return upper, counts
}

// LagSum is the sum of every acknowledged event's commit-to-ack lag.
func (s *Stats) LagSum() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lagSum
}

func (s *Stats) fence() {
	s.mu.Lock()
	s.fenced++
	s.mu.Unlock()
}

// Fenced is how many times a mark was refused because a newer relay held
// the shard.
func (s *Stats) Fenced() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fenced
}
