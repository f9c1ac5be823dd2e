// Package breaker fails fast when a dependency is down. One circuit breaker
// (sony/gobreaker) guards each dependency of the buy path, Redis node 1 and
// every PostgreSQL database; decorators over the interfaces the order
// service already uses count the dependency's infrastructure failures and,
// once a breaker is open, refuse at once with order.ErrUnavailable instead
// of letting every buyer wait out a timeout. Domain answers (sold out, not
// found, duplicate…) are the dependency working, and a call whose client
// left counts neither way.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"flashsale/inventory"
	"flashsale/order"
	"flashsale/ratelimit"
)

// Settings tune every breaker.
type Settings struct {
	Failures uint32        // consecutive infrastructure failures that open a breaker,
	Spread   time.Duration // if they spread over at least this long
	Open     time.Duration // how long an open breaker refuses before probing
	Probes   uint32        // calls let through half-open; as many successes close it
}

// Breaker is the circuit breaker of one dependency.
type Breaker struct {
	name  string
	cb    *gobreaker.TwoStepCircuitBreaker[struct{}]
	until atomic.Int64 // when the current open period ends, Unix nanoseconds
}

// New returns the closed breaker of the dependency name; state changes are
// logged, since an open breaker refuses every buyer of that dependency.
func New(name string, s Settings, log *slog.Logger) *Breaker {
	b := &Breaker{name: name}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: max(1, s.Probes),
		Timeout:     s.Open,
		ReadyToTrip: tripper(max(1, s.Failures), s.Spread),
		IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				// gobreaker keeps its expiry to itself; Retry-After needs it.
				b.until.Store(time.Now().Add(s.Open).UnixNano())
			}
			log.Warn("circuit breaker changed state", "dependency", name, "from", from.String(), "to", to.String())
		},
	})
	return b
}

// tripper tells gobreaker when a dependency is down: failures consecutive
// failures that spread over at least spread. The buy path batches its
// calls (one Redis round trip or group commit serves many buyers), so one
// failed round trip fails many calls at the same instant, and that alone
// must not refuse every buyer for a while; a dependency that is down keeps
// failing, so its run of failures soon spans the spread. gobreaker calls it
// on each failure while closed, under its lock; a success or a change of
// state resets the run.
func tripper(failures uint32, spread time.Duration) func(gobreaker.Counts) bool {
	var since time.Time // when the current run of failures began
	return func(c gobreaker.Counts) bool {
		now := time.Now()
		if c.ConsecutiveFailures == 1 {
			since = now
		}
		return c.ConsecutiveFailures >= failures && now.Sub(since) >= spread
	}
}

// Name is the dependency the breaker guards.
func (b *Breaker) Name() string { return b.name }

// Open tells whether the breaker refuses every call now.
func (b *Breaker) Open() bool { return b.cb.State() == gobreaker.StateOpen }

// Ready is a readiness check: it fails while the breaker is open, so that a
// load balancer sends buyers to instances whose dependencies answer.
func (b *Breaker) Ready(context.Context) error {
	if b.Open() {
		return fmt.Errorf("circuit breaker open, probing again in %s", b.retryAfter().Round(time.Millisecond))
	}
	return nil
}

// retryAfter is the time left until the breaker lets probes through; zero
// once it is half-open.
func (b *Breaker) retryAfter() time.Duration {
	return max(0, time.Until(time.Unix(0, b.until.Load())))
}

// errExcluded marks a call that tells nothing about the dependency.
var errExcluded = errors.New("breaker: excluded")

// call runs f through b: refused at once while b is open (or half-open
// with its probes taken), otherwise run and its outcome classified.
func call[T any](ctx context.Context, b *Breaker, f func() (T, error)) (T, error) {
	done, err := b.cb.Allow()
	if err != nil {
		var zero T
		return zero, &order.UnavailableError{Dependency: b.name, RetryAfter: b.retryAfter()}
	}
	v, err := f()
	switch classify(ctx, err) {
	case success:
		done(nil)
	case excluded:
		done(errExcluded)
	default:
		done(err)
	}
	return v, err
}

// verdict is what one call tells a breaker about its dependency.
type verdict int

const (
	success  verdict = iota // the dependency answered, whatever it said
	failure                 // the dependency failed: counts towards opening
	excluded                // the client left: it tells nothing
)

// classify judges err, the outcome of a call made under ctx. Domain
// answers are successes; an error of a call whose context ended is
// excluded (the client left, or its own deadline passed); anything else
// (network errors, timeouts, unknown commit outcomes, refused connections)
// is a failure of the dependency.
func classify(ctx context.Context, err error) verdict {
	switch {
	case err == nil || isDomain(err):
		return success
	case ctx.Err() != nil:
		return excluded
	default:
		return failure
	}
}

// domain are the answers a working dependency gives. An error that wraps
// none of them is an infrastructure failure; a new domain error must be
// listed here or it would open the breaker.
var domain = []error{
	inventory.ErrSoldOut, inventory.ErrLimitReached, inventory.ErrSaleNotActive, inventory.ErrSaleNotFound,
	ratelimit.ErrLimited, inventory.ErrKeyClaimed, inventory.ErrKeyReused, inventory.ErrStaleFence,
	inventory.ErrInvalidSale, inventory.ErrInvalidValue,
	order.ErrNotFound, order.ErrKeyInUse, order.ErrKeyReused, order.ErrOverloaded, order.ErrInvalidValue,
	order.ErrAboveLimit, order.ErrCommitExpired, order.ErrDuplicate, order.ErrNotTransitable,
}

func isDomain(err error) bool {
	for _, d := range domain {
		if errors.Is(err, d) {
			return true
		}
	}
	return false
}
