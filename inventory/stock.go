package inventory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// ClaimTTL is how long an idempotency claim lives in Redis; PostgreSQL's
// unique (user_id, idempotency_key) keeps the guarantee beyond it.
const ClaimTTL = 25 * time.Hour

// Reservation asks for units of a sale for one buyer under one
// idempotency key.
type Reservation struct {
	Sale        SaleID
	Buyer       string
	Key         string
	Fingerprint string
	Qty         Quantity
	ClientIP    string
	// Attempt names the request that reserves (16 hex digits, or empty):
	// a request that never saw the reply can then give back its own
	// reservation, and never a retry's under the same key.
	Attempt string
}

// NewAttempt names one request's reservation attempt (Reservation.Attempt):
// 16 hex digits, random, so that two attempts under one key differ.
func NewAttempt() string {
	return fmt.Sprintf("%016x", rand.Uint64())
}

// Reserved is a successful reservation.
type Reserved struct {
	At        time.Time // Redis time of the reservation; commits must follow within the commit deadline
	StockLeft int
}

// Held is one reservation found in Redis.
type Held struct {
	Buyer     string
	Key       string
	Qty       int
	At        time.Time
	Confirmed bool // under the sale's lease, by the reconciler or a rebuild
	// Committed: the buy path told of its order's commit; the reconciler
	// confirms it without asking PostgreSQL.
	Committed bool
}

// LiveOrder is an order that holds units of its sale: pending payment or
// paid.
type LiveOrder struct {
	Buyer       string
	Key         string
	Qty         int
	RequestHash []byte
}

// Rebuilt counts what one rebuild of a sale found.
type Rebuilt struct {
	Stock    int // units left once rebuilt
	Added    int // live orders whose reservation Redis had lost
	Dropped  int // confirmed reservations of orders no longer live (their release was lost)
	Released int // orders closed while the rebuild ran, released again
}

// Verdict is what the sold-out memory answers for one buyer's key.
type Verdict uint8

// Verdicts, from the cheapest to act on to the dearest.
const (
	// VerdictOpen: the sale is not known to be sold out; Redis decides.
	VerdictOpen Verdict = iota
	// VerdictGone: the sale is sold out and every unit it handed out is in an
	// order; the refusal is final.
	VerdictGone
	// VerdictHeld: the sale is sold out for now, but units are held by
	// reservations whose commit is still pending (or by closed orders whose
	// units are on their way back): they may come back, so the refusal is
	// worth retrying.
	VerdictHeld
	// VerdictMaybeWinner: the sale is sold out, but this key reserved units in it,
	// so it may have made an order that a retry must replay.
	VerdictMaybeWinner
)

// ErrSoldOutHeld is the refusal of a buyer while units are only held: it
// is ErrSoldOut, to be retried after HeldRetryAfter.
var ErrSoldOutHeld = fmt.Errorf("%w: units are held by orders still committing and may come back", ErrSoldOut)

// HeldRetryAfter is when a buyer refused with ErrSoldOutHeld should ask
// again: the memory re-evaluates held sales this often.
const HeldRetryAfter = time.Second

// Shortage says why a sold-out sale has nothing left.
type Shortage struct {
	Held  bool // units are held by commits still pending and may come back
	Units int  // the units held; -1 when they could not be counted
}

// LiveUnits counts the units of a sale in live orders (pending payment or
// paid) over every shard; the order store implements it. The sold-out
// memory subtracts them from what Redis has handed out to tell units still
// held by commits in flight from units that are gone.
type LiveUnits interface {
	LiveUnits(ctx context.Context, sale SaleID) (int, error)
}
