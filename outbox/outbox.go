// Package outbox publishes the rows of transactional outbox tables to Kafka,
// at least once and in order per aggregate. It knows no domain: a row is an
// aggregate id, an event type and a JSON payload, wrapped on the way out in
// a CloudEvents envelope.
//
// One relay loop runs per database and relays the shard schemas it holds a
// lease on. With several instances, each shard is relayed by one loop at a
// time: the loop holds a RedLock lease per shard, publishes a shard's rows
// only while that lease is still its own (checked again right before every
// write), and marks them published only while the lease's fencing token is
// the one recorded in the shard's relay_lease row, so a loop paused past
// its lease publishes and marks nothing. Rows are marked only after
// WriteMessages returned nil; a crash between the two publishes them again.
//
// Relays share the shards: each takes at most its share of them over the
// relays alive (share.go), and a commit in any instance wakes the relay
// holding its shard (wake.go).
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
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
	Holder    string        // names this instance in relay_lease, for operators
	Prefix    string        // the deployment's Redis key prefix: relays sharing it share the shards
	Source    string        // CloudEvents source prefix, e.g. "/flashsale"
	BatchSize int           // most rows read and published at once
	Poll      time.Duration // safety-net poll when no notification arrives
	// Retention is how long published rows are kept in outbox_published
	// for operators; 0 deletes them once Kafka acknowledged them, keeping
	// no copy, which costs PostgreSQL less (docs/benchmarks.md).
	Retention  time.Duration
	RetryDelay time.Duration // first wait after a failed publish; doubles up to 2 s
}

// Relay publishes the outbox of the shards it holds.
type Relay struct {
	groups  []*group
	slots   map[int]*slot // by shard
	pub     Publisher
	locker  *lease.Locker
	ttl     time.Duration // the locker's: how long a shard lease lives unless extended
	members *members
	rdb     *redis.Client // membership and wake-ups between instances
	cfg     Config
	log     *slog.Logger
	q       map[string]queries // by schema
	stats   *Stats
	refresh chan struct{} // another relay joined or left: renew the heartbeat now
}

// group is the targets of one database, relayed by one loop: a round reads
// every held shard in one round trip, publishes their rows in one write
// and marks them in one transaction, so the cost of a round is shared by
// the database's shards instead of paid by each.
type group struct {
	pool      *pgxpool.Pool
	targets   []Target
	wake      chan struct{}
	rebalance chan struct{} // the relays alive changed: take or give shards now
	alive     atomic.Int64  // when the loop last went round (unix ns): a loop stuck stops the heartbeat
}

// slot is what the relay knows of one shard across its goroutines.
type slot struct {
	g     *group
	held  atomic.Bool // this relay's loop holds the shard's lease
	dirty atomic.Bool // rows committed since the shard was last read
}

type queries struct{ fetch, mark, claim, fence, prune, release string }

// New returns a relay over targets. rdb (a Redis node every instance
// shares, under cfg.Prefix) carries the heartbeats that share the shards
// and the wake-ups between instances. A shard lease lives for the
// locker's TTL unless extended: the relay times its extensions and its
// trust in a lease by that one figure, the one RedLock expires it by.
func New(targets []Target, pub Publisher, locker *lease.Locker, rdb *redis.Client, cfg Config, log *slog.Logger) *Relay {
	ttl := locker.TTL()
	r := &Relay{slots: map[int]*slot{}, pub: pub, locker: locker, ttl: ttl, rdb: rdb, cfg: cfg, log: log, q: map[string]queries{},
		stats: newStats(), refresh: make(chan struct{}, 1), members: newMembers(rdb, cfg.Prefix, cfg.Holder, ttl/2)}
	byPool := map[*pgxpool.Pool]*group{}
	for _, t := range targets {
		g := byPool[t.Pool]
		if g == nil {
			g = &group{pool: t.Pool, wake: make(chan struct{}, 1), rebalance: make(chan struct{}, 1)}
			byPool[t.Pool] = g
			r.groups = append(r.groups, g)
		}
		g.targets = append(g.targets, t)
		r.slots[t.Shard] = &slot{g: g}
		sub := func(q string) string { return strings.ReplaceAll(q, "__shard__", t.Schema) }
		mark := flashsale.SQL.OutboxMark
		if cfg.Retention == 0 {
			mark = flashsale.SQL.OutboxDelete
		}
		r.q[t.Schema] = queries{fetch: sub(flashsale.SQL.OutboxFetch), mark: sub(mark), claim: sub(flashsale.SQL.OutboxClaim),
			fence: sub(flashsale.SQL.OutboxFence), prune: sub(flashsale.SQL.OutboxPrune), release: sub(flashsale.SQL.OutboxRelease)}
	}
	return r
}

// Stats reports what the relay published and how long events waited.
func (r *Relay) Stats() *Stats { return r.stats }

// Run relays until ctx ends: one loop per database over the shards this
// relay holds, its heartbeat among the relays alive, and its subscription
// to wake-ups from other instances. On its way out it gives its shards
// back and tells the others, so they take them over at once.
func (r *Relay) Run(ctx context.Context) error {
	r.heartbeat(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.runMembers(ctx) })
	wg.Go(func() { r.listen(ctx) })
	var loops sync.WaitGroup
	for _, g := range r.groups {
		loops.Go(func() { r.runGroup(ctx, g) })
	}
	loops.Wait()
	wg.Wait()
	r.leave(ctx)
	return nil
}

// Wake tells the loop holding shard that rows have committed, and reports
// whether this relay holds it. It never blocks.
func (r *Relay) Wake(shard int) bool {
	s := r.slots[shard]
	if s == nil || !s.held.Load() {
		return false
	}
	s.dirty.Store(true)
	select {
	case s.g.wake <- struct{}{}:
	default: // already woken
	}
	return true
}

// Held lists the shards whose lease this relay holds now. Across
// processes the same is in each shard's relay_lease row: holder names the
// relay holding the lease, or is NULL once it was given back; a holder
// that died stays named until the lease expires and another relay claims
// the shard (updated_at tells when it was claimed).
func (r *Relay) Held() []int {
	var out []int
	for _, g := range r.groups {
		for _, t := range g.targets {
			if r.slots[t.Shard].held.Load() {
				out = append(out, t.Shard)
			}
		}
	}
	return out
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
