package consumer

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

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
