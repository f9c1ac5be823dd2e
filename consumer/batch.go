package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"flashsale/consumer/inbox"
)

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
// when ctx ended (or the effects halted Run).
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
// as applied. err is only errHalt.
func (c *Consumer) attemptBatch(ctx context.Context, batch []kafka.Message, committed []bool) (done bool, err error) {
	evs := make([]Event, len(batch))
	for i, m := range batch {
		if evs[i], err = parse(m); err != nil {
			return false, nil // handle dead-letters it after its attempts
		}
	}
	actx, cancel := detach(ctx, c.cfg.DrainTimeout)
	defer cancel()
	applied, err := c.effects.ApplyBatch(actx, evs)
	if errors.Is(err, errHalt) {
		return false, err
	}
	if err != nil {
		c.log.Warn("batch failed; trying its messages one at a time", "messages", len(batch), "err", err)
		return false, nil
	}
	copy(committed, applied)
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
