package consumer

import (
	"context"
	"strconv"

	"github.com/segmentio/kafka-go"
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
