package order

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"flashsale/inventory"
)

// Store persists orders; the PostgreSQL store commits each order with its
// outbox row, and decorators (metrics, tracing) wrap the same interface.
type Store interface {
	Create(ctx context.Context, o NewOrder) (Order, error)
	ByKey(ctx context.Context, buyer BuyerID, key IdemKey) (Order, error)
	Get(ctx context.Context, id ID) (Order, error)
	List(ctx context.Context, buyer BuyerID, before *ID, limit int) (Page, error)
	// Pay moves the buyer's pending order, inside its payment window, to
	// paid, with its OrderPaid event in the same statement.
	Pay(ctx context.Context, buyer BuyerID, id ID) (Order, error)
	// Cancel moves the buyer's pending order to cancelled, with its
	// OrderCancelled event (reason buyer) in the same statement.
	//
	// Both answer ErrNotFound when the buyer has no such order and
	// ErrNotTransitable when it is no longer pending (or, for Pay, its
	// payment window has closed).
	Cancel(ctx context.Context, buyer BuyerID, id ID) (Order, error)
}

// Stock is the part of inventory the buy path uses.
type Stock interface {
	Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error)
	Release(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool) (int, error)
	// Discard drops a reservation and its claim without giving its units
	// back: PostgreSQL refused them, so Redis had counted units it lost.
	Discard(ctx context.Context, sale inventory.SaleID, buyer, key string) (int, error)
	// Abandon gives back the reservation r.Attempt made, if it made one,
	// and its claim; a reservation another attempt made is left alone.
	Abandon(ctx context.Context, r inventory.Reservation) (int, error)
	// Confirm marks the reservations of committed orders, so the
	// reconciler need not ask PostgreSQL whether they became orders.
	Confirm(ctx context.Context, sale inventory.SaleID, keys []inventory.BuyerKey) error
}

// Catalog reads sales, from memory on the hot path.
type Catalog interface {
	Sale(ctx context.Context, id inventory.SaleID) (inventory.Sale, error)
}

// SoldOut is the per-instance memory of sold-out sales.
type SoldOut interface {
	// Check answers for a buyer's key from memory, without a network call.
	Check(id inventory.SaleID, buyer, key string) inventory.Verdict
	// Mark makes the memory answer for a sale Redis found sold out.
	Mark(ctx context.Context, id inventory.SaleID)
	Reopen(id inventory.SaleID)
}

// Config tunes the buy path.
type Config struct {
	PaymentWindow  time.Duration
	CommitDeadline time.Duration
	MaxInFlight    int
}

// Service places, reads, pays and cancels orders.
type Service struct {
	store    Store
	stock    Stock
	catalog  Catalog
	soldOut  SoldOut
	cfg      Config
	inflight chan struct{}
	abandon  *Abandoner
	confirm  *Confirmer
	log      *slog.Logger
	now      func() time.Time
}

// NewService wires the buy path.
func NewService(store Store, stock Stock, catalog Catalog, soldOut SoldOut, cfg Config, log *slog.Logger) *Service {
	return &Service{store: store, stock: stock, catalog: catalog, soldOut: soldOut, cfg: cfg,
		inflight: make(chan struct{}, cfg.MaxInFlight), abandon: NewAbandoner(stock, log), confirm: NewConfirmer(stock, log),
		log: log, now: time.Now}
}

// Abandoner is the service's giver-back of reservations whose reply was
// lost; whoever runs the service runs it (Run).
func (s *Service) Abandoner() *Abandoner { return s.abandon }

// Confirmer is the service's teller of committed orders to the stock;
// whoever runs the service runs it (Run).
func (s *Service) Confirmer() *Confirmer { return s.confirm }

// Place buys units for a buyer, exactly once per idempotency key. It
// returns the order and whether it is a replay of one placed earlier; a
// replay is the order as its first 201 showed it, whatever happened to the
// sale or the order since.
//
// The cheapest refusals come first and cost no network call: an unknown or
// not yet started sale, a quantity above the limit, a sale this instance
// knows is sold out for this key, too much work in flight. A key that may
// have made an order in a sold-out or ended sale is looked up in
// PostgreSQL and replayed. Otherwise one Redis script reserves, and one
// PostgreSQL transaction (shared with concurrent orders) commits the order
// and its event.
func (s *Service) Place(ctx context.Context, r PlaceRequest) (Order, bool, error) {
	sale, err := s.catalog.Sale(ctx, r.Sale)
	if err != nil {
		return Order{}, false, err
	}
	if r.Qty.Int() > sale.PerUserLimit {
		return Order{}, false, fmt.Errorf("%w: at most %d", ErrAboveLimit, sale.PerUserLimit)
	}
	state := sale.StateAt(s.now())
	if state == inventory.StateScheduled {
		return Order{}, false, inventory.ErrSaleNotActive // no order can exist yet
	}
	verdict := s.soldOut.Check(r.Sale, r.Buyer.String(), r.Key.String())
	if state == inventory.StateActive {
		if err := refusal(verdict); err != nil {
			return Order{}, false, err
		}
	}
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		return Order{}, false, ErrOverloaded
	}
	switch {
	case state == inventory.StateEnded:
		return s.replayEnded(ctx, r)
	case verdict == inventory.VerdictMaybeWinner:
		return s.replay(ctx, r)
	}
	return s.reserveAndCommit(ctx, sale, r)
}

// refusal is the answer the sold-out memory gives on its own: final when
// every unit is in an order, retryable while some are only held.
func refusal(v inventory.Verdict) error {
	switch v {
	case inventory.VerdictGone:
		return inventory.ErrSoldOut
	case inventory.VerdictHeld:
		return inventory.ErrSoldOutHeld
	}
	return nil
}

// replayEnded answers a request for a sale that has ended: a key that made
// an order replays it; any other is refused. The memory cannot tell which
// keys won an ended sale, so this costs one PostgreSQL query.
func (s *Service) replayEnded(ctx context.Context, r PlaceRequest) (Order, bool, error) {
	o, replayed, err := s.replay(ctx, r)
	if errors.Is(err, ErrKeyInUse) {
		return Order{}, false, inventory.ErrSaleNotActive
	}
	return o, replayed, err
}

func (s *Service) reserveAndCommit(ctx context.Context, sale inventory.Sale, r PlaceRequest) (Order, bool, error) {
	asked := inventory.Reservation{Sale: r.Sale, Buyer: r.Buyer.String(), Key: r.Key.String(),
		Fingerprint: r.fingerprintHex(), Qty: r.Qty, ClientIP: r.ClientIP.String(), Attempt: inventory.NewAttempt()}
	res, err := s.stock.Reserve(ctx, asked)
	switch {
	case errors.Is(err, inventory.ErrSoldOut):
		if res.StockLeft > 0 {
			return Order{}, false, err // not enough for this quantity
		}
		s.soldOut.Mark(ctx, r.Sale)
		if s.soldOut.Check(r.Sale, r.Buyer.String(), r.Key.String()) == inventory.VerdictHeld {
			return Order{}, false, inventory.ErrSoldOutHeld
		}
		return Order{}, false, err
	case errors.Is(err, inventory.ErrKeyClaimed):
		return s.replay(ctx, r)
	case errors.Is(err, inventory.ErrKeyReused):
		return Order{}, false, ErrKeyReused
	case errors.Is(err, inventory.ErrReplyLost):
		// The units may be taken, and no order will be written under
		// them: give them back as soon as Redis answers again.
		s.abandon.Add(asked)
		return Order{}, false, err
	case err != nil:
		return Order{}, false, err
	}
	return s.commit(ctx, sale, r, res)
}

// commit writes the order whose units res reserved. From here on the order
// no longer depends on the client: a client that gives up (a timeout, a
// closed connection) would otherwise cancel the commit midway, leave its
// outcome unknown and its units reserved until the reconciler returns
// them, and its retry with the same key would find the key in use instead
// of the 201. The store bounds each commit, and PostgreSQL refuses one
// past the deadline (ErrCommitExpired, which returns the units).
func (s *Service) commit(ctx context.Context, sale inventory.Sale, r PlaceRequest, res inventory.Reserved) (Order, bool, error) {
	deadline := res.At.Add(s.cfg.CommitDeadline)
	ctx = context.WithoutCancel(ctx)
	o, err := s.store.Create(ctx, NewOrder{Sale: sale, Buyer: r.Buyer, Key: r.Key, RequestHash: r.Fingerprint(),
		Qty: r.Qty.Int(), Window: s.cfg.PaymentWindow, Deadline: deadline})
	if res.StockLeft == 0 {
		// After the commit, so that the memory counts this order as sold,
		// not held.
		s.soldOut.Mark(ctx, r.Sale)
	}
	if err == nil {
		s.confirm.Add(r.Sale, inventory.BuyerKey{Buyer: r.Buyer.String(), Key: r.Key.String()})
		return o, false, nil
	}
	if errors.Is(err, ErrCommitUnknown) {
		// The order may exist: keep the reservation and the claim. A retry
		// with the same key replays the order if it committed; otherwise
		// the reconciler returns the units after the grace period.
		return Order{}, false, err
	}
	s.undoReservation(ctx, r, err)
	var dup *DuplicateError
	if errors.As(err, &dup) {
		return replayed(dup.Existing, r) // the store read the order while refusing
	}
	if errors.Is(err, ErrDuplicate) {
		// Redis forgot the claim (or the key was used for another sale);
		// PostgreSQL's unique key caught it.
		return s.replay(ctx, r)
	}
	return Order{}, false, err
}

// undoReservation settles a reservation under which no order was written,
// before answering, and forgets its claim so a retry is judged afresh. Its
// units go back to stock, unless PostgreSQL refused them for want of stock
// in truth: then Redis counted units it had lost, and they are dropped,
// which brings Redis one reservation closer to the truth.
func (s *Service) undoReservation(ctx context.Context, r PlaceRequest, why error) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if errors.Is(why, ErrStockRefused) {
		_, err = s.stock.Discard(ctx, r.Sale, r.Buyer.String(), r.Key.String())
		s.soldOut.Mark(ctx, r.Sale)
	} else {
		_, err = s.stock.Release(ctx, r.Sale, r.Buyer.String(), r.Key.String(), true)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "undoing a reservation failed", "sale_id", r.Sale.String(), "err", err)
	}
}

// replay answers a request whose key was already claimed: with the order it
// made, as its first 201 showed it, or 409 while the first request is still
// running.
func (s *Service) replay(ctx context.Context, r PlaceRequest) (Order, bool, error) {
	o, err := s.store.ByKey(ctx, r.Buyer, r.Key)
	if errors.Is(err, ErrNotFound) {
		return Order{}, false, ErrKeyInUse
	}
	if err != nil {
		return Order{}, false, err
	}
	return replayed(o, r)
}

// replayed answers r with the order its key made, as its first 201 showed
// it, unless the key made it for another request.
func replayed(o Order, r PlaceRequest) (Order, bool, error) {
	if !bytes.Equal(o.RequestHash, r.Fingerprint()) {
		return Order{}, false, ErrKeyReused
	}
	return o.AsCreated(), true, nil
}

// Get returns the buyer's order; another buyer's order is not found.
func (s *Service) Get(ctx context.Context, buyer BuyerID, id ID) (Order, error) {
	o, err := s.store.Get(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if o.Buyer != buyer {
		return Order{}, ErrNotFound
	}
	return o, nil
}

// List returns a page of the buyer's orders, newest first.
func (s *Service) List(ctx context.Context, buyer BuyerID, before *ID, limit int) (Page, error) {
	return s.store.List(ctx, buyer, before, limit)
}
