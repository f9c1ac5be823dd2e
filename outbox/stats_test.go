package outbox

import (
	"testing"
	"time"
)

// TestLagHistogramIsCumulative: lags land in the bucket of their upper
// bound, counts accumulate, and the unbounded last bucket is left out.
func TestLagHistogramIsCumulative(t *testing.T) {
	s := newStats()
	acked := time.Now()
	var rows []row
	for _, lag := range []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 150 * time.Microsecond, time.Millisecond, 48 * time.Hour} {
		rows = append(rows, row{createdAt: acked.Add(-lag)})
	}
	s.observe(rows, acked)
	upper, counts := s.LagHistogram()
	if len(upper) != 31 || len(counts) != 31 {
		t.Fatalf("%d bounds, %d counts; want 31 each", len(upper), len(counts))
	}
	for i, want := range map[int]int64{0: 2, 1: 3, 3: 3, 4: 4, 30: 4} { // ≤100 µs, ≤200 µs, ≤800 µs, ≤1.6 ms, the last bound
		if counts[i] != want || upper[i] != bucketBase<<i {
			t.Errorf("bucket %d (≤ %v): %d, want %d", i, upper[i], counts[i], want)
		}
	}
	if s.Published() != 5 {
		t.Errorf("published %d, want 5 (the two-day lag counts beyond the last bound)", s.Published())
	}
	if want := 1300*time.Microsecond + 48*time.Hour; s.LagSum() != want {
		t.Errorf("lag sum %v, want %v", s.LagSum(), want)
	}
}
