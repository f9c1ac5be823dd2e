package inventory

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"flashsale/lease"
)

// BuyerKey is a buyer's idempotency key: what a reservation and its order
// have in common.
type BuyerKey struct{ Buyer, Key string }

// OrderLookup answers which reservations became durable orders; the order
// store implements it with one query per shard.
type OrderLookup interface {
	ExistingOrders(ctx context.Context, keys []BuyerKey) (map[BuyerKey]bool, error)
}

// Service is the admin side of inventory: creating, restocking and
// reconciling sales, each guarded by a per-sale lease.
type Service struct {
	sales   *SaleStore
	stock   *Stock
	soldOut *SoldOut
	locker  *lease.Locker
	orders  OrderLookup
	grace   time.Duration
	log     *slog.Logger
	now     func() time.Time
}

// NewService wires the admin side; grace is how old a reservation without
// an order must be before its stock is returned.
func NewService(sales *SaleStore, stock *Stock, soldOut *SoldOut, locker *lease.Locker, orders OrderLookup,
	grace time.Duration, log *slog.Logger) *Service {
	return &Service{sales: sales, stock: stock, soldOut: soldOut, locker: locker, orders: orders,
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

// CreateSale stores the sale and loads its stock into Redis.
func (s *Service) CreateSale(ctx context.Context, n NewSale) (SaleView, error) {
	if err := n.Validate(s.now()); err != nil {
		return SaleView{}, err
	}
	sale, err := s.sales.Create(ctx, n)
	if err != nil {
		return SaleView{}, err
	}
	if err := s.warm(ctx, sale.ID); err != nil {
		return SaleView{}, err
	}
	return s.view(ctx, sale)
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
		// Redis lost the sale: warm it from the truth, then read again.
		if err = s.warm(ctx, sale.ID); err == nil {
			left, err = s.stock.Remaining(ctx, sale.ID)
		}
	}
	if err != nil {
		return SaleView{}, err
	}
	v := SaleView{Sale: sale, State: sale.StateAt(s.now()), Remaining: left}
	if left == 0 {
		if sh, ok := s.soldOut.Shortage(ctx, sale.ID); ok {
			v.SoldOut = &sh
		}
	}
	return v, nil
}

// warm loads the sale's truth from PostgreSQL into Redis under its lease.
func (s *Service) warm(ctx context.Context, id SaleID) error {
	return s.guarded(ctx, id, func(token int64) error {
		sale, err := s.sales.Get(ctx, id)
		if err != nil {
			return err
		}
		_, err = s.stock.Warm(ctx, sale, token)
		return err
	})
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
		_, err = s.stock.Warm(ctx, sale, token)
		return err
	})
	if err != nil {
		return SaleView{}, err
	}
	s.soldOut.Reopen(id)
	return s.view(ctx, sale)
}

// guarded runs fn under the sale's lease with its fencing token.
func (s *Service) guarded(ctx context.Context, id SaleID, fn func(token int64) error) error {
	lease, err := s.locker.Acquire(ctx, "sale:"+id.String(), lockWait)
	if err != nil {
		return err
	}
	defer lease.Release(ctx)
	return fn(lease.Token)
}

// Reconciled counts what one reconciliation found.
type Reconciled struct {
	Confirmed     int `json:"confirmed"`
	Released      int `json:"released"`
	UnitsReturned int `json:"units_returned"`
	Pending       int `json:"pending"`
}

// Reconcile compares the sale's Redis reservations with PostgreSQL's
// orders: a reservation older than the grace period with no order (its
// request crashed between reserve and commit) gives its units back; one
// with an order is marked confirmed. Commits carry a deadline shorter than
// the grace period, so an order can no longer appear for a reservation
// this returns.
func (s *Service) Reconcile(ctx context.Context, id SaleID) (Reconciled, error) {
	var out Reconciled
	err := s.guarded(ctx, id, func(token int64) error {
		if err := s.sales.Fence(ctx, id, token); err != nil {
			return err
		}
		sale, err := s.sales.Get(ctx, id)
		if err != nil {
			return err
		}
		if _, err := s.stock.Warm(ctx, sale, token); err != nil {
			return err
		}
		out, err = s.settle(ctx, id, token)
		return err
	})
	return out, err
}

func (s *Service) settle(ctx context.Context, id SaleID, token int64) (Reconciled, error) {
	var out Reconciled
	holds, err := s.stock.Holds(ctx, id)
	if err != nil {
		return out, err
	}
	cutoff := s.now().Add(-s.grace)
	var due []Held
	var keys []BuyerKey
	for _, h := range holds {
		switch {
		case h.Confirmed:
		case h.At.After(cutoff):
			out.Pending++
		default:
			due = append(due, h)
			keys = append(keys, BuyerKey{h.Buyer, h.Key})
		}
	}
	if len(due) == 0 {
		return out, nil
	}
	exists, err := s.orders.ExistingOrders(ctx, keys)
	if err != nil {
		return out, err
	}
	var durable []Held
	for _, h := range due {
		if exists[BuyerKey{h.Buyer, h.Key}] {
			durable = append(durable, h)
			continue
		}
		n, _, err := s.stock.releaseFenced(ctx, id, h.Buyer, h.Key, true, token)
		if err != nil {
			return out, err
		}
		out.Released++
		out.UnitsReturned += n
	}
	out.Confirmed = len(durable)
	return out, s.stock.confirmHolds(ctx, id, durable, token)
}

// RunReconciler reconciles every live sale each interval until ctx ends;
// a sale whose lease another instance holds is skipped this round.
func (s *Service) RunReconciler(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.reconcileAll(ctx)
		}
	}
}

func (s *Service) reconcileAll(ctx context.Context) {
	ids, err := s.sales.Live(ctx, time.Hour)
	if err != nil {
		s.log.ErrorContext(ctx, "reconciler: list sales", "err", err)
		return
	}
	for _, id := range ids {
		r, err := s.Reconcile(ctx, id)
		switch {
		case errors.Is(err, lease.ErrNotAcquired), ctx.Err() != nil:
		case err != nil:
			s.log.ErrorContext(ctx, "reconciler: sale failed", "sale_id", id.String(), "err", err)
		case r.Released > 0:
			s.log.WarnContext(ctx, "reconciler returned orphaned reservations", "sale_id", id.String(),
				"released", r.Released, "units", r.UnitsReturned)
		}
	}
}
