// Package ratelimit names the per-second request limits that both the
// API's limiter and the reservation script enforce (the buy path folds them
// into its one Redis round trip), and the error that refuses a request over
// one of them. It owns the words only; the GCRA runs where the requests do.
package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrLimited is the refusal of a request over a rate limit.
var ErrLimited = errors.New("rate limited")

// Limits are the per-second rates and bursts of each buyer and each client IP.
type Limits struct {
	UserRate, UserBurst int
	IPRate, IPBurst     int
}

// Error says which limit refused a request and when to come back.
type Error struct {
	Limit      string // "buyer" or "ip"
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s rate limit, retry after %s", e.Limit, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrLimited) true.
func (e *Error) Unwrap() error { return ErrLimited }
