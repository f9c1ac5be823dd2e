package order

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"flashsale/inventory"
)

// Abandoner gives back the reservations of requests whose Reserve failed
// without a reply: a timeout or a connection lost while Redis was stalled
// (an AOF rewrite's fork, a paused node). The script may have run and
// taken the units, yet no order will be written under them, and the
// reconciler would return them only after the reservation grace: until
// then a sale looks sold out with units unsold, and the buyer's retry
// finds its key in use. Each is tried at once, then again with backoff
// while Redis does not answer, for up to abandonFor; the reconciler
// settles what is left. Only the attempt's own reservation is released
// (inventory.Reservation.Attempt), never a retry's under the same key.
type Abandoner struct {
	stock Stock
	queue chan abandoned
	log   *slog.Logger
	now   func() time.Time

	queued, returned, dropped atomic.Uint64
}

type abandoned struct {
	r     inventory.Reservation
	since time.Time
}

// Tuning of the Abandoner: its queue, how long it keeps trying, and the
// pause after a round that Redis did not answer.
const (
	abandonQueue      = 4096
	abandonFor        = time.Minute
	abandonTimeout    = time.Second
	abandonBackoffMin = 50 * time.Millisecond
	abandonBackoffMax = 2 * time.Second
)

// NewAbandoner returns an abandoner that releases through stock.
func NewAbandoner(stock Stock, log *slog.Logger) *Abandoner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Abandoner{stock: stock, queue: make(chan abandoned, abandonQueue), log: log, now: time.Now}
}

// AbandonStats counts reservations handed to the abandoner, those whose
// units it returned (a reservation the script never made returns none),
// and those it left to the reconciler (queue full, or Redis away for
// longer than it tries).
type AbandonStats struct{ Queued, Returned, Dropped uint64 }

// Stats reads the counters.
func (a *Abandoner) Stats() AbandonStats {
	return AbandonStats{Queued: a.queued.Load(), Returned: a.returned.Load(), Dropped: a.dropped.Load()}
}

// Add hands over r, whose Reserve failed without a reply; it never waits.
func (a *Abandoner) Add(r inventory.Reservation) {
	select {
	case a.queue <- abandoned{r: r, since: a.now()}:
		a.queued.Add(1)
	default:
		a.dropped.Add(1)
	}
}

// Run releases what is handed over until ctx ends, then tries what is
// left once, within abandonTimeout.
func (a *Abandoner) Run(ctx context.Context) error {
	var pending []abandoned
	wait := abandonBackoffMin
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			a.finish(append(pending, a.drain()...))
			return nil
		case x := <-a.queue:
			pending = append(pending, x)
		case <-retry.C:
		}
		pending = append(pending, a.drain()...)
		var ok bool
		if pending, ok = a.round(ctx, pending); ok {
			wait = abandonBackoffMin
			continue
		}
		retry.Reset(wait)
		wait = min(2*wait, abandonBackoffMax)
	}
}

// drain takes what else is queued.
func (a *Abandoner) drain() []abandoned {
	var out []abandoned
	for {
		select {
		case x := <-a.queue:
			out = append(out, x)
		default:
			return out
		}
	}
}

// round releases pending in order and stops at the first failure: Redis
// is not answering, so the rest would only wait for their timeouts too.
// It returns what is still to do, and whether the round went through.
func (a *Abandoner) round(ctx context.Context, pending []abandoned) ([]abandoned, bool) {
	for i, x := range pending {
		if a.now().Sub(x.since) > abandonFor {
			a.dropped.Add(1)
			a.log.WarnContext(ctx, "abandoned reservation left to the reconciler", "sale_id", x.r.Sale.String(), "since", x.since)
			continue
		}
		if err := a.release(ctx, x.r); err != nil {
			a.log.WarnContext(ctx, "giving back an abandoned reservation failed; retrying", "pending", len(pending)-i, "err", err)
			return append(pending[:0], pending[i:]...), false
		}
	}
	return pending[:0], true
}

func (a *Abandoner) release(ctx context.Context, r inventory.Reservation) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	n, err := a.stock.Abandon(ctx, r)
	if err == nil && n > 0 {
		a.returned.Add(1)
	}
	return err
}

// finish tries pending once more on the way out; the reconciler settles
// what fails.
func (a *Abandoner) finish(pending []abandoned) {
	ctx, cancel := context.WithTimeout(context.Background(), abandonTimeout)
	defer cancel()
	for _, x := range pending {
		if ctx.Err() != nil || a.release(ctx, x.r) != nil {
			a.dropped.Add(1)
		}
	}
}
