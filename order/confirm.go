package order

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"flashsale/inventory"
)

// Confirmer tells the stock, in batches per sale, which reservations
// became orders, after their commit. Without it the reconciler had to ask
// PostgreSQL about every reservation once its grace had passed (200,000
// lookups a round in a long sale at 6,700 orders/s); now it asks only
// about those the buy path never confirmed: a crash, a commit whose
// outcome was unknown, a batch this side dropped. Dropping is safe for
// that reason: the queue is bounded and a batch that fails is not
// retried.
type Confirmer struct {
	stock Stock
	queue chan confirmed
	log   *slog.Logger

	queued, sent, dropped atomic.Uint64
}

type confirmed struct {
	sale inventory.SaleID
	key  inventory.BuyerKey
}

// Tuning of the Confirmer: its queue, how long a batch gathers after its
// first order (a script per few orders cost Redis more in calls than in
// marks: 7 µs per order in a soak at 6,700/s), and how long one batch may
// take.
const (
	confirmQueue   = 16384
	confirmLinger  = 20 * time.Millisecond
	confirmTimeout = time.Second
)

// NewConfirmer returns a confirmer that confirms through stock.
func NewConfirmer(stock Stock, log *slog.Logger) *Confirmer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Confirmer{stock: stock, queue: make(chan confirmed, confirmQueue), log: log}
}

// ConfirmStats counts the committed orders handed to the confirmer, those
// it confirmed in Redis, and those it left to the reconciler (queue full,
// or their batch failed).
type ConfirmStats struct{ Queued, Sent, Dropped uint64 }

// Stats reads the counters.
func (c *Confirmer) Stats() ConfirmStats {
	return ConfirmStats{Queued: c.queued.Load(), Sent: c.sent.Load(), Dropped: c.dropped.Load()}
}

// Add hands over the key of an order just committed; it never waits.
func (c *Confirmer) Add(sale inventory.SaleID, key inventory.BuyerKey) {
	select {
	case c.queue <- confirmed{sale, key}:
		c.queued.Add(1)
	default:
		c.dropped.Add(1)
	}
}

// Run confirms what is handed over until ctx ends, then what is left
// once. A batch is what queues within confirmLinger of its first order,
// grouped by sale: one script per sale however many orders committed
// meanwhile. Nobody waits for it; the 201s have gone.
func (c *Confirmer) Run(ctx context.Context) error {
	linger := time.NewTimer(confirmLinger)
	defer linger.Stop()
	for {
		select {
		case <-ctx.Done():
			c.send(context.WithoutCancel(ctx), c.drain(nil))
			return nil
		case x := <-c.queue:
			linger.Reset(confirmLinger)
			select {
			case <-ctx.Done():
			case <-linger.C:
			}
			c.send(context.WithoutCancel(ctx), c.drain([]confirmed{x}))
		}
	}
}

// drain adds what else is queued to batch.
func (c *Confirmer) drain(batch []confirmed) []confirmed {
	for {
		select {
		case x := <-c.queue:
			batch = append(batch, x)
		default:
			return batch
		}
	}
}

// send confirms batch, a script per sale.
func (c *Confirmer) send(ctx context.Context, batch []confirmed) {
	bySale := map[inventory.SaleID][]inventory.BuyerKey{}
	for _, x := range batch {
		bySale[x.sale] = append(bySale[x.sale], x.key)
	}
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	for sale, keys := range bySale {
		if err := c.stock.Confirm(ctx, sale, keys); err != nil {
			c.dropped.Add(uint64(len(keys)))
			c.log.WarnContext(ctx, "confirming committed orders failed; the reconciler will", "sale_id", sale.String(),
				"orders", len(keys), "err", err)
			continue
		}
		c.sent.Add(uint64(len(keys)))
	}
}
