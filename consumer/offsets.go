package consumer

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// offsets are the handled messages whose offsets are not committed yet:
// the last one of each partition, which commits the ones before it, and
// how many they stand for.
type offsets struct {
	last  []kafka.Message
	n     int
	since time.Time
}

// commitEvery bounds how many handled messages, or how long, an offset
// commit may wait. Time decides under load: a commit per batch cost a
// broker round trip (and a write to __consumer_offsets) per 256 messages
// or fewer, while a redelivery after a crash costs only the inbox's
// look-up; the count only bounds a burst.
const (
	commitEveryN = 10_000
	commitEveryT = 200 * time.Millisecond
)

func (o *offsets) add(ms ...kafka.Message) {
	if o.n == 0 {
		o.since = time.Now()
	}
	o.n += len(ms)
	for _, m := range ms {
		o.keep(m)
	}
}

// keep records m as its partition's last handled message; a partition's
// messages are handled in offset order.
func (o *offsets) keep(m kafka.Message) {
	m.Key, m.Value, m.Headers = nil, nil, nil // the commit needs no payload
	for i := range o.last {
		if o.last[i].Topic == m.Topic && o.last[i].Partition == m.Partition {
			o.last[i] = m
			return
		}
	}
	o.last = append(o.last, m)
}

func (o *offsets) due() bool {
	return o.n >= commitEveryN || o.n > 0 && time.Since(o.since) >= commitEveryT
}

// commit commits the pending offsets, even as the consumer stops: a clean
// stop then redelivers nothing.
func (c *Consumer) commit(r *kafka.Reader, o *offsets) {
	if o.n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.CommitMessages(ctx, o.last...); err != nil {
		c.log.Warn("offset commit failed; the messages will be redelivered and skipped",
			"messages", o.n, "err", err)
	} else {
		c.stats.committed.Add(int64(o.n))
	}
	o.last, o.n = o.last[:0], 0
}
