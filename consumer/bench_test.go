package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale/consumer"
	"flashsale/consumer/inbox"
	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/order"
)

// BenchmarkConsumer measures the inventory consumer over the real ledger,
// Kafka and PostgreSQL with created events of one sale carrying the full
// v1 payload the shards publish. It reports the CPU per event of this
// process and of PostgreSQL's backends on the test's databases:
//   - batch=1 and batch=default drain a backlog: b.N events are produced
//     first, and the clock and the CPU counters run from the first event
//     applied to the last, so this process runs the consumer alone;
//   - paced=N/s produces b.N events at N per second while the consumer
//     runs, as a flash sale's orders arrive, so the batches are as small
//     as that rate makes them; this process's CPU includes the
//     producer's, the same whatever the consumer does, and lag-p99-ms is
//     from an event's production to the commit of its ledger entry.
//
// Give it a fixed count:
//
//	go test -run '^$' -bench 'BenchmarkConsumer/(batch=default|paced)' -benchtime 20000x -count 5 ./consumer/
func BenchmarkConsumer(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"batch=1", 1}, {"batch=default", 0}} {
		b.Run(bc.name, func(b *testing.B) { benchConsumer(b, bc.size) })
	}
	for _, rate := range []int{2000, 4000} {
		b.Run(fmt.Sprintf("paced=%d/s", rate), func(b *testing.B) { benchPaced(b, rate) })
	}
	// The fetch settings side by side: a fetch that returns as soon as one
	// byte is there against one that waits for more (the broker's CPU is
	// kafka-cpu-us/event; the producer's writes are in it, the same for
	// both).
	for _, f := range []struct {
		min  int
		wait time.Duration
	}{{1, 250 * time.Millisecond}, {64 << 10, 50 * time.Millisecond}} {
		b.Run(fmt.Sprintf("paced=4000/s,fetch=%dB/%s", f.min, f.wait), func(b *testing.B) {
			benchPaced(b, 4000, func(c *consumer.Config) { c.FetchMinBytes, c.FetchMaxWait = f.min, f.wait })
		})
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
	s.reportCPU(b, evs, n, goCPU, pg0, pg1)
}

// reportCPU reports events per transaction and the CPU per event of n
// events.
func (s *stack) reportCPU(b *testing.B, evs []inbox.Event, n int64, goCPU time.Duration, pg0, pg1 map[int]time.Duration) {
	b.ReportMetric(float64(len(evs))/float64(s.transactions(b, evs)), "events/tx")
	b.ReportMetric(float64(goCPU.Microseconds())/float64(n), "go-cpu-us/event")
	if pg0 != nil && pg1 != nil {
		var d time.Duration
		for pid, t := range pg1 {
			d += t - pg0[pid] // a backend new since pg0 counts from zero
		}
		b.ReportMetric(float64(d.Microseconds())/float64(n), "pg-cpu-us/event")
	}
}

// benchPaced produces b.N events at rate per second, in writes every
// 10 ms, to a running consumer.
func benchPaced(b *testing.B, rate int, tune ...func(*consumer.Config)) {
	s := newStack(b)
	sale := s.sale(b, 1_000_000_000)
	warm := fullCreatedEvents(sale, 1)
	s.produce(b, warm...)
	c := s.inventory(b, tune...)
	r := start(b, c)
	waitApplied(b, c, 1)
	evs := fullCreatedEvents(sale, b.N)
	kafka0, kafkaOK := testenv.KafkaCPU(s.cfg.KafkaBrokers[0])
	produced := make(map[string]time.Time, len(evs))
	pg0, go0 := testenv.PostgresCPU(b, s.cfg.DatabaseURLs), testenv.SelfCPU()
	b.ResetTimer()
	begin, per := time.Now(), max(1, rate/100)
	for i, chunk := 0, []inbox.Event(nil); i < len(evs); i += len(chunk) {
		time.Sleep(time.Until(begin.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		chunk = evs[i:min(i+per, len(evs))]
		now := time.Now()
		for j := range chunk {
			chunk[j].Time, produced[chunk[j].ID] = now.UTC(), now
		}
		s.produce(b, chunk...)
	}
	waitApplied(b, c, int64(b.N)+1)
	b.StopTimer()
	goCPU, pg1 := testenv.SelfCPU()-go0, testenv.PostgresCPU(b, s.cfg.DatabaseURLs)
	if kafka1, ok := testenv.KafkaCPU(s.cfg.KafkaBrokers[0]); ok && kafkaOK {
		b.ReportMetric(float64((kafka1-kafka0).Microseconds())/float64(b.N), "kafka-cpu-us/event")
	}
	if err := r.stop(b); err != nil {
		b.Fatal(err)
	}
	s.reportCPU(b, evs, int64(b.N), goCPU, pg0, pg1)
	lag := s.ledgerLag(b, produced)
	b.ReportMetric(float64(lag[len(lag)/2].Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(lag[len(lag)*99/100].Microseconds())/1000, "lag-p99-ms")
}

// ledgerLag is, sorted, the time from each event's production to the
// commit of its ledger entry (recorded_at is its transaction's start,
// within a few milliseconds of the commit).
func (s *stack) ledgerLag(b *testing.B, produced map[string]time.Time) []time.Duration {
	rows, _ := s.db.Query(context.Background(), `SELECT event_id::text, recorded_at FROM ledger_entries`)
	var lag []time.Duration
	var id string
	var at time.Time
	_, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		if p, ok := produced[id]; ok {
			lag = append(lag, at.Sub(p))
		}
		return nil
	})
	if err != nil || len(lag) != len(produced) {
		b.Fatalf("%d of %d ledger entries: %v", len(lag), len(produced), err)
	}
	slices.Sort(lag)
	return lag
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
