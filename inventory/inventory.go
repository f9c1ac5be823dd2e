// Package inventory is the stock domain: sales and their values, what a
// reservation asks and answers, the sold-out verdicts, and the admin
// Service that creates, restocks, rebuilds and reconciles sales under a
// per-sale lease. It names its stores as interfaces (Sales, LiveStock,
// SoldOutMemory, Locker, OrderLookup, Allotter) and imports none: the
// Redis side lives in inventory/invredis, the sales table in
// inventory/invpg, and the count of units sold from the order events in
// package ledger.
package inventory

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Domain errors; the API maps each to one problem type.
var (
	ErrSoldOut       = errors.New("inventory: sold out")
	ErrLimitReached  = errors.New("inventory: purchase limit reached")
	ErrSaleNotActive = errors.New("inventory: sale not active")
	ErrSaleNotFound  = errors.New("inventory: sale not found")
	ErrKeyClaimed    = errors.New("inventory: idempotency key already claimed with this request")
	ErrKeyReused     = errors.New("inventory: idempotency key reused with another request")
	ErrStaleFence    = errors.New("inventory: fencing token is stale; another holder has written since")
	ErrSaleBusy      = errors.New("inventory: another instance is changing the sale")
	ErrInvalidSale   = errors.New("inventory: invalid sale")
	ErrInvalidValue  = errors.New("inventory: invalid value")
	// ErrReplyLost is a reservation call that failed without Redis's
	// answer (a timeout, a connection lost midway): it may or may not
	// have taken the units.
	ErrReplyLost = errors.New("inventory: no reply from the stock; the reservation may have been made")
)

// SaleID identifies a sale; a SaleID that exists is positive.
type SaleID struct{ v int64 }

// ParseSaleID parses the decimal form used in URLs and JSON.
func ParseSaleID(s string) (SaleID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || len(s) > 19 {
		return SaleID{}, fmt.Errorf("%w: sale id %q is not a positive integer", ErrInvalidValue, s)
	}
	return SaleID{n}, nil
}

// NewSaleID wraps an id read from the database.
func NewSaleID(n int64) (SaleID, error) {
	if n <= 0 {
		return SaleID{}, fmt.Errorf("%w: sale id %d", ErrInvalidValue, n)
	}
	return SaleID{n}, nil
}

// Int64 is the numeric id.
func (id SaleID) Int64() int64 { return id.v }

// String is the decimal id, as clients see it.
func (id SaleID) String() string { return strconv.FormatInt(id.v, 10) }

// Quantity is a number of units, at least one.
type Quantity struct{ v int }

// MaxQuantity bounds any one order or restock.
const MaxQuantity = 1_000_000

// NewQuantity validates a count of units.
func NewQuantity(n int64) (Quantity, error) {
	if n < 1 || n > MaxQuantity {
		return Quantity{}, fmt.Errorf("%w: quantity must be 1-%d, got %d", ErrInvalidValue, MaxQuantity, n)
	}
	return Quantity{int(n)}, nil
}

// Int is the number of units.
func (q Quantity) Int() int { return q.v }

// State is where a sale stands in time.
type State string

// Sale states.
const (
	StateScheduled State = "scheduled"
	StateActive    State = "active"
	StateEnded     State = "ended"
)

// Sale is a limited stock of one SKU sold in a time window: what was
// asked for, as stored.
type Sale struct {
	ID SaleID
	NewSale
	CreatedAt time.Time
	UpdatedAt time.Time
}

// StateAt is the sale's state at t.
func (s Sale) StateAt(t time.Time) State {
	switch {
	case t.Before(s.StartsAt):
		return StateScheduled
	case t.Before(s.EndsAt):
		return StateActive
	default:
		return StateEnded
	}
}

// NewSale is what an admin asks for; Validate says whether it can exist.
type NewSale struct {
	SKU          string
	Title        string
	PriceCents   int64
	Currency     string
	Stock        int
	PerUserLimit int
	StartsAt     time.Time
	EndsAt       time.Time
}

// Validate reports every field that breaks an invariant, as of now.
func (n NewSale) Validate(now time.Time) error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if l := len(n.SKU); l < 1 || l > 64 {
		bad("sku must be 1-64 characters")
	}
	if l := len(n.Title); l < 1 || l > 200 {
		bad("title must be 1-200 characters")
	}
	if n.PriceCents < 0 {
		bad("price_cents must not be negative")
	}
	if !validCurrency(n.Currency) {
		bad("currency must be three upper-case letters (ISO 4217)")
	}
	if n.Stock < 0 || n.Stock > MaxQuantity*100 {
		bad("stock must be 0-%d", MaxQuantity*100)
	}
	if n.PerUserLimit < 1 || n.PerUserLimit > MaxQuantity {
		bad("per_user_limit must be 1-%d", MaxQuantity)
	}
	if !n.EndsAt.After(n.StartsAt) {
		bad("ends_at must be after starts_at")
	}
	if !n.EndsAt.After(now) {
		bad("ends_at is already past")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidSale, errors.Join(errs...))
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
