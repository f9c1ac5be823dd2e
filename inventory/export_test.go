package inventory

import (
	"context"

	"flashsale/internal/batch"
)

// ReserveBatch runs one batch's round trip, so tests can choose what a
// batch holds.
func (s *Stock) ReserveBatch(ctx context.Context, rs []Reservation) []batch.Result[Reserved] {
	out := make([]batch.Result[Reserved], len(rs))
	s.reserveBatch(ctx, rs, out)
	return out
}
