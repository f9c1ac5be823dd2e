// Package consumer reads the order events from Kafka and applies each one
// through an inbox.Handler, once in effect, in batches:
//
//  1. fetch the next message of the consumer's group (kafka-go, offsets
//     committed synchronously, never automatically), then the messages
//     already fetched or arriving within BatchWait, up to BatchSize;
//  2. parse their CloudEvents, then, in one PostgreSQL transaction on
//     database 0, record the batch's event ids in the inbox table under
//     the consumer's name with one statement and apply the handler's
//     effect for each id not recorded before, in message order, in one
//     call when the handler is an inbox.BatchHandler (a redelivered event
//     finds its inbox row and the effect is skipped);
//  3. run the handler's AfterCommitBatch once for the batch, or its
//     AfterCommit for each event, when it has them;
//  4. commit the messages' offsets.
//
// One transaction, one fsync and one offset commit thus cover many
// messages: applied one at a time, the consumer fell behind a flash sale.
// A crash or rebalance between 2 and 4 redelivers the messages; the inbox
// makes that harmless. When any of 2 or 3 fails for a batch, its messages
// are tried again one at a time, in order, each in its own transaction: a
// message that fails MaxAttempts times, with exponential backoff between
// attempts, is written to the dead-letter topic with the error in its
// headers, and its offset is then committed; an attempt that failed while
// database 0 did not answer a ping is not counted, so an outage delays
// messages instead of dead-lettering them. Partition order is kept within
// and across batches; several consumers with the same name and group share
// the partitions. A consumer waits for its topic to exist before it joins
// its group, and creates no topic but the dead-letter one.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"flashsale/consumer/inbox"
)

// Event and Handler are the inbox's: handlers need not import this
// package, or Kafka.
type (
	Event   = inbox.Event
	Handler = inbox.Handler
)

// DefaultDeadLetterTopic receives the messages no consumer could handle.
const DefaultDeadLetterTopic = "flashsale.orders.dlq"

// Headers added to a dead-lettered message, after its own.
const (
	HeaderError     = "dlq_error"     // the last error, at most 1 KiB
	HeaderAttempts  = "dlq_attempts"  // attempts made, decimal
	HeaderConsumer  = "dlq_consumer"  // the consumer's name
	HeaderTopic     = "dlq_topic"     // where the message was read
	HeaderPartition = "dlq_partition" // decimal
	HeaderOffset    = "dlq_offset"    // decimal
)

// DB is database 0: *pgxpool.Pool is one.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
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
	// cover; default 256, and 1 applies messages one at a time.
	BatchSize int
	// BatchWait is how long a batch waits for more messages after its
	// first one; default 2 ms. Messages already fetched join the batch
	// without waiting.
	BatchWait time.Duration
	// DrainTimeout bounds how long the batch in hand may take to finish
	// once Run's context ends; default 5 s.
	DrainTimeout time.Duration
	// CloseTimeout bounds leaving the group on shutdown (kafka-go's
	// Reader.Close can hang in a rebalance); default 10 s.
	CloseTimeout time.Duration
	Log          *slog.Logger
}

// Consumer applies the events of one topic through one handler.
type Consumer struct {
	cfg     Config
	db      DB
	h       Handler
	log     *slog.Logger
	reader  atomic.Pointer[kafka.Reader]
	running atomic.Bool
	inHand  atomic.Int64 // messages of the batch being applied
	stats   struct{ applied, duplicates, failures, deadLettered, committed atomic.Int64 }
	// crash, set by tests only, stops Run between the effect's commit and
	// the offset's, like a process killed there: it is asked about every
	// event once its batch (or its own transaction) committed.
	crash func(Event) bool
}

var errCrashed = errors.New("consumer: simulated crash after the effect committed")

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
		cfg.BatchSize = 256
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 2 * time.Millisecond
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 10 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("consumer", cfg.Name, "group", cfg.GroupID, "topic", cfg.Topic)
	return &Consumer{cfg: cfg, db: db, h: h, log: log}, nil
}

// Stats counts what a consumer did since it was made.
type Stats struct {
	Applied      int64 // events whose effect this consumer committed
	Duplicates   int64 // redeliveries the inbox skipped
	Failures     int64 // counted failed attempts
	DeadLettered int64 // messages written to the dead-letter topic
	Committed    int64 // offsets committed
}

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	return Stats{Applied: c.stats.applied.Load(), Duplicates: c.stats.duplicates.Load(), Failures: c.stats.failures.Load(),
		DeadLettered: c.stats.deadLettered.Load(), Committed: c.stats.committed.Load()}
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

// Run consumes until ctx ends. The attempt in hand (a batch, or one
// message of a batch being tried one at a time) then has DrainTimeout to
// finish (no new attempt starts); the offsets of the messages completed
// are committed, and Run leaves the group within CloseTimeout. An attempt
// cut short is rolled back, or its outcome is unknown; either way its
// messages are redelivered, harmlessly. Run returns nil after a clean
// stop, at most DrainTimeout + CloseTimeout + 5 s after ctx ended.
func (c *Consumer) Run(ctx context.Context) (err error) {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("consumer: already running")
	}
	defer c.running.Store(false)
	kafkaLog := kafka.LoggerFunc(func(f string, a ...any) {
		c.log.Debug("kafka-go: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
	})
	// A transport of its own: kafka-go's default one keeps connections and
	// goroutines for the life of the process.
	transport := &kafka.Transport{DialTimeout: 5 * time.Second}
	defer transport.CloseIdleConnections()
	if !c.awaitTopic(ctx, transport) {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.cfg.Brokers,
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           250 * time.Millisecond,
		CommitInterval:    0, // synchronous: CommitMessages returns the broker's answer
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		JoinGroupBackoff:  time.Second,
		QueueCapacity:     max(100, c.cfg.BatchSize), // a batch can wait while one is applied
		// The group leader rebalances when the topic gains partitions.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		Logger:                 kafkaLog,
		ErrorLogger:            kafkaLog,
	})
	c.reader.Store(r)
	dlq := &kafka.Writer{
		Transport:              transport,
		Addr:                   kafka.TCP(c.cfg.Brokers...),
		Topic:                  c.cfg.DeadLetterTopic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		MaxAttempts:            3,
		WriteTimeout:           5 * time.Second,
		ReadTimeout:            5 * time.Second,
		AllowAutoTopicCreation: true,
	}
	defer func() {
		err = errors.Join(err, c.closeReader(r), dlq.Close())
		c.log.Info("consumer stopped")
	}()
	c.log.Info("consumer started", "dead_letter_topic", c.cfg.DeadLetterTopic, "max_attempts", c.cfg.MaxAttempts)

	wait := c.cfg.BackoffMin
	var pending offsets
	defer func() { c.commit(r, &pending) }()
	batch := make([]kafka.Message, 0, c.cfg.BatchSize)
	for {
		m, err := c.fetch(ctx, r, &pending)
		if errors.Is(err, errIdle) {
			c.commit(r, &pending)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("fetch failed", "err", err)
			if !sleep(ctx, wait) {
				return nil
			}
			wait = min(2*wait, c.cfg.BackoffMax)
			continue
		}
		wait = c.cfg.BackoffMin
		batch = c.gather(ctx, r, append(batch[:0], m))
		c.inHand.Store(int64(len(batch)))
		// process adds the offsets of the messages whose effects are
		// durable to pending; they are committed with the next few, since
		// a redelivered message is skipped by the inbox anyway and a
		// synchronous commit per message capped the consumer at a few
		// hundred events per second.
		err = c.process(ctx, dlq, batch, &pending)
		c.inHand.Store(0)
		if err != nil {
			if errors.Is(err, errCrashed) {
				return err
			}
			return nil // ctx ended: the messages not completed are redelivered
		}
		if pending.due() {
			c.commit(r, &pending)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// errIdle means no message came within the commit interval while offsets
// were pending.
var errIdle = errors.New("consumer: idle")

// fetch waits for the next message; with offsets pending it waits at most
// until they are due, so an idle stream still commits them promptly.
func (c *Consumer) fetch(ctx context.Context, r *kafka.Reader, pending *offsets) (kafka.Message, error) {
	if len(pending.msgs) == 0 {
		return r.FetchMessage(ctx)
	}
	fctx, cancel := context.WithDeadline(ctx, pending.since.Add(commitEveryT))
	defer cancel()
	m, err := r.FetchMessage(fctx)
	if err != nil && ctx.Err() == nil && fctx.Err() != nil {
		return m, errIdle
	}
	return m, err
}

// offsets are the handled messages whose offsets are not committed yet.
type offsets struct {
	msgs  []kafka.Message
	since time.Time
}

// commitEvery bounds how many handled messages, or how long, an offset
// commit may wait.
const (
	commitEveryN = 200
	commitEveryT = 200 * time.Millisecond
)

func (o *offsets) add(ms ...kafka.Message) {
	if len(o.msgs) == 0 {
		o.since = time.Now()
	}
	o.msgs = append(o.msgs, ms...)
}

func (o *offsets) due() bool {
	return len(o.msgs) >= commitEveryN || len(o.msgs) > 0 && time.Since(o.since) >= commitEveryT
}

// commit commits the pending offsets, even as the consumer stops: a clean
// stop then redelivers nothing.
func (c *Consumer) commit(r *kafka.Reader, o *offsets) {
	if len(o.msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.CommitMessages(ctx, o.msgs...); err != nil {
		c.log.Warn("offset commit failed; the messages will be redelivered and skipped",
			"messages", len(o.msgs), "err", err)
	} else {
		c.stats.committed.Add(int64(len(o.msgs)))
	}
	o.msgs = o.msgs[:0]
}

// awaitTopic waits until the topic exists with partitions; false when ctx
// ended first. A group joined before its topic exists can be left with no
// partitions for good (kafka-go's partition watcher takes the topic it
// first sees as the baseline), and kafka-go's own metadata requests would
// create the topic with the broker's defaults. The metadata request here
// asks for no creation: the relay creates the topic with its settings.
func (c *Consumer) awaitTopic(ctx context.Context, tr *kafka.Transport) bool {
	cl := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: tr, Timeout: 5 * time.Second}
	wait := c.cfg.BackoffMin
	for logged := false; ; {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.cfg.Topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			return true
		}
		if err == nil && len(md.Topics) == 1 {
			err = md.Topics[0].Error
		}
		if !logged {
			c.log.Warn("waiting for the topic to exist", "err", err)
			logged = true
		}
		if !sleep(ctx, wait) {
			return false
		}
		wait = min(2*wait, c.cfg.BackoffMax)
	}
}

// closeReader leaves the group, giving up after CloseTimeout.
func (c *Consumer) closeReader(r *kafka.Reader) error {
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	t := time.NewTimer(c.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("consumer %s: leaving the group took longer than %s", c.cfg.Name, c.cfg.CloseTimeout)
	}
}

// gather adds to batch, which holds a batch's first message, the messages
// that come within BatchWait of it, up to BatchSize. kafka-go hands out a
// message it already fetched even when the context given to FetchMessage
// is about to end, and a FetchMessage cut short by the window takes no
// message: the next fetch returns it.
func (c *Consumer) gather(ctx context.Context, r *kafka.Reader, batch []kafka.Message) []kafka.Message {
	if len(batch) >= c.cfg.BatchSize {
		return batch
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.BatchWait)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		m, err := r.FetchMessage(wctx)
		if err != nil {
			// The window passed, or Run's ctx ended (the batch in hand
			// is still applied, within DrainTimeout), or the fetch
			// failed: the next fetch, outside any batch, retries it with
			// backoff.
			if wctx.Err() == nil {
				c.log.Warn("fetch failed while gathering a batch", "err", err)
			}
			return batch
		}
		batch = append(batch, m)
	}
	return batch
}

// process applies batch and adds the offsets of its completed messages to
// pending: in one transaction when it can, else one message at a time, in
// order, with handle's retries and dead-lettering. It returns an error only
// when ctx ended (or a simulated crash).
func (c *Consumer) process(ctx context.Context, dlq *kafka.Writer, batch []kafka.Message, pending *offsets) error {
	committed := make([]bool, len(batch))
	if len(batch) > 1 {
		done, err := c.attemptBatch(ctx, batch, committed)
		switch {
		case err != nil:
			return err
		case done:
			pending.add(batch...)
			return nil
		}
	}
	for i, m := range batch {
		// Once Run is told to stop no new attempt starts: the attempt in
		// hand was the batch, unless the batch is this lone message.
		if len(batch) > 1 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := c.handle(ctx, dlq, m, committed[i]); err != nil {
			return err
		}
		pending.add(m)
	}
	return nil
}

// attemptBatch applies batch in one transaction, then the handler's
// after-commit work. done is false when any step failed: the caller then
// tries each message alone, and the inbox skips those whose effects
// committed here, which committed[i] marks so that Stats still counts them
// as applied. err is only a simulated crash.
func (c *Consumer) attemptBatch(ctx context.Context, batch []kafka.Message, committed []bool) (done bool, err error) {
	evs := make([]Event, len(batch))
	for i, m := range batch {
		if evs[i], err = parse(m); err != nil {
			return false, nil // handle dead-letters it after its attempts
		}
	}
	actx, cancel := detach(ctx, c.cfg.DrainTimeout)
	defer cancel()
	applied, err := inbox.ApplyBatch(actx, c.db, c.cfg.Name, evs, c.h)
	if err != nil {
		c.log.Warn("batch failed; trying its messages one at a time", "messages", len(batch), "err", err)
		return false, nil
	}
	copy(committed, applied)
	for _, ev := range evs {
		if c.crash != nil && c.crash(ev) {
			return false, errCrashed
		}
	}
	if err := c.afterCommitBatch(actx, evs); err != nil {
		c.log.Warn("after-commit of a batch failed; trying its messages one at a time", "messages", len(batch), "err", err)
		return false, nil
	}
	for _, a := range applied {
		if a {
			c.stats.applied.Add(1)
		} else {
			c.stats.duplicates.Add(1)
		}
	}
	return true, nil
}

// afterCommitBatch runs the handler's after-commit work for a committed
// batch: once for all its events when the handler can, else per event.
func (c *Consumer) afterCommitBatch(ctx context.Context, evs []Event) error {
	if bc, ok := c.h.(inbox.BatchAfterCommitter); ok {
		if err := bc.AfterCommitBatch(ctx, evs); err != nil {
			return fmt.Errorf("after commit: %w", err)
		}
		return nil
	}
	ac, ok := c.h.(inbox.AfterCommitter)
	if !ok {
		return nil
	}
	for _, ev := range evs {
		if err := ac.AfterCommit(ctx, ev); err != nil {
			return fmt.Errorf("after commit of %s: %w", ev.ID, err)
		}
	}
	return nil
}

// handle tries m until it is applied or dead-lettered; it returns an error
// only when ctx ended (or a simulated crash). applied says that a batch
// already committed m's effect: Stats counts it as applied, not as a
// duplicate, though this attempt finds its inbox row.
func (c *Consumer) handle(ctx context.Context, dlq *kafka.Writer, m kafka.Message, applied bool) error {
	wait := c.cfg.BackoffMin
	attempts := 0
	for {
		actx, cancel := detach(ctx, c.cfg.DrainTimeout)
		a, err := c.attempt(actx, m)
		cancel()
		applied = applied || a
		if err == nil {
			if applied {
				c.stats.applied.Add(1)
			} else {
				c.stats.duplicates.Add(1)
			}
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, errCrashed) {
			return errors.Join(err, ctx.Err())
		}
		log := c.log.With("partition", m.Partition, "offset", m.Offset, "err", err)
		if c.databaseDown(ctx) {
			log.Warn("database 0 unreachable; retrying without counting the attempt", "retry_in", wait.String())
		} else {
			attempts++
			c.stats.failures.Add(1)
			if attempts >= c.cfg.MaxAttempts {
				return c.deadLetter(ctx, dlq, m, err, attempts)
			}
			log.Warn("attempt failed", "attempt", attempts, "max_attempts", c.cfg.MaxAttempts, "retry_in", wait.String())
		}
		if !sleep(ctx, jitter(wait)) {
			return ctx.Err()
		}
		wait = min(2*wait, c.cfg.BackoffMax)
	}
}

// attempt applies m once; applied says whether this attempt committed the
// effect (false for a redelivery).
func (c *Consumer) attempt(ctx context.Context, m kafka.Message) (applied bool, err error) {
	ev, err := parse(m)
	if err != nil {
		return false, err
	}
	applied, err = inbox.Apply(ctx, c.db, c.cfg.Name, ev, c.h)
	if err != nil {
		return false, err
	}
	if c.crash != nil && c.crash(ev) {
		return applied, errCrashed
	}
	if ac, ok := c.h.(inbox.AfterCommitter); ok {
		if err := ac.AfterCommit(ctx, ev); err != nil {
			return applied, fmt.Errorf("after commit: %w", err)
		}
	}
	return applied, nil
}

// parse reads the CloudEvent of m and checks it against the ce_id and
// ce_type headers, when present.
func parse(m kafka.Message) (Event, error) {
	ev, err := inbox.Parse(m.Value)
	if err != nil {
		return Event{}, err
	}
	for _, h := range m.Headers {
		switch {
		case h.Key == "ce_id" && !strings.EqualFold(string(h.Value), ev.ID):
			return Event{}, fmt.Errorf("%w: header ce_id %q differs from id %q", inbox.ErrInvalidEvent, h.Value, ev.ID)
		case h.Key == "ce_type" && string(h.Value) != ev.Type:
			return Event{}, fmt.Errorf("%w: header ce_type %q differs from type %q", inbox.ErrInvalidEvent, h.Value, ev.Type)
		}
	}
	return ev, nil
}

// databaseDown says whether database 0 fails a ping: an attempt that failed
// then says nothing about its message.
func (c *Consumer) databaseDown(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.db.Ping(pctx) != nil && ctx.Err() == nil
}

// deadLetter writes m with the error to the dead-letter topic, retrying
// until the write succeeds or ctx ends: the offset is committed only after.
func (c *Consumer) deadLetter(ctx context.Context, w *kafka.Writer, m kafka.Message, cause error, attempts int) error {
	why := cause.Error()
	if len(why) > 1024 {
		why = why[:1024]
	}
	headers := append(append([]kafka.Header(nil), m.Headers...),
		kafka.Header{Key: HeaderError, Value: []byte(why)},
		kafka.Header{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		kafka.Header{Key: HeaderConsumer, Value: []byte(c.cfg.Name)},
		kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))})
	msg := kafka.Message{Key: m.Key, Value: m.Value, Headers: headers}
	wait := c.cfg.BackoffMin
	for {
		wctx, cancel := detach(ctx, c.cfg.DrainTimeout)
		err := w.WriteMessages(wctx, msg)
		cancel()
		if err == nil {
			c.stats.deadLettered.Add(1)
			c.log.Error("message dead-lettered", "partition", m.Partition, "offset", m.Offset,
				"attempts", attempts, "err", why, "dead_letter_topic", c.cfg.DeadLetterTopic)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Error("dead-letter write failed; retrying", "partition", m.Partition, "offset", m.Offset, "err", err)
		if !sleep(ctx, jitter(wait)) {
			return ctx.Err()
		}
		wait = min(2*wait, c.cfg.BackoffMax)
	}
}

// detach returns a context that ends grace after ctx ends (or when
// cancelled): work in hand can finish when Run is told to stop.
func detach(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return dctx, func() {
		stop()
		cancel()
	}
}

// jitter spreads d over [0.8d, 1.2d) so that consumers retrying together
// drift apart.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(d*2/5+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
