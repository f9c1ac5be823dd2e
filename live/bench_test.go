package live_test

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"flashsale/live"
)

// BenchmarkHubFanout measures one hub holding 10,000 subscribers of one
// topic (a sale page, say), each with a goroutine taking its events as a
// stream handler does: per event, the time from Publish (through the
// publisher's queue and a real Redis PUBLISH) until each subscriber has it,
// and until the last one has it; and the memory an idle subscriber costs,
// with and without its goroutine.
func BenchmarkHubFanout(b *testing.B) {
	const subscribers = 10_000
	n := newNode(b)
	hub := runHub(b, n, 0)
	pub := runPublisher(b, n)
	before := memory()
	subs := make([]*live.Sub, subscribers)
	for i := range subs {
		s, err := hub.Subscribe("sale:bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	bare := memory()
	each := hdr.New(1, int64(10*time.Second), 3)
	last := hdr.New(1, int64(10*time.Second), 3)
	var mu sync.Mutex
	var wg, done sync.WaitGroup
	var sent atomic.Int64 // UnixNano of the last Publish
	for _, s := range subs {
		wg.Go(func() {
			for range s.Events() {
				d := time.Now().UnixNano() - sent.Load()
				mu.Lock()
				_ = each.RecordValue(d)
				mu.Unlock()
				done.Done()
			}
		})
	}
	withGoroutines := memory()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		done.Add(subscribers)
		sent.Store(time.Now().UnixNano())
		pub.Publish(live.NewEvent("sale:bench", "sale", strconv.Itoa(i), []byte(`{"remaining":42,"state":"active"}`)))
		done.Wait()
		_ = last.RecordValue(time.Now().UnixNano() - sent.Load())
	}
	b.StopTimer()
	if _, dropped := hub.Stats(); dropped > 0 {
		b.Fatalf("%d subscribers dropped", dropped)
	}
	for _, s := range subs {
		s.Close()
	}
	wg.Wait()
	b.ReportMetric(float64(subscribers), "subscribers")
	b.ReportMetric(ms(each.ValueAtQuantile(50)), "p50-ms/sub")
	b.ReportMetric(ms(each.ValueAtQuantile(99)), "p99-ms/sub")
	b.ReportMetric(ms(last.ValueAtQuantile(50)), "p50-ms/all")
	b.ReportMetric(ms(last.ValueAtQuantile(99)), "p99-ms/all")
	b.ReportMetric(float64(bare-before)/subscribers, "B/idle-sub")
	b.ReportMetric(float64(withGoroutines-before)/subscribers, "B/idle-sub+goroutine")
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// memory is the heap in use plus goroutine stacks, after a collection.
func memory() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
