package invredis

import (
	"context"

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
