package order

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable says a dependency of the buy path (Redis node 1, a
// PostgreSQL database) is down: the request may be retried later. From the
// order store it means the order certainly was not written, so its
// reservation can be released at once (an unknown outcome is
// ErrCommitUnknown instead).
var ErrUnavailable = errors.New("order: a dependency is unavailable")

// UnavailableError is ErrUnavailable from an open circuit breaker: it names
// the dependency and when the breaker lets a probe through again.
type UnavailableError struct {
	Dependency string
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("order: %s is unavailable, retry after %s", e.Dependency, e.RetryAfter.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }
