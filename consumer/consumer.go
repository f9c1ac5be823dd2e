// Package consumer reads the order events from Kafka and applies each one
// through an inbox.Handler, once in effect, in batches:
//
//  1. fetch the next message of the consumer's group (kafka-go, offsets
//     committed synchronously, never automatically), then the messages
//     already fetched or arriving within BatchWait, up to BatchSize;
//  2. parse their CloudEvents, then, in one PostgreSQL transaction on
//     database 0, record the batch's event ids in the inbox table under
//     the consumer's name with one statement and apply the handler's
//     effect for each id not recorded before, in message order (a
//     redelivered event finds its inbox row and the effect is skipped);
//     a handler that records the ids with its effect, an
//     inbox.Deduplicator (the ledger), gets the whole batch in one call
//     instead, and no inbox row is written;
//  3. run the handler's AfterCommitBatch once for the batch, or its
//     AfterCommit for each event, when it has them;
//  4. commit the messages' offsets.
//
// One transaction, one fsync and one offset commit thus cover many
// messages: applied one at a time, the consumer fell behind a flash sale.
// A crash or rebalance between 2 and 4 redelivers the messages; the inbox
// (or the Deduplicator's own record) makes that harmless. When any of 2 or
// 3 fails for a batch, its messages are tried again one at a time, in
// order, each in its own transaction: a message that fails MaxAttempts times, with exponential backoff between
// attempts, is written to the dead-letter topic with the error in its
// headers, and its offset is then committed; an attempt that failed while
// database 0 did not answer a ping is not counted, so an outage delays
// messages instead of dead-lettering them. Partition order is kept within
// and across batches; several consumers with the same name and group share
// the partitions. A consumer waits for its topic to exist before it joins
// its group, and creates no topic but the dead-letter one.
//
// The files follow the steps: reader.go joins the group and runs the
// fetch loop, batch.go gathers and applies batches, effects.go commits the
// effects through the inbox, retry.go tries a message alone with backoff,
// deadletter.go writes what failed for good, offsets.go commits offsets,
// prune.go deletes the inbox rows past their retention.
package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/segmentio/kafka-go"

	"flashsale/consumer/inbox"
)

// Event and Handler are the inbox's: handlers need not import this
// package, or Kafka.
type (
	Event   = inbox.Event
	Handler = inbox.Handler
)

// DB is database 0: *pgxpool.Pool is one.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Ping(ctx context.Context) error
}

// Config describes one consumer.
type Config struct {
	// Name keys the inbox ("inventory", "notify"): it, not the group id,
	// decides what counts as a redelivery.
	Name    string
	Brokers []string
	Topic   string
	// GroupID defaults to "flashsale-" + Name.
	GroupID string
	// DeadLetterTopic defaults to DefaultDeadLetterTopic.
	DeadLetterTopic string
	// MaxAttempts before a message is dead-lettered; default 5.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the wait between attempts; defaults
	// 100 ms and 5 s.
	BackoffMin, BackoffMax time.Duration
	// BatchSize caps the messages one transaction and one offset commit
	// cover; default 2048, and 1 applies messages one at a time. A batch
	// takes what is already fetched, so the cap matters only when the
	// consumer is behind: inside serve during a sale, each of a batch's
	// round trips waits for a CPU behind the sale's requests, and 256
	// capped the ledger near 500 events per second (consumer lag p99
	// 2.8–4.9 s in make bench against 0.5–0.7 s with 2048;
	// docs/benchmarks.md).
	BatchSize int
	// BatchWait is how long a batch waits for more messages after its
	// first one; default 10 ms: at a sale's 2,000 events per second it
	// doubled the events per transaction of 2 ms and cut PostgreSQL's CPU
	// per event by about a third (docs/benchmarks.md), for 10 ms of lag
	// against a target of 1 s. Messages already fetched join the batch
	// without waiting.
	BatchWait time.Duration
	// FetchMinBytes is how much data a fetch waits for on the broker, at
	// most FetchMaxWait; defaults 1 byte and 250 ms: a fetch returns as
	// soon as a message is there. 64 KiB / 50 ms cut Kafka's CPU per event
	// in BenchmarkConsumer's steady 4,000 events/s, but in make bench's
	// sale, three alternating pairs gave it a longer consumer lag p99
	// (5.9-7.6 s against 3.7-4.8 s) and no less CPU per order
	// (docs/benchmarks.md): the burst, not the steady rate, is what counts.
	FetchMinBytes int
	FetchMaxWait  time.Duration
	// DrainTimeout bounds how long the batch in hand may take to finish
	// once Run's context ends; default 5 s.
	DrainTimeout time.Duration
	// CloseTimeout bounds leaving the group on shutdown (kafka-go's
	// Reader.Close can hang in a rebalance); default 10 s.
	CloseTimeout time.Duration
	// InboxRetention is how long the consumer's inbox rows are kept;
	// default 7 days, Kafka's default retention. It must exceed how long
	// an event can be redelivered: the topic's retention, and how far
	// back a group may be reset.
	InboxRetention time.Duration
	// PruneInterval is how often the rows older than InboxRetention are
	// deleted; default 1 minute.
	PruneInterval time.Duration
	Log           *slog.Logger
}

// DefaultInboxRetention is Kafka's default log retention (168 hours).
const DefaultInboxRetention = 7 * 24 * time.Hour

// Consumer applies the events of one topic through one handler.
type Consumer struct {
	cfg     Config
	db      DB
	h       Handler
	log     *slog.Logger
	reader  atomic.Pointer[kafka.Reader]
	running atomic.Bool
	inHand  atomic.Int64 // messages of the batch being applied
	stats   struct{ applied, duplicates, failures, deadLettered, committed, pruned atomic.Int64 }
	// effects commits the events' effects with their inbox rows.
	effects effects
}

// New checks cfg and fills its defaults.
func New(cfg Config, db DB, h Handler) (*Consumer, error) {
	if cfg.Name == "" || len(cfg.Name) > 64 || len(cfg.Brokers) == 0 || cfg.Topic == "" || db == nil || h == nil {
		return nil, errors.New("consumer: name (1-64 bytes), brokers, topic, database and handler are required")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = "flashsale-" + cfg.Name
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if cfg.DeadLetterTopic == cfg.Topic {
		return nil, errors.New("consumer: the dead-letter topic must differ from the topic")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(5*time.Second, cfg.BackoffMin)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 2048
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 10 * time.Millisecond
	}
	if cfg.FetchMinBytes <= 0 {
		cfg.FetchMinBytes = 1
	}
	if cfg.FetchMaxWait <= 0 {
		cfg.FetchMaxWait = 250 * time.Millisecond
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 10 * time.Second
	}
	if cfg.InboxRetention <= 0 {
		cfg.InboxRetention = DefaultInboxRetention
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Minute
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("consumer", cfg.Name, "group", cfg.GroupID, "topic", cfg.Topic)
	return &Consumer{cfg: cfg, db: db, h: h, log: log, effects: inboxEffects{db: db, name: cfg.Name, h: h}}, nil
}

// Stats counts what a consumer did since it was made.
type Stats struct {
	Applied      int64 // events whose effect this consumer committed
	Duplicates   int64 // redeliveries the inbox skipped
	Failures     int64 // counted failed attempts
	DeadLettered int64 // messages written to the dead-letter topic
	Committed    int64 // offsets committed
	Pruned       int64 // inbox rows deleted past InboxRetention
}

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	return Stats{Applied: c.stats.applied.Load(), Duplicates: c.stats.duplicates.Load(), Failures: c.stats.failures.Load(),
		DeadLettered: c.stats.deadLettered.Load(), Committed: c.stats.committed.Load(), Pruned: c.stats.pruned.Load()}
}

// Lag is how many messages this consumer is behind on the partitions it
// reads: the high-water mark of its last fetch minus the offset fetched,
// plus the messages fetched but not yet handled (those queued in the
// reader and those of the batch in hand). It is 0 before the first fetch
// and is refreshed by every fetch. (It reads kafka-go's
// Reader.Stats, which resets the reader's own counters; nothing else reads
// them.)
func (c *Consumer) Lag() int64 {
	r := c.reader.Load()
	if r == nil {
		return 0
	}
	s := r.Stats()
	return s.Lag + s.QueueLength + c.inHand.Load()
}
