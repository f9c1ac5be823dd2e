// Package outbox publishes the rows of transactional outbox tables to Kafka,
// at least once and in order per aggregate. It knows no domain: a row is an
// aggregate id, an event type and a JSON payload, wrapped on the way out in
// a CloudEvents envelope.
//
// One relay loop runs per shard schema. With several instances, each shard
// has one active loop at a time: the loop holds a RedLock lease per shard,
// and marks rows published only while the lease's fencing token is the one
// recorded in the shard's relay_lease row, so a loop paused past its lease
// cannot mark anything. Rows are marked only after WriteMessages returned
// nil; a crash between the two publishes them again.
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"flashsale"
	"flashsale/lease"
)

// Target is one outbox table: a shard schema on a database.
type Target struct {
	Pool   *pgxpool.Pool
	Schema string
	Shard  int
}

// Publisher is what the relay writes to; *kafka.Writer is one, and tests
// wrap it to inject faults.
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Config tunes the relay.
type Config struct {
	Holder     string        // names this instance in relay_lease, for operators
	Source     string        // CloudEvents source prefix, e.g. "/flashsale"
	BatchSize  int           // most rows read and published at once
	Poll       time.Duration // safety-net poll when no notification arrives
	LeaseTTL   time.Duration // how long a shard lease lives unless extended
	Retention  time.Duration // published rows older than this are deleted
	RetryDelay time.Duration // first wait after a failed publish; doubles up to 2 s
}

// Relay publishes every target's outbox.
type Relay struct {
	targets []Target
	pub     Publisher
	locker  *lease.Locker
	cfg     Config
	log     *slog.Logger
	q       map[string]queries // by schema
	wakes   map[string]chan struct{}
	stats   *Stats
}

type queries struct{ fetch, mark, claim, fence, prune string }

// New returns a relay over targets.
func New(targets []Target, pub Publisher, locker *lease.Locker, cfg Config, log *slog.Logger) *Relay {
	r := &Relay{targets: targets, pub: pub, locker: locker, cfg: cfg, log: log, q: map[string]queries{},
		wakes: map[string]chan struct{}{}, stats: newStats()}
	for _, t := range targets {
		r.wakes[t.Schema] = make(chan struct{}, 1)
		sub := func(name string) string { return strings.ReplaceAll(flashsale.Query(name), "__shard__", t.Schema) }
		r.q[t.Schema] = queries{fetch: sub("outbox_fetch"), mark: sub("outbox_mark"), claim: sub("outbox_claim"),
			fence: sub("outbox_fence"), prune: sub("outbox_prune")}
	}
	return r
}

// Stats reports what the relay published and how long events waited.
func (r *Relay) Stats() *Stats { return r.stats }

// Run relays until ctx ends: one loop per target, woken by Wake when an
// outbox commits in this process, with a poll as the safety net for rows
// other instances commit.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, t := range r.targets {
		wg.Go(func() { r.runTarget(ctx, t, r.wakes[t.Schema]) })
	}
	wg.Wait()
	return nil
}

// Wake tells the loop of schema that rows have committed. It never blocks.
// (PostgreSQL's NOTIFY would wake relays of every instance, but a
// notifying commit takes a cluster-wide lock through its WAL flush, which
// serialised every order commit.)
func (r *Relay) Wake(schema string) {
	select {
	case r.wakes[schema] <- struct{}{}:
	default: // already woken
	}
}

// runTarget takes the target's lease whenever it is free and pumps while
// holding it.
func (r *Relay) runTarget(ctx context.Context, t Target, wake <-chan struct{}) {
	for ctx.Err() == nil {
		le, err := r.locker.Acquire(ctx, "relay:"+t.Schema, 0)
		if err == nil {
			if err = r.claim(ctx, t, le.Token); err == nil {
				err = r.pump(ctx, t, le, wake)
			}
			le.Release(ctx)
		}
		if err != nil && !errors.Is(err, lease.ErrNotAcquired) && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay shard paused", "schema", t.Schema, "err", err)
		}
		sleep(ctx, r.cfg.LeaseTTL/4)
	}
}

// errFenced means a newer relay holds the shard.
var errFenced = errors.New("outbox: fenced off by a newer relay")

func (r *Relay) claim(ctx context.Context, t Target, token int64) error {
	tag, err := t.Pool.Exec(ctx, r.q[t.Schema].claim, token, r.cfg.Holder)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errFenced
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
