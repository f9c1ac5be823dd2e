package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"flashsale/internal/testenv"
)

// BenchmarkRelay measures the relay against the real broker with the
// service's batch size (500) over four shards on two databases:
//   - drain: b.N rows committed as fast as four writers can, so the figure
//     is the relay's throughput (its lag is mostly queueing);
//   - paced=N/s: rows committed at a steady N per second in transactions
//     of 50, so the lag quantiles are commit → Kafka ack at that load;
//   - service-like: the service's 16 shards, each commit adding 2 rows to
//     a shard, 4,000 rows/s in all, as group commits spread orders.
func BenchmarkRelay(b *testing.B) {
	b.Run("drain", func(b *testing.B) { benchRelay(b, 0, 4, 50) })
	for _, rate := range []int{5000, 10000, 17000} {
		b.Run(fmt.Sprintf("paced=%d/s", rate), func(b *testing.B) { benchRelay(b, rate, 4, 50) })
	}
	b.Run("service-like", func(b *testing.B) { benchRelay(b, 4000, 16, 2) })
}

func benchRelay(b *testing.B, rate, shards, tx int) {
	w := newShardedWorld(b, shards)
	w.batch = 500
	r := w.relay(w.writer(), "bench")
	stop := run(r)
	defer stop()
	per := (b.N + len(w.targets) - 1) / len(w.targets)
	pg0, go0 := testenv.PostgresCPU(b, w.cfg.DatabaseURLs), testenv.SelfCPU()
	b.ResetTimer()
	start := time.Now()
	var g errgroup.Group
	for _, tg := range w.targets {
		// Wake as the service's committer does after each commit.
		wake := func() { r.Wake(tg.Shard) }
		g.Go(func() error { return insertPaced(tg.Pool.Exec, wake, tg.Schema, per, rate/len(w.targets), tx) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	for r.Stats().Published() < int64(per*len(w.targets)) {
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	// This process also runs the inserts: their share is the same whatever
	// the relay does.
	b.ReportMetric(float64((testenv.SelfCPU()-go0).Microseconds())/float64(per*len(w.targets)), "go-cpu-us/event")
	if pg1 := testenv.PostgresCPU(b, w.cfg.DatabaseURLs); pg0 != nil && pg1 != nil {
		var d time.Duration
		for pid, t := range pg1 {
			d += t - pg0[pid]
		}
		// The inserts' share is the same whatever the relay does.
		b.ReportMetric(float64(d.Microseconds())/float64(per*len(w.targets)), "pg-cpu-us/event")
	}
	b.ReportMetric(float64(r.Stats().Published())/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(r.Stats().LagQuantile(0.5).Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(r.Stats().LagQuantile(0.99).Microseconds())/1000, "lag-p99-ms")
}

// insertPaced commits n rows in transactions of tx, at rate rows per
// second (0: as fast as possible), waking the relay after each.
func insertPaced[T any](exec func(context.Context, string, ...any) (T, error), wake func(), schema string, n, rate, tx int) error {
	begin := time.Now()
	for done := 0; done < n; done += tx {
		if rate > 0 {
			time.Sleep(time.Until(begin.Add(time.Duration(done) * time.Second / time.Duration(rate))))
		}
		_, err := exec(context.Background(), fmt.Sprintf(`INSERT INTO %s.outbox (aggregate_id, event_type, payload)
			SELECT g, 'bench.event', '{"n":1}' FROM generate_series(1, %d) g`, schema, min(tx, n-done)))
		if err != nil {
			return err
		}
		wake()
	}
	return nil
}
