package consumer_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/order"
)

// BenchmarkConsumer measures the inventory consumer over the real ledger,
// Kafka and PostgreSQL, one message at a time and in batches of the
// default size. b.N created events of one sale, with the full v1 payload
// the shards publish, are produced first; the clock and the CPU counters
// run from the first event applied to the last, so that joining the group
// is not counted. It reports the CPU per event of this process (the
// consumer alone: nothing else runs then) and of PostgreSQL's backends on
// the test's databases. Give it a fixed count:
//
//	go test -run '^$' -bench 'BenchmarkConsumer/batch=default' -benchtime 20000x -count 5 ./consumer/
func BenchmarkConsumer(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"batch=1", 1}, {"batch=default", 0}} {
		b.Run(bc.name, func(b *testing.B) { benchConsumer(b, bc.size) })
	}
}

func benchConsumer(b *testing.B, size int) {
	s := newStack(b)
	sale := s.sale(b, 1_000_000_000)
	evs := fullCreatedEvents(sale, b.N)
	for chunk := range slices.Chunk(evs, 5000) {
		s.produce(b, chunk...)
	}
	c := s.inventory(b, func(c *consumer.Config) { c.BatchSize = size })
	r := start(b, c)
	waitApplied(b, c, 1)
	first := c.Stats().Applied
	pg0, go0 := testenv.PostgresCPU(b, s.cfg.DatabaseURLs), testenv.SelfCPU()
	b.ResetTimer()
	waitApplied(b, c, int64(b.N))
	b.StopTimer()
	goCPU, pg1 := testenv.SelfCPU()-go0, testenv.PostgresCPU(b, s.cfg.DatabaseURLs)
	if err := r.stop(b); err != nil {
		b.Fatal(err)
	}
	n := int64(b.N) - first
	if n <= 0 {
		return
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(s.transactions(b, evs)), "events/tx")
	b.ReportMetric(float64(goCPU.Microseconds())/float64(n), "go-cpu-us/event")
	if pg0 != nil && pg1 != nil {
		var d time.Duration
		for pid, t := range pg1 {
			d += t - pg0[pid] // a backend new since pg0 counts from zero
		}
		b.ReportMetric(float64(d.Microseconds())/float64(n), "pg-cpu-us/event")
	}
}

// fullCreatedEvents makes n created events of one sale with 1-3 units
// each, whose data is the whole v1 payload (times included), as the
// shards publish it: the cost of decoding it is part of the figure.
func fullCreatedEvents(sale inventory.SaleID, n int) []inbox.Event {
	evs := make([]inbox.Event, n)
	now := time.Now().UTC()
	for i := range evs {
		id := testenv.NextOrderID()
		q := i%3 + 1
		data, _ := json.Marshal(order.CreatedV1{EventV1: order.EventV1{SchemaVersion: order.SchemaVersion,
			OrderID: strconv.FormatInt(id, 10), SaleID: sale.String(), UserID: "buyer-" + strconv.Itoa(i%1000),
			Quantity: q, AmountCents: int64(100 * q), Currency: "EUR", Status: order.StatusPendingPayment,
			CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}})
		evs[i] = inbox.Event{ID: testenv.EventID(), Source: "/flashsale/shards/" + strconv.Itoa(i%16), Type: order.EventCreated,
			Subject: strconv.FormatInt(id, 10), Time: now, Data: data}
	}
	return evs
}
