package outbox

import (
	"context"
	"crypto/rand"
	_ "embed"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// members is this relay's view of the relays alive: each renews its
// heartbeat every sixth of the lease TTL in one sorted set under the
// deployment's prefix, and the shards are shared by rank in the sorted
// list of their ids.
type members struct {
	rdb *redis.Client
	key string
	id  string
	ttl time.Duration // a heartbeat not renewed within it is dead

	mu  sync.Mutex
	ids []string // sorted; nil when Redis could not be asked
}

//go:embed members.lua
var membersLua string

var membersScript = redis.NewScript(membersLua)

// newMembers returns the membership of relay holder; a random suffix keeps
// two relays of one holder name apart.
func newMembers(rdb *redis.Client, prefix, holder string, ttl time.Duration) *members {
	return &members{rdb: rdb, key: prefix + ":relay:members", id: holder + "#" + rand.Text()[:8], ttl: ttl}
}

// beat renews this relay's heartbeat (or, with leave, removes it) and
// reads the relays alive; it reports whether they changed.
func (m *members) beat(ctx context.Context, leave bool) (changed bool, err error) {
	arg := "renew"
	if leave {
		arg = "leave"
	}
	ids, err := membersScript.Run(ctx, m.rdb, []string{m.key}, m.id, m.ttl.Milliseconds(), arg).StringSlice()
	slices.Sort(ids)
	m.mu.Lock()
	defer m.mu.Unlock()
	changed = !slices.Equal(ids, m.ids) || (err != nil) != (m.ids == nil)
	m.ids = ids
	return changed, err
}

// view is this relay's rank among the n relays alive; ok is false while
// they are unknown (Redis unreachable, or this relay's heartbeat lapsed).
func (m *members) view() (rank, n int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rank = slices.Index(m.ids, m.id)
	return rank, len(m.ids), rank >= 0
}

// start is where this relay begins looking for free shards among n.
func (m *members) start(n int) int {
	rank, alive, ok := m.view()
	if !ok {
		return 0
	}
	return rank * n / alive
}

// share is the part of n shards that the relay of the given rank takes
// among alive relays: n/alive each, and one more for n%alive of them,
// counted from offset on, so that the remainders of successive databases
// go to successive ranks and each relay's total stays within one of the
// others'.
func share(n, alive, rank, offset int) int {
	q := n / alive
	if ((rank-offset)%alive+alive)%alive < n%alive {
		q++
	}
	return q
}

// quota is how many of g's shards this relay holds: its share while the
// relays alive are known, every free one otherwise (a shard relayed twice
// is fenced; a shard nobody relays is an outage).
func (r *Relay) quota(g *group) int {
	rank, alive, ok := r.members.view()
	if !ok {
		return len(g.targets)
	}
	offset := 0
	for _, o := range r.groups {
		if o == g {
			break
		}
		offset += len(o.targets) % alive
	}
	return share(len(g.targets), alive, rank, offset)
}

// balance gives back the shards hs holds beyond this relay's share of g,
// or takes free ones up to it.
func (r *Relay) balance(ctx context.Context, g *group, hs []*held) []*held {
	want := r.quota(g)
	for len(hs) > want {
		r.giveBack(ctx, hs[len(hs)-1])
		hs = hs[:len(hs)-1]
	}
	if len(hs) < want {
		hs = r.acquire(ctx, g, hs, want)
	}
	return hs
}

// runMembers announces this relay, then renews its heartbeat every sixth of the lease TTL, and at once
// when another relay announces it joined or left, and has the loops
// rebalance when the relays alive changed.
func (r *Relay) runMembers(ctx context.Context) {
	r.announce(ctx)
	t := time.NewTicker(r.ttl / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.refresh:
		}
		r.heartbeat(ctx)
	}
}

// heartbeat renews this relay's heartbeat and has every loop rebalance if
// the relays alive changed. A relay whose loop is stuck (a write held up,
// a database not answering) lets its heartbeat lapse, so that the others
// count without it and take its shards as their leases expire.
func (r *Relay) heartbeat(ctx context.Context) {
	if r.stuck() {
		return
	}
	changed, err := r.members.beat(ctx, false)
	if err != nil && ctx.Err() == nil {
		r.log.WarnContext(ctx, "relay heartbeat failed; taking any free shard meanwhile", "err", err)
	}
	if !changed {
		return
	}
	for _, g := range r.groups {
		select {
		case g.rebalance <- struct{}{}:
		default:
		}
	}
}

// leave removes this relay's heartbeat and tells the others, so that they
// take its shards over at once rather than at their next heartbeat.
func (r *Relay) leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if _, err := r.members.beat(ctx, true); err != nil {
		r.log.WarnContext(ctx, "relay heartbeat not removed; it expires by itself", "err", err)
	}
	r.announce(ctx)
}

// stuck tells whether a loop has not gone round for a third of the lease
// TTL; an idle loop goes round every sixth.
func (r *Relay) stuck() bool {
	for _, g := range r.groups {
		if last := g.alive.Load(); last != 0 && time.Since(time.Unix(0, last)) > r.ttl/3 {
			return true
		}
	}
	return false
}
