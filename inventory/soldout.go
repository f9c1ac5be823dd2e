package inventory

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SoldOut is this instance's memory of which sales have nothing left: the
// bulk of a flash sale's traffic is answered from it without a network call.
// Every release of stock is published on Redis pub/sub and reopens the sale
// on every instance; a once-a-second look at the stock of the sales marked
// here covers messages lost while a subscription was down.
type SoldOut struct {
	stock *Stock
	log   *slog.Logger
	every time.Duration
	sales sync.Map // SaleID -> struct{}
}

// NewSoldOut returns an empty sold-out memory over stock.
func NewSoldOut(stock *Stock, log *slog.Logger) *SoldOut {
	return &SoldOut{stock: stock, log: log, every: time.Second}
}

// Is reports whether the sale is known to have nothing left.
func (s *SoldOut) Is(id SaleID) bool {
	_, ok := s.sales.Load(id)
	return ok
}

// Mark remembers that the sale has nothing left.
func (s *SoldOut) Mark(id SaleID) { s.sales.Store(id, struct{}{}) }

// Reopen forgets that the sale had nothing left.
func (s *SoldOut) Reopen(id SaleID) { s.sales.Delete(id) }

// Run listens for releases until ctx ends.
func (s *SoldOut) Run(ctx context.Context) error {
	sub := s.stock.rdb.Subscribe(ctx, s.stock.Channel())
	defer sub.Close()
	msgs := sub.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(5 * time.Second))
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			s.receive(ctx, m)
		case <-tick.C:
			s.recheck(ctx)
		}
	}
}

// receive reopens the announced sale; a (re)subscription means messages
// may have been lost while disconnected, so every marked sale is checked.
func (s *SoldOut) receive(ctx context.Context, m any) {
	switch m := m.(type) {
	case *redis.Message:
		if id, err := ParseSaleID(m.Payload); err == nil {
			s.Reopen(id)
		}
	case *redis.Subscription:
		s.recheck(ctx)
	}
}

// recheck reopens marked sales whose stock came back while a message was
// missed.
func (s *SoldOut) recheck(ctx context.Context) {
	s.sales.Range(func(k, _ any) bool {
		id := k.(SaleID)
		n, err := s.stock.Remaining(ctx, id)
		if err != nil {
			s.log.WarnContext(ctx, "sold-out recheck failed", "sale_id", id.String(), "err", err)
			return ctx.Err() == nil
		}
		if n > 0 {
			s.Reopen(id)
		}
		return true
	})
}
