package invredis

import (
	"context"
	"errors"
	"time"

	"flashsale/inventory"
	"flashsale/lease"
)

// Locker is the inventory service's lease: RedLock over the independent
// nodes, its refusal translated into the domain's ErrSaleBusy.
type Locker struct{ L *lease.Locker }

// Hold runs fn under the named lease with its fencing token, and gives the
// lease back after.
func (l Locker) Hold(ctx context.Context, name string, wait time.Duration, fn func(token int64) error) error {
	le, err := l.L.Acquire(ctx, name, wait)
	if errors.Is(err, lease.ErrNotAcquired) {
		return errors.Join(inventory.ErrSaleBusy, err)
	}
	if err != nil {
		return err
	}
	defer le.Release(ctx)
	return fn(le.Token)
}
