// Package outbox publishes the rows of transactional outbox tables to Kafka,
// at least once and in order per aggregate. It knows no domain: a row is an
// aggregate id, an event type and a JSON payload, wrapped on the way out in
// a CloudEvents envelope.
//
// One relay loop runs per database and relays the shard schemas it holds a
// lease on. With several instances, each shard is relayed by one loop at a
// time: the loop holds a RedLock lease per shard, and marks a shard's rows
// published only while the lease's fencing token is the one recorded in the
// shard's relay_lease row, so a loop paused past its lease cannot mark
// anything. Rows are marked only after WriteMessages returned nil; a crash
// between the two publishes them again.
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
	groups []*group
	byName map[string]*group // by schema
	pub    Publisher
	locker *lease.Locker
	cfg    Config
	log    *slog.Logger
	q      map[string]queries // by schema
	stats  *Stats
}

// group is the targets of one database, relayed by one loop: a round reads
// every held shard in one round trip, publishes their rows in one write
// and marks them in one transaction, so the cost of a round is shared by
// the database's shards instead of paid by each.
type group struct {
	pool    *pgxpool.Pool
	targets []Target
	wake    chan struct{}
}

type queries struct{ fetch, mark, claim, fence, prune string }

// New returns a relay over targets.
func New(targets []Target, pub Publisher, locker *lease.Locker, cfg Config, log *slog.Logger) *Relay {
	r := &Relay{byName: map[string]*group{}, pub: pub, locker: locker, cfg: cfg, log: log, q: map[string]queries{},
		stats: newStats()}
	byPool := map[*pgxpool.Pool]*group{}
	for _, t := range targets {
		g := byPool[t.Pool]
		if g == nil {
			g = &group{pool: t.Pool, wake: make(chan struct{}, 1)}
			byPool[t.Pool] = g
			r.groups = append(r.groups, g)
		}
		g.targets = append(g.targets, t)
		r.byName[t.Schema] = g
		sub := func(q string) string { return strings.ReplaceAll(q, "__shard__", t.Schema) }
		r.q[t.Schema] = queries{fetch: sub(flashsale.SQL.OutboxFetch), mark: sub(flashsale.SQL.OutboxMark), claim: sub(flashsale.SQL.OutboxClaim),
			fence: sub(flashsale.SQL.OutboxFence), prune: sub(flashsale.SQL.OutboxPrune)}
	}
	return r
}

// Stats reports what the relay published and how long events waited.
func (r *Relay) Stats() *Stats { return r.stats }

// Run relays until ctx ends: one loop per database, woken by Wake when an
// outbox commits in this process, with a poll as the safety net for rows
// other instances commit.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, g := range r.groups {
		wg.Go(func() { r.runGroup(ctx, g) })
	}
	wg.Wait()
	return nil
}

// Wake tells the loop of schema's database that rows have committed. It
// never blocks. (PostgreSQL's NOTIFY would wake relays of every instance,
// but a notifying commit takes a cluster-wide lock through its WAL flush,
// which serialised every order commit.)
func (r *Relay) Wake(schema string) {
	g := r.byName[schema]
	if g == nil {
		return
	}
	select {
	case g.wake <- struct{}{}:
	default: // already woken
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
