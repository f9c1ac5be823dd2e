package invredis

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"golang.org/x/sync/singleflight"

	"flashsale/inventory"
)

// heldUnknown stands for "could not count": a sale whose held units cannot
// be told apart from sold ones is answered as held, since a buyer told to
// retry loses nothing, and one told "gone" while units come back does.
const heldUnknown = -1

// markTimeout bounds the reads that mark a sale sold out.
const markTimeout = 2 * time.Second

// mark is a sale known to be sold out.
type mark struct {
	winners winners      // immutable once stored
	held    atomic.Int64 // units held; 0: gone; heldUnknown: not countable
}

// SoldOut is this instance's memory of which sales have nothing left: the
// bulk of a flash sale's traffic is answered from it without a network call.
// Marking a sale loads, in one Redis MULTI, the keys that may have an order
// in it: only those take the slow path, to replay their order. Every
// release of stock is published on Redis pub/sub and reopens the sale on
// every instance; a (re)subscription forgets every mark, since messages may
// have been lost meanwhile; a once-a-second look at the stock of the sales
// marked here covers the rest and re-counts the held units.
type SoldOut struct {
	stock *Stock
	live  inventory.LiveUnits
	log   *slog.Logger
	every time.Duration
	sales atomic.Pointer[map[inventory.SaleID]*mark] // copy on write: read without a lock
	mu    sync.Mutex                                 // serialises writers of sales, gens and epoch
	gens  map[inventory.SaleID]uint64                // per sale, bumped by Reopen
	epoch uint64                                     // bumped when every mark is forgotten
	loads singleflight.Group
}

// NewSoldOut returns an empty sold-out memory over stock; live counts the
// units in orders, to tell held units from gone ones.
func NewSoldOut(stock *Stock, live inventory.LiveUnits, log *slog.Logger) *SoldOut {
	s := &SoldOut{stock: stock, live: live, log: log, every: time.Second, gens: map[inventory.SaleID]uint64{}}
	s.sales.Store(&map[inventory.SaleID]*mark{})
	return s
}

// Check answers for the buyer's key from memory, without a network call
// and without allocating.
func (s *SoldOut) Check(id inventory.SaleID, buyer, key string) inventory.Verdict {
	m := (*s.sales.Load())[id]
	switch {
	case m == nil:
		return inventory.VerdictOpen
	case hasKey(m.winners, buyer, key):
		return inventory.VerdictMaybeWinner
	case m.held.Load() != 0:
		return inventory.VerdictHeld
	}
	return inventory.VerdictGone
}

func hasKey(w winners, buyer, key string) bool {
	_, ok := w[inventory.BuyerKey{Buyer: buyer, Key: key}]
	return ok
}

// Mark makes the memory answer for the sale once Redis confirms it has
// nothing left: it reads the sale's possible winners and counts its held
// units, once however many requests ask at the same time. Until then the
// sale is not treated as sold out: its requests go to Redis, correct and
// slower.
func (s *SoldOut) Mark(ctx context.Context, id inventory.SaleID) {
	if (*s.sales.Load())[id] != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	_, _, _ = s.loads.Do(id.String(), func() (any, error) {
		s.load(ctx, id)
		return nil, nil
	})
}

func (s *SoldOut) load(ctx context.Context, id inventory.SaleID) {
	gen, epoch := s.generation(id)
	snap, err := s.stock.snapshot(ctx, id)
	if err != nil {
		s.log.WarnContext(ctx, "sold-out mark failed", "sale_id", id.String(), "err", err)
		return
	}
	if snap.remaining > 0 {
		return // units came back meanwhile
	}
	m := &mark{winners: snap.winners}
	m.held.Store(s.held(ctx, id, snap.remaining, snap.total))
	s.store(id, gen, epoch, m)
}

// held counts the units Redis handed out that are in no live order.
func (s *SoldOut) held(ctx context.Context, id inventory.SaleID, remaining, total int) int64 {
	live, err := s.live.LiveUnits(ctx, id)
	if err != nil {
		s.log.WarnContext(ctx, "sold-out: counting live units failed; answering as held", "sale_id", id.String(), "err", err)
		return heldUnknown
	}
	return int64(max(0, total-remaining-live))
}

func (s *SoldOut) generation(id inventory.SaleID) (uint64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gens[id], s.epoch
}

// store keeps m unless the sale reopened (or every mark was forgotten)
// since its load began: the load may predate the units that came back.
func (s *SoldOut) store(id inventory.SaleID, gen, epoch uint64, m *mark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gens[id] != gen || s.epoch != epoch {
		return
	}
	next := maps.Clone(*s.sales.Load())
	next[id] = m
	s.sales.Store(&next)
}

// Reopen forgets that the sale had nothing left, and any load of it in
// flight.
func (s *SoldOut) Reopen(id inventory.SaleID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gens[id]++
	if cur := *s.sales.Load(); cur[id] != nil {
		next := maps.Clone(cur)
		delete(next, id)
		s.sales.Store(&next)
	}
}

// forget drops every mark and every load in flight.
func (s *SoldOut) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	s.sales.Store(&map[inventory.SaleID]*mark{})
}

// Shortage marks the sale if it is not yet and describes it; false when it
// is not (or could not be confirmed) sold out.
func (s *SoldOut) Shortage(ctx context.Context, id inventory.SaleID) (inventory.Shortage, bool) {
	s.Mark(ctx, id)
	m := (*s.sales.Load())[id]
	if m == nil {
		return inventory.Shortage{}, false
	}
	h := m.held.Load()
	return inventory.Shortage{Held: h != 0, Units: int(h)}, true
}

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
			s.receive(m)
		case <-tick.C:
			s.recheck(ctx)
		}
	}
}

// receive reopens the announced sale; a (re)subscription means messages
// may have been lost while disconnected, and a lost reopen followed by a
// new winner would leave a mark without that winner: every mark goes.
func (s *SoldOut) receive(m any) {
	switch m := m.(type) {
	case *redis.Message:
		if id, err := inventory.ParseSaleID(m.Payload); err == nil {
			s.Reopen(id)
		}
	case *redis.Subscription:
		s.forget()
	}
}

// recheck reopens marked sales whose stock came back while a message was
// missed, and re-counts the units of the sales still held.
func (s *SoldOut) recheck(ctx context.Context) {
	for id, m := range *s.sales.Load() {
		remaining, total, err := s.stock.level(ctx, id)
		switch {
		case errors.Is(err, inventory.ErrSaleNotFound), err == nil && remaining > 0:
			s.Reopen(id)
		case err != nil:
			s.log.WarnContext(ctx, "sold-out recheck failed", "sale_id", id.String(), "err", err)
			if ctx.Err() != nil {
				return
			}
		case m.held.Load() != 0:
			m.held.Store(s.held(ctx, id, remaining, total))
		}
	}
}
