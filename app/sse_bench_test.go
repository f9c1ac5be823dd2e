package app_test

import (
	"bufio"
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"flashsale/api"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/live"
	"flashsale/order"
)

// BenchmarkSSEFanoutHTTP measures the whole path on one instance: 1,000
// HTTP clients hold /v1/sales/{id}/events open, each on its own
// connection, and per event, the time from Publish (queue, Redis PUBLISH,
// the hub, the handler's write and flush, the client's read) until each
// client has it, and until the last one has it. The events are published
// on the sale's topic directly, as a transition is, so that every
// iteration is one. Then 2,000 more clients open the stream and read
// nothing: the memory each costs the process while idle (the server's
// connection, handler and subscriber, plus the test's client socket).
func BenchmarkSSEFanoutHTTP(b *testing.B) {
	const readers, idle = 1000, 2000
	s := startBench(b, nil)
	cfg := s.cfg
	sale := s.createSale(10, 5)
	path := "/v1/sales/" + sale + "/events"
	var sent atomic.Int64
	each := hdr.New(1, int64(10*time.Second), 3)
	last := hdr.New(1, int64(10*time.Second), 3)
	var mu sync.Mutex
	var got sync.WaitGroup
	var conns []net.Conn
	var wg sync.WaitGroup
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}()
	for range readers {
		c, r := openStream(b, s.base, path)
		conns = append(conns, c)
		wg.Go(func() {
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, `data: {"bench":`) {
					d := time.Now().UnixNano() - sent.Load()
					mu.Lock()
					_ = each.RecordValue(d)
					mu.Unlock()
					got.Done()
				}
			}
		})
	}
	pub := live.NewPublisher(testenv.Redis(b, cfg, 0), cfg.RedisPrefix+":live", nil)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { stop(); <-done }()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		got.Add(readers)
		sent.Store(time.Now().UnixNano())
		pub.Publish(live.NewEvent(live.SaleTopic(sale), "sale", "b"+strconv.Itoa(i), []byte(`{"bench":`+strconv.Itoa(i)+`}`)))
		got.Wait()
		_ = last.RecordValue(time.Now().UnixNano() - sent.Load())
	}
	b.StopTimer()
	before := memoryNow()
	for range idle {
		c, _ := openStream(b, s.base, path)
		conns = append(conns, c)
	}
	after := memoryNow()
	b.ReportMetric(float64(readers), "readers")
	b.ReportMetric(float64(each.ValueAtQuantile(50))/1e6, "p50-ms/sub")
	b.ReportMetric(float64(each.ValueAtQuantile(99))/1e6, "p99-ms/sub")
	b.ReportMetric(float64(last.ValueAtQuantile(50))/1e6, "p50-ms/all")
	b.ReportMetric(float64(last.ValueAtQuantile(99))/1e6, "p99-ms/all")
	b.ReportMetric(float64(after.heap+after.stack-before.heap-before.stack)/idle, "B/idle-stream")
	b.ReportMetric(float64(after.stack-before.stack)/idle, "B-stack/idle-stream")
}

// openStream sends a stream's GET on a connection of its own and reads
// up to the snapshot, which the server writes once it has subscribed.
func openStream(b *testing.B, base, path string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(c, 512)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			return c, r
		}
	}
}

// mem is the heap in use and the goroutine stacks, after a collection.
type mem struct{ heap, stack uint64 }

func memoryNow() mem {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return mem{m.HeapAlloc, m.StackInuse}
}

// BenchmarkOrderNotify measures what the event streams add to each order
// transition: on the caller's path, queueing it (Publisher.PublishFunc,
// as app wires it); off it, rendering it and the pipelined PUBLISH, as
// Redis CPU per event. Every event is waited for, so b.N
// events were published in the elapsed time.
func BenchmarkOrderNotify(b *testing.B) {
	cfg := testenv.Config(b, 4)
	node1 := testenv.Redis(b, cfg, 0)
	pub := live.NewPublisher(node1, cfg.RedisPrefix+":live", nil)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { stop(); <-done }()
	id, _ := order.NewID(254141995688144897)
	buyer, _ := order.ParseBuyerID("buyer-42")
	sale, _ := inventory.ParseSaleID("7")
	o := order.Order{ID: id, SaleID: sale, Buyer: buyer, Quantity: 1, AmountCents: 19900, Currency: "EUR",
		Status: order.StatusPendingPayment, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(10 * time.Minute)}
	var caller time.Duration
	redis0 := testenv.RedisCPU(b, node1)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		t0 := time.Now()
		pub.PublishFunc(func() *live.Event { return api.OrderEvent(o) }) // as app wires it
		caller += time.Since(t0)
		if n++; n%1024 == 0 { // a burst of orders, well within the queue
			waitPublished(b, pub, n)
		}
	}
	waitPublished(b, pub, n)
	b.StopTimer()
	redis1 := testenv.RedisCPU(b, node1)
	b.ReportMetric(float64(caller.Nanoseconds())/float64(b.N), "caller-ns/order")
	if _, dropped := pub.Stats(); dropped > 0 {
		b.Fatalf("%d events dropped", dropped)
	}
	b.ReportMetric(float64((redis1-redis0).Microseconds())/float64(b.N), "redis-cpu-us/order")
}

// waitPublished waits until n events left the publisher.
func waitPublished(b *testing.B, pub *live.Publisher, n int) {
	for {
		published, dropped := pub.Stats()
		if published+dropped >= uint64(n) {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}
