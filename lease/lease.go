// Package lease hands out RedLock leases over independent Redis nodes, each
// with a fencing token. RedLock alone is unsafe when a holder pauses past
// its TTL (Kleppmann), so every write a lease guards carries its token and
// the storage refuses tokens older than the last one it saw.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// ErrNotAcquired means another holder has the lease.
var ErrNotAcquired = errors.New("lease: not acquired")

// ErrLost means the lease expired or was taken over before it was extended.
var ErrLost = errors.New("lease: lost")

// Locker hands out leases; every lease carries a fresh fencing token.
type Locker struct {
	rs     *redsync.Redsync
	prefix string
	ttl    time.Duration
	tokens func(context.Context) (int64, error)
}

// NewLocker returns a locker over the nodes; tokens mints fencing tokens.
func NewLocker(nodes []*redis.Client, prefix string, ttl time.Duration, tokens func(context.Context) (int64, error)) *Locker {
	pools := make([]redsyncredis.Pool, len(nodes))
	for i, n := range nodes {
		pools[i] = goredis.NewPool(n)
	}
	return &Locker{rs: redsync.New(pools...), prefix: prefix, ttl: ttl, tokens: tokens}
}

// TTL is how long a lease lasts unless extended.
func (l *Locker) TTL() time.Duration { return l.ttl }

// Lease is a held lock and the fencing token of its writes.
type Lease struct {
	Token int64
	mu    *redsync.Mutex
}

// Acquire takes the named lock, trying for at most wait, then mints the
// token. The token is minted after the lock is held, so a later holder
// always carries a larger token.
func (l *Locker) Acquire(ctx context.Context, name string, wait time.Duration) (*Lease, error) {
	const delay = 50 * time.Millisecond
	// FailFast answers as soon as a quorum has spoken, so a node that is
	// down costs nothing; the deadline bounds the whole attempt.
	mu := l.rs.NewMutex(l.prefix+":lock:"+name, redsync.WithExpiry(l.ttl), redsync.WithTries(max(1, int(wait/delay))),
		redsync.WithRetryDelay(delay), redsync.WithFailFast(true))
	lctx, cancel := context.WithTimeout(ctx, wait+l.ttl/2)
	defer cancel()
	if err := mu.LockContext(lctx); err != nil {
		// redsync answers taken, failed, or a join of node errors when the
		// nodes disagree; every one of them means "not held".
		return nil, fmt.Errorf("%w: %s: %w", ErrNotAcquired, name, err)
	}
	token, err := l.tokens(ctx)
	if err != nil {
		le := &Lease{mu: mu}
		le.Release(ctx)
		return nil, err
	}
	return &Lease{Token: token, mu: mu}, nil
}

// Extend pushes the lease's expiry out by its TTL, or reports ErrLost.
func (le *Lease) Extend(ctx context.Context) error {
	ok, err := le.mu.ExtendContext(ctx)
	if err != nil || !ok {
		return fmt.Errorf("%w: %v", ErrLost, err)
	}
	return nil
}

// Release gives the lock back; a lease that already expired is not an
// error, since its writes were fenced anyway.
func (le *Lease) Release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = le.mu.UnlockContext(ctx)
}
