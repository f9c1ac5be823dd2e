package inventory

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// BuyerKey is a buyer's idempotency key: what a reservation and its order
// have in common.
type BuyerKey struct{ Buyer, Key string }

// OrderLookup answers which reservations became durable orders, and which
// orders hold a sale's units; the order store implements it with one query
// per shard.
type OrderLookup interface {
	ExistingOrders(ctx context.Context, keys []BuyerKey) (map[BuyerKey]bool, error)
	// LiveOrders lists the sale's orders that are pending payment or paid.
	LiveOrders(ctx context.Context, sale SaleID) ([]LiveOrder, error)
	// ClosedKeys lists the keys of the sale's cancelled or expired orders.
	ClosedKeys(ctx context.Context, sale SaleID) ([]BuyerKey, error)
}

// Allotter splits a new sale's stock over the order databases, so that
// PostgreSQL refuses any unit beyond it; the order store implements it.
type Allotter interface {
	Allot(ctx context.Context, sale SaleID, stock int) error
}

// Sales is the store of record of sales (PostgreSQL database 0). Writes
// that a lease guards carry its fencing token, which the store refuses
// once a later holder has written (ErrStaleFence).
type Sales interface {
	SaleReader
	Create(ctx context.Context, n NewSale) (Sale, error)
	AddStock(ctx context.Context, id SaleID, q Quantity, token int64) (Sale, error)
	Fence(ctx context.Context, id SaleID, token int64) error
	// Live lists the sales that have not ended, or ended less than ago.
	Live(ctx context.Context, ago time.Duration) ([]SaleID, error)
}

// LiveStock is the stock as the buy path reads it (Redis): the admin side
// rebuilds it from the orders, raises it on restock and settles its
// reservations. Every write carries the caller's fencing token.
type LiveStock interface {
	Rebuild(ctx context.Context, sale Sale, live []LiveOrder, token int64) (Rebuilt, error)
	// Warm raises the sale's total to the sale's stock; ErrSaleNotFound
	// when the live stock does not hold the sale.
	Warm(ctx context.Context, sale Sale, token int64) (int, error)
	Remaining(ctx context.Context, id SaleID) (int, error)
	// Unconfirmed lists the reservations not yet marked as having a
	// durable order, wherever they are: the reconciler's sweep.
	Unconfirmed(ctx context.Context, id SaleID) ([]Held, error)
	// DuePage reads up to max reservations from the head of the sale's
	// queue of reservations to settle, in the order they were made,
	// stopping at the first one made after cutoff.
	DuePage(ctx context.Context, id SaleID, cutoff time.Time, max int) (DuePage, error)
	// SettlePage confirms durable, reservations of the page whose order
	// exists, and takes the page off the queue.
	SettlePage(ctx context.Context, id SaleID, page DuePage, durable []Held, token int64) error
	// ReleaseFenced gives a reservation's units back, and reports them and
	// the stock left.
	ReleaseFenced(ctx context.Context, id SaleID, buyer, key string, forget bool, token int64) (units, left int, err error)
	ConfirmHolds(ctx context.Context, id SaleID, holds []Held, token int64) error
	// RememberClosed adds closed orders' keys to the sale's set of keys
	// that may have an order.
	RememberClosed(ctx context.Context, id SaleID, keys []BuyerKey) error
}

// SoldOutMemory is each instance's memory of sold-out sales.
type SoldOutMemory interface {
	Shortage(ctx context.Context, id SaleID) (Shortage, bool)
	Reopen(id SaleID)
}

// Locker runs work under a named lease with its fencing token; it answers
// ErrSaleBusy when another holder keeps the lease past wait.
type Locker interface {
	Hold(ctx context.Context, name string, wait time.Duration, fn func(token int64) error) error
}

// Service is the admin side of inventory: creating, restocking and
// reconciling sales, each guarded by a per-sale lease.
type Service struct {
	sales   Sales
	stock   LiveStock
	soldOut SoldOutMemory
	locker  Locker
	orders  OrderLookup
	allot   Allotter
	grace   time.Duration
	log     *slog.Logger
	now     func() time.Time
	swept   sync.Map // SaleID → true once this process swept the sale
}

// NewService wires the admin side; grace is how old a reservation without
// an order must be before its stock is returned.
func NewService(sales Sales, stock LiveStock, soldOut SoldOutMemory, locker Locker, orders OrderLookup,
	allot Allotter, grace time.Duration, log *slog.Logger) *Service {
	return &Service{sales: sales, stock: stock, soldOut: soldOut, locker: locker, orders: orders, allot: allot,
		grace: grace, log: log, now: time.Now}
}

// SaleView is a sale with its live state and remaining stock, and when
// it is sold out, whether units are still held (see SoldOut.Shortage).
type SaleView struct {
	Sale
	State     State
	Remaining int
	SoldOut   *Shortage // nil unless sold out
}

// lockWait bounds how long an admin call waits for a busy sale's lease.
const lockWait = 2 * time.Second

// CreateSale stores the sale, allots its stock to the order databases and
// loads it into Redis. The load is a rebuild (of a sale without orders):
// the one way a sale enters Redis. Should it stop after storing, the first
// order of the sale allots it, and the first read loads it.
func (s *Service) CreateSale(ctx context.Context, n NewSale) (SaleView, error) {
	if err := n.Validate(s.now()); err != nil {
		return SaleView{}, err
	}
	sale, err := s.sales.Create(ctx, n)
	if err != nil {
		return SaleView{}, err
	}
	// Into Redis first, before any instance's watcher lists the sale as
	// live and rebuilds it under the same lease; an order that comes
	// before the allotments are made makes them itself.
	if err := s.loadNew(ctx, sale); err != nil {
		return SaleView{}, err
	}
	if err := s.allot.Allot(ctx, sale.ID, sale.Stock); err != nil {
		return SaleView{}, err
	}
	return s.view(ctx, sale)
}

// loadNew puts a sale that has just been created into Redis: a rebuild
// without reading any order, since none can exist before Redis holds the
// sale, so that creating a sale needs database 0 only.
func (s *Service) loadNew(ctx context.Context, sale Sale) error {
	return s.guarded(ctx, sale.ID, func(token int64) error {
		if err := s.sales.Fence(ctx, sale.ID, token); err != nil {
			return err
		}
		_, err := s.stock.Rebuild(ctx, sale, nil, token)
		return err
	})
}

// Sale returns the sale with its live state and remaining stock.
func (s *Service) Sale(ctx context.Context, id SaleID) (SaleView, error) {
	sale, err := s.sales.Get(ctx, id)
	if err != nil {
		return SaleView{}, err
	}
	return s.view(ctx, sale)
}

func (s *Service) view(ctx context.Context, sale Sale) (SaleView, error) {
	left, err := s.stock.Remaining(ctx, sale.ID)
	if errors.Is(err, ErrSaleNotFound) {
		// Redis lost the sale: rebuild it from the orders, then read again.
		if _, err = s.Rebuild(ctx, sale.ID); err == nil {
			left, err = s.stock.Remaining(ctx, sale.ID)
		}
	}
	if err != nil {
		return SaleView{}, err
	}
	// Below zero only while PostgreSQL holds an oversell from before a
	// rebuild: nothing is left to buy.
	v := SaleView{Sale: sale, State: sale.StateAt(s.now()), Remaining: max(0, left)}
	if left <= 0 {
		if sh, ok := s.soldOut.Shortage(ctx, sale.ID); ok {
			v.SoldOut = &sh
		}
	}
	return v, nil
}

// Restock adds units in PostgreSQL, then in Redis, and reopens the sale on
// every instance. A crash between the two leaves Redis short, never over:
// the next warm-up or reconciliation adds the difference once.
func (s *Service) Restock(ctx context.Context, id SaleID, q Quantity) (SaleView, error) {
	var sale Sale
	err := s.guarded(ctx, id, func(token int64) error {
		var err error
		if sale, err = s.sales.AddStock(ctx, id, q, token); err != nil {
			return err
		}
		return s.align(ctx, sale, token)
	})
	if err != nil {
		return SaleView{}, err
	}
	s.soldOut.Reopen(id)
	return s.view(ctx, sale)
}

// guarded runs fn under the sale's lease with its fencing token.
func (s *Service) guarded(ctx context.Context, id SaleID, fn func(token int64) error) error {
	return s.locker.Hold(ctx, "sale:"+id.String(), lockWait, fn)
}

// fenced runs fn under the sale's lease once its token is written to the
// sales table, with the sale as read after: a later holder's writes now
// refuse this one's, and a paused earlier holder's are refused.
func (s *Service) fenced(ctx context.Context, id SaleID, fn func(sale Sale, token int64) error) error {
	return s.guarded(ctx, id, func(token int64) error {
		if err := s.sales.Fence(ctx, id, token); err != nil {
			return err
		}
		sale, err := s.sales.Get(ctx, id)
		if err != nil {
			return err
		}
		return fn(sale, token)
	})
}
