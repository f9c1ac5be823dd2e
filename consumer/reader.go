package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Run consumes until ctx ends. The attempt in hand (a batch, or one
// message of a batch being tried one at a time) then has DrainTimeout to
// finish (no new attempt starts); the offsets of the messages completed
// are committed, and Run leaves the group within CloseTimeout. An attempt
// cut short is rolled back, or its outcome is unknown; either way its
// messages are redelivered, harmlessly. Run returns nil after a clean
// stop, at most DrainTimeout + CloseTimeout + 5 s after ctx ended. Run also
// prunes the consumer's inbox (prune.go), from its start on, even while it
// waits for its topic.
func (c *Consumer) Run(ctx context.Context) (err error) {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("consumer: already running")
	}
	defer c.running.Store(false)
	defer c.startPruning(ctx)()
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
	r := c.newReader(kafkaLog)
	c.reader.Store(r)
	dlq := c.newDeadLetterWriter(transport)
	defer func() {
		err = errors.Join(err, c.closeReader(r), dlq.Close())
		c.log.Info("consumer stopped")
	}()
	c.log.Info("consumer started", "dead_letter_topic", c.cfg.DeadLetterTopic, "max_attempts", c.cfg.MaxAttempts)
	return c.loop(ctx, r, dlq)
}

// loop fetches, batches and processes messages until ctx ends (nil) or
// the effects halt Run (errHalt), committing the offsets of the messages
// handled on its way out.
func (c *Consumer) loop(ctx context.Context, r *kafka.Reader, dlq *kafka.Writer) error {
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
			if errors.Is(err, errHalt) {
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

// newReader joins the group with synchronous offset commits only.
func (c *Consumer) newReader(kafkaLog kafka.LoggerFunc) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.cfg.Brokers,
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		MinBytes:          c.cfg.FetchMinBytes,
		MaxBytes:          10 << 20,
		MaxWait:           c.cfg.FetchMaxWait,
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
}

// newDeadLetterWriter writes to the dead-letter topic, creating it if
// needed: it is the one topic a consumer creates.
func (c *Consumer) newDeadLetterWriter(transport *kafka.Transport) *kafka.Writer {
	return &kafka.Writer{
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
}

// errIdle means no message came within the commit interval while offsets
// were pending.
var errIdle = errors.New("consumer: idle")

// fetch waits for the next message; with offsets pending it waits at most
// until they are due, so an idle stream still commits them promptly.
func (c *Consumer) fetch(ctx context.Context, r *kafka.Reader, pending *offsets) (kafka.Message, error) {
	if pending.n == 0 {
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
