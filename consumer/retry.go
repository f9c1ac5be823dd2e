package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"flashsale/consumer/inbox"
)

// handle tries m until it is applied or dead-lettered; it returns an error
// only when ctx ended (or the effects halted Run). applied says that a batch
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
		if ctx.Err() != nil || errors.Is(err, errHalt) {
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
	applied, err = c.effects.Apply(ctx, ev)
	if err != nil {
		return applied, err
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
