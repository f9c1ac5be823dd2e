package invredis

import (
	"context"
	"time"

	"flashsale/internal/batch"
	"flashsale/inventory"
)

// ReserveBatch runs one batch's round trip, so tests can choose what a
// batch holds.
func (s *Stock) ReserveBatch(ctx context.Context, rs []inventory.Reservation) []batch.Result[inventory.Reserved] {
	out := make([]batch.Result[inventory.Reserved], len(rs))
	s.reserveBatch(ctx, rs, out)
	return out
}

// SetRecheck sets the sold-out memory's look at the stock of marked sales,
// so a test can leave the release announcements alone to reopen a sale.
func (s *SoldOut) SetRecheck(every time.Duration) { s.every = every }

// Subscriptions counts the subscription confirmations the sold-out memory
// has handled, each of which forgot every mark: a test marks a sale only
// once the first is behind it, or the mark may be forgotten under it.
func (s *SoldOut) Subscriptions() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Tick runs one look and the round that is due, at the time now tells, so
// a test can step the watcher through minutes without waiting them.
func (w *Watcher) Tick(ctx context.Context, now func() time.Time) {
	w.now = now
	w.tick(ctx)
}
