package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"flashsale/internal/testenv"
	"flashsale/outbox"
)

// BenchmarkRelay measures the relay against the real broker with the
// service's batch size (500) over four shards on two databases:
//   - drain: b.N rows committed as fast as four writers can, so the figure
//     is the relay's throughput (its lag is mostly queueing);
//   - paced=N/s: rows committed at a steady N per second in transactions
//     of 50, so the lag quantiles are commit → Kafka ack at that load;
//   - service-like: the service's 16 shards, each commit adding 2 rows to
//     a shard, 4,000 rows/s in all, as group commits spread orders.
//
// Each first runs the same inserts with no relay, so that the relay's own
// CPU per event (relay-go-cpu, relay-pg-cpu) is reported beside the
// totals.
func BenchmarkRelay(b *testing.B) {
	b.Run("drain", func(b *testing.B) { benchRelay(b, 0, 4, 50, benchOpts{}) })
	for _, rate := range []int{5000, 10000, 17000} {
		b.Run(fmt.Sprintf("paced=%d/s", rate), func(b *testing.B) { benchRelay(b, rate, 4, 50, benchOpts{}) })
	}
	b.Run("service-like", func(b *testing.B) { benchRelay(b, 4000, 16, 2, benchOpts{}) })
	// How long the writer lets a partition's batch gather messages from
	// the shards' concurrent writes, side by side.
	for _, wait := range []time.Duration{2 * time.Millisecond, 10 * time.Millisecond} {
		b.Run("service-like,batch-timeout="+wait.String(), func(b *testing.B) {
			benchRelay(b, 4000, 16, 2, benchOpts{writer: func(wr *outbox.Writer) { wr.BatchTimeout = wait }})
		})
	}
	// Published rows moved to outbox_published (kept for the retention)
	// against deleted, side by side.
	for _, keep := range []time.Duration{24 * time.Hour, 0} {
		b.Run("service-like,retention="+keep.String(), func(b *testing.B) {
			benchRelay(b, 4000, 16, 2, benchOpts{relay: func(c *outbox.Config) { c.Retention = keep }})
		})
	}
}

// benchOpts change the writer and the relay's config from the tests'.
type benchOpts struct {
	writer func(*outbox.Writer)
	relay  func(*outbox.Config)
}

func benchRelay(b *testing.B, rate, shards, tx int, o benchOpts) {
	per := (b.N + shards - 1) / shards
	// The same inserts with no relay, on databases of their own: what the
	// relay adds is the difference.
	insertGo, insertPG := insertCPU(b, rate, shards, tx, per)
	w := newShardedWorld(b, shards)
	w.batch = 500
	wr := w.writer()
	if o.writer != nil {
		o.writer(wr)
	}
	if o.relay == nil {
		o.relay = func(*outbox.Config) {}
	}
	inserts := w.targets
	w.targets = relayTargets(b, w) // the relay's own connections, to tell its PostgreSQL CPU
	r := w.relayWith(wr, "bench", o.relay)
	w.targets = inserts
	stop := run(r)
	defer stop()
	pg0, go0 := testenv.PostgresCPU(b, w.cfg.DatabaseURLs), testenv.SelfCPU()
	kafka0, kafkaOK := testenv.KafkaCPU(w.cfg.KafkaBrokers[0])
	wr.Stats() // resets the writer's counters
	b.ResetTimer()
	start := time.Now()
	if err := insertAll(w, rate, tx, per, func(shard int) { r.Wake(shard) }); err != nil {
		b.Fatal(err)
	}
	for r.Stats().Published() < int64(per*len(w.targets)) {
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	events := float64(per * len(w.targets))
	if kafka1, ok := testenv.KafkaCPU(w.cfg.KafkaBrokers[0]); ok && kafkaOK {
		b.ReportMetric(float64((kafka1-kafka0).Microseconds())/events, "kafka-cpu-us/event")
	}
	goCPU, pgCPU, relayPG := testenv.SelfCPU()-go0, pgSince(b, w, pg0), relaySince(b, w, pg0)
	// This process also runs the inserts: go-cpu and pg-cpu include them.
	// relay-go-cpu is go-cpu less the inserts' alone (noisy on a shared
	// machine: take medians); relay-pg-cpu is the CPU of the relay's own
	// backends.
	b.ReportMetric(float64(goCPU.Microseconds())/events, "go-cpu-us/event")
	b.ReportMetric(float64((goCPU-insertGo).Microseconds())/events, "relay-go-cpu-us/event")
	if pgCPU >= 0 && insertPG >= 0 {
		b.ReportMetric(float64(pgCPU.Microseconds())/events, "pg-cpu-us/event")
		b.ReportMetric(float64(relayPG.Microseconds())/events, "relay-pg-cpu-us/event")
	}
	// Each produce request costs the broker about the same whatever it
	// carries: messages per request is what the broker's CPU follows.
	if ws := wr.Stats(); ws.Writes > 0 {
		b.ReportMetric(float64(ws.Messages)/float64(ws.Writes), "msgs/produce")
	}
	b.ReportMetric(float64(r.Stats().Published())/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(r.Stats().LagQuantile(0.5).Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(r.Stats().LagQuantile(0.99).Microseconds())/1000, "lag-p99-ms")
}

// insertCPU is the Go and PostgreSQL CPU the inserts of a run take alone,
// with no relay (PostgreSQL's is negative when its processes can't be read).
func insertCPU(b *testing.B, rate, shards, tx, per int) (goCPU, pgCPU time.Duration) {
	w := newShardedWorld(b, shards)
	pg0, go0 := testenv.PostgresCPU(b, w.cfg.DatabaseURLs), testenv.SelfCPU()
	if err := insertAll(w, rate, tx, per, func(int) {}); err != nil {
		b.Fatal(err)
	}
	return testenv.SelfCPU() - go0, pgSince(b, w, pg0)
}

// insertAll runs insertPaced on every shard of w at once, rate rows per
// second in all.
func insertAll(w *world, rate, tx, per int, wake func(shard int)) error {
	var g errgroup.Group
	for _, tg := range w.targets {
		// Wake as the service's committer does after each commit.
		g.Go(func() error {
			return insertPaced(tg.Pool.Exec, func() { wake(tg.Shard) }, tg.Schema, per, rate/len(w.targets), tx)
		})
	}
	return g.Wait()
}

// pgSince is the CPU w's PostgreSQL backends used since pg0, or -1.
func pgSince(b *testing.B, w *world, pg0 map[int]time.Duration) time.Duration {
	pg1 := testenv.PostgresCPU(b, w.cfg.DatabaseURLs)
	if pg0 == nil || pg1 == nil {
		return -1
	}
	var d time.Duration
	for pid, t := range pg1 {
		d += t - pg0[pid]
	}
	return d
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

// relayApp names the relay's connections in pg_stat_activity.
const relayApp = "bench-relay"

// relayTargets are w's targets over pools of their own, named relayApp.
func relayTargets(b *testing.B, w *world) []outbox.Target {
	byPool := map[*pgxpool.Pool]*pgxpool.Pool{}
	for i, u := range w.cfg.DatabaseURLs {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			b.Fatal(err)
		}
		pc.ConnConfig.RuntimeParams["application_name"] = relayApp
		p, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		byPool[w.pools[i]] = p
	}
	targets := slices.Clone(w.targets)
	for i := range targets {
		targets[i].Pool = byPool[targets[i].Pool]
	}
	return targets
}

// relaySince is the CPU the relay's backends used since pg0, or -1.
func relaySince(b *testing.B, w *world, pg0 map[int]time.Duration) time.Duration {
	pg1 := testenv.PostgresCPU(b, w.cfg.DatabaseURLs)
	if pg0 == nil || pg1 == nil {
		return -1
	}
	var d time.Duration
	for _, p := range w.pools {
		rows, _ := p.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()", relayApp)
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			b.Fatal(err)
		}
		for _, pid := range pids {
			d += pg1[int(pid)] - pg0[int(pid)]
		}
	}
	return d
}
