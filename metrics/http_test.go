package metrics

import (
	"testing"
	"time"
)

// BenchmarkObserveRequest is the cost of recording one request in the RED
// metrics once its series exist, as on every sold-out answer.
func BenchmarkObserveRequest(b *testing.B) {
	h := New(testOutcome).HTTP()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.ObserveRequest("/v1/orders", "POST", 409, 150*time.Microsecond)
		}
	})
}
