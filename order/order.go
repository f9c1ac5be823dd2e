// Package order places, reads and lists orders, and runs their lifecycle.
// An order is placed by reserving its units in Redis (inventory) and
// committing the order row with its OrderCreated outbox row in one
// transaction on the buyer's shard. It is then paid, cancelled by its buyer
// or expired by the sweeper (Expirer), each one conditional UPDATE with its
// outbox row; cancelled and expired orders return their units afterwards.
package order

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"flashsale/inventory"
)

// Domain errors; the API maps each to one problem type.
var (
	ErrNotFound       = errors.New("order: not found")
	ErrKeyInUse       = errors.New("order: idempotency key in use by a request still running")
	ErrKeyReused      = errors.New("order: idempotency key reused with another request")
	ErrOverloaded     = errors.New("order: too many orders in flight")
	ErrInvalidValue   = errors.New("order: invalid value")
	ErrAboveLimit     = errors.New("order: quantity above the sale's per-buyer limit")
	ErrCommitExpired  = errors.New("order: reservation outlived the commit deadline")
	ErrCommitUnknown  = errors.New("order: commit outcome unknown")
	ErrDuplicate      = errors.New("order: an order already exists for this idempotency key")
	ErrNotTransitable = errors.New("order: status does not allow this transition")
	// ErrStockRefused is a sold-out that PostgreSQL decided: the sale has
	// no unit left in truth for an order Redis had reserved, so Redis had
	// lost writes. It wraps inventory.ErrSoldOut, and answers as one.
	ErrStockRefused = fmt.Errorf("%w: PostgreSQL holds no unit for the reservation", inventory.ErrSoldOut)
)

// ID identifies an order; it encodes its shard.
type ID struct{ v int64 }

// ParseID parses the decimal form clients see.
func ParseID(s string) (ID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || len(s) > 19 {
		return ID{}, fmt.Errorf("%w: order id %q is not a positive integer", ErrInvalidValue, s)
	}
	return ID{n}, nil
}

// NewID wraps an id read from the database.
func NewID(n int64) (ID, error) {
	if n <= 0 {
		return ID{}, fmt.Errorf("%w: order id %d", ErrInvalidValue, n)
	}
	return ID{n}, nil
}

// Int64 is the numeric id.
func (id ID) Int64() int64 { return id.v }

// String is the decimal id.
func (id ID) String() string { return strconv.FormatInt(id.v, 10) }

// BuyerID is the authenticated buyer, 1-64 bytes.
type BuyerID struct{ v string }

// ParseBuyerID validates a token subject.
func ParseBuyerID(s string) (BuyerID, error) {
	if len(s) < 1 || len(s) > 64 {
		return BuyerID{}, fmt.Errorf("%w: buyer id must be 1-64 bytes", ErrInvalidValue)
	}
	return BuyerID{s}, nil
}

// String is the buyer id.
func (b BuyerID) String() string { return b.v }

// IdemKey is an Idempotency-Key, 1-255 printable ASCII characters.
type IdemKey struct{ v string }

// ParseIdemKey validates an Idempotency-Key header value.
func ParseIdemKey(s string) (IdemKey, error) {
	if len(s) < 1 || len(s) > 255 {
		return IdemKey{}, fmt.Errorf("%w: Idempotency-Key must be 1-255 characters", ErrInvalidValue)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return IdemKey{}, fmt.Errorf("%w: Idempotency-Key must be printable ASCII", ErrInvalidValue)
		}
	}
	return IdemKey{s}, nil
}

// String is the key.
func (k IdemKey) String() string { return k.v }

// Status is where an order stands in its lifecycle.
type Status string

// Order statuses; the schema CHECKs the same set.
const (
	StatusPendingPayment Status = "pending_payment"
	StatusPaid           Status = "paid"
	StatusCancelled      Status = "cancelled"
	StatusExpired        Status = "expired"
)

// Order is a durable order.
type Order struct {
	ID          ID
	SaleID      inventory.SaleID
	Buyer       BuyerID
	Key         IdemKey
	RequestHash []byte
	Quantity    int
	AmountCents int64
	Currency    string
	Status      Status
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// AsCreated is the order as the 201 that created it showed it: every
// field of that answer is fixed at creation except the status, which was
// pending payment. A replay answers this, so that it is the first answer
// byte for byte even after the order was paid, cancelled or expired.
func (o Order) AsCreated() Order {
	o.Status = StatusPendingPayment
	return o
}

// DuplicateError is ErrDuplicate carrying the order the key already made,
// when the store read it while refusing the new one: the replay then
// needs no second read.
type DuplicateError struct{ Existing Order }

func (e *DuplicateError) Error() string { return ErrDuplicate.Error() }

// Unwrap makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// PlaceRequest is a validated request to buy.
type PlaceRequest struct {
	Buyer    BuyerID
	Key      IdemKey
	Sale     inventory.SaleID
	Qty      inventory.Quantity
	ClientIP netip.Addr // formatted only when a reservation needs it
}

// Fingerprint identifies the request's content, so that a key reused with
// another body is recognised.
func (r PlaceRequest) Fingerprint() []byte {
	h := sha256.Sum256([]byte(r.Sale.String() + "\x00" + strconv.Itoa(r.Qty.Int())))
	return h[:16]
}

func (r PlaceRequest) fingerprintHex() string { return hex.EncodeToString(r.Fingerprint()) }

// NewOrder is what the store commits.
type NewOrder struct {
	Sale        inventory.Sale
	Buyer       BuyerID
	Key         IdemKey
	RequestHash []byte
	Qty         int
	Window      time.Duration // payment window: expires_at = created_at + Window
	Deadline    time.Time     // the commit must happen before this, or not at all
}

// Page is one page of a buyer's orders, newest first.
type Page struct {
	Orders []Order
	Next   *ID // the cursor of the next page; nil on the last page
}
