package outbox

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Channel is the PostgreSQL channel the outbox trigger notifies on commit,
// with the shard schema as payload.
const Channel = "flashsale_outbox"

// listen wakes the loops of pool's schemas when their outbox commits, and
// reconnects after a lost connection; the loops' poll covers the gap.
func (r *Relay) listen(ctx context.Context, pool *pgxpool.Pool, wakes map[string]chan struct{}) {
	for ctx.Err() == nil {
		if err := r.listenOnce(ctx, pool, wakes); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "outbox listener reconnecting", "err", err)
			sleep(ctx, time.Second)
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, pool *pgxpool.Pool, wakes map[string]chan struct{}) error {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing session must not go back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if w, ok := wakes[n.Payload]; ok {
			select {
			case w <- struct{}{}:
			default: // already woken
			}
		}
	}
}
