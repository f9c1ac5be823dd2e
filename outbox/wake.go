package outbox

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Wake-ups between instances travel on one Redis pub/sub channel under the
// deployment's prefix, outside any order transaction: a NOTIFY inside it
// made every order commit in the cluster wait its turn for PostgreSQL's
// notification lock (docs/benchmarks.md). A message is either the shards
// that received rows, comma-separated, or membersNotice. A message lost
// (no subscriber yet, a reconnect) only leaves the rows to the poll.
const membersNotice = "members"

func wakeChannel(prefix string) string { return prefix + ":relay:wake" }

// announce tells the other relays that the relays alive changed.
func (r *Relay) announce(ctx context.Context) {
	if err := r.rdb.Publish(ctx, wakeChannel(r.cfg.Prefix), membersNotice).Err(); err != nil && ctx.Err() == nil {
		r.log.WarnContext(ctx, "relay membership change not announced", "err", err)
	}
}

// listen subscribes to the wake-ups until ctx ends: it wakes this relay's
// loops for the shards they hold, and renews the heartbeat at once when
// another relay joined or left.
func (r *Relay) listen(ctx context.Context) {
	ps := r.rdb.Subscribe(ctx, wakeChannel(r.cfg.Prefix))
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.ReceiveMessage(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.WarnContext(ctx, "relay wake-up subscription failed, reconnecting", "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		r.notice(msg.Payload)
	}
}

func (r *Relay) notice(payload string) {
	if payload == membersNotice {
		select {
		case r.refresh <- struct{}{}:
		default:
		}
		return
	}
	for f := range strings.SplitSeq(payload, ",") {
		if n, err := strconv.Atoi(f); err == nil {
			r.Wake(n)
		}
	}
}

// Waker tells the relay holding a shard, in this instance or another, that
// the shard's outbox received rows. The order store calls Committed once
// per committed transaction and shard (a group commit's batch, never each
// order); the shards committed while a notice is on its way go together
// in the next one, so there is at most one notice per batch, and fewer
// under load.
type Waker struct {
	local   *Relay
	rdb     *redis.Client
	channel string
	log     *slog.Logger

	mu      sync.Mutex
	pending map[int]struct{}
	kick    chan struct{}
}

// NewWaker returns the waker of the instance whose relay is local (running
// or not); rdb and prefix are the relays'.
func NewWaker(local *Relay, rdb *redis.Client, prefix string, log *slog.Logger) *Waker {
	return &Waker{local: local, rdb: rdb, channel: wakeChannel(prefix), log: log,
		pending: map[int]struct{}{}, kick: make(chan struct{}, 1)}
}

// Committed says shard's outbox received rows that committed. It never
// blocks: the local relay is woken directly when it holds the shard;
// otherwise Run sends a notice.
func (w *Waker) Committed(shard int) {
	if w.local.Wake(shard) {
		return
	}
	w.mu.Lock()
	w.pending[shard] = struct{}{}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a notice is due already and will carry this shard
	}
}

// Run sends the notices until ctx ends.
func (w *Waker) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
		w.send(ctx)
	}
}

// send publishes the shards pending, in one message.
func (w *Waker) send(ctx context.Context) {
	w.mu.Lock()
	shards := slices.Sorted(maps.Keys(w.pending))
	clear(w.pending)
	w.mu.Unlock()
	if len(shards) == 0 {
		return
	}
	var b strings.Builder
	for i, s := range shards {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s))
	}
	if err := w.rdb.Publish(ctx, w.channel, b.String()).Err(); err != nil && ctx.Err() == nil {
		w.log.WarnContext(ctx, "relay wake-up not sent; the owner's poll will find the rows", "shards", len(shards), "err", err)
	}
}
