package consumer

import (
	"context"
	"sync"
	"time"

	"flashsale/consumer/inbox"
)

// startPruning deletes the consumer's inbox rows past InboxRetention now
// and every PruneInterval until ctx ends, in a goroutine; the returned
// function stops it and waits for it. Without it the inbox grows by one
// row per event for good, and its index with it. Several consumers of
// one name prune the same rows harmlessly.
func (c *Consumer) startPruning(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.PruneInterval)
		defer t.Stop()
		for {
			c.prune(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// prune deletes once; a failure waits for the next round.
func (c *Consumer) prune(ctx context.Context) {
	n, err := inbox.Prune(ctx, c.db, c.cfg.Name, c.cfg.InboxRetention)
	c.stats.pruned.Add(n)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("inbox prune failed", "err", err)
	}
	if n > 0 {
		c.log.Debug("inbox pruned", "rows", n, "retention", c.cfg.InboxRetention.String())
	}
}
