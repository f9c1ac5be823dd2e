// Package invredis is the live stock in Redis: sales reserved atomically by
// Lua scripts (stock, per-buyer limits, idempotency claims and rate limits
// in one round trip), reservations batched per sale, each instance's
// sold-out memory kept current over pub/sub, the rebuild from PostgreSQL's
// orders and the watcher that notices the node lost data.
package invredis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory"
	"flashsale/ratelimit"
)

var (
	//go:embed lua/reserve.lua
	reserveLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/warm.lua
	warmLua string
	//go:embed lua/settle.lua
	settleLua string
)

// Stock is the live stock of every sale, in Redis node 1 or in a Redis
// Cluster: every key of a sale carries the sale's hash tag, so each script
// call touches one slot.
type Stock struct {
	rdb     redis.UniversalClient
	slow    redis.UniversalClient // the rebuild script's client; rdb when nil
	prefix  string
	limits  ratelimit.Limits
	reserve *redis.Script
	release *redis.Script
	warm    *redis.Script
	settle  *redis.Script
}

// NewStock returns the stock kept under prefix on rdb, a single node's
// client or a *redis.ClusterClient.
func NewStock(rdb redis.UniversalClient, prefix string, limits ratelimit.Limits) *Stock {
	return &Stock{
		rdb: rdb, prefix: prefix, limits: limits,
		reserve: redis.NewScript(reserveLua), release: redis.NewScript(releaseLua),
		warm: redis.NewScript(warmLua), settle: redis.NewScript(settleLua),
	}
}

// Channel is the pub/sub channel on which stock releases are announced.
func (s *Stock) Channel() string { return s.prefix + ":reopen" }

func (s *Stock) saleKey(id inventory.SaleID) string { return s.prefix + ":{sale:" + id.String() + "}" }

func field(buyer, key string) string { return buyer + "\x00" + key }

func (s *Stock) claimKey(id inventory.SaleID, buyer, key string) string {
	return s.saleKey(id) + ":idem:" + field(buyer, key)
}

// Reserve runs the reservation script: one round trip decides the rate
// limits, the idempotency claim, the sale window, the buyer's limit and the
// stock, and takes the units when all allow it.
func (s *Stock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	keys, args := s.reserveArgs([]inventory.Reservation{r})
	res, err := s.reserve.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return inventory.Reserved{}, fmt.Errorf("inventory: reserve: %w: %w", inventory.ErrReplyLost, err)
	}
	return reserveOutcome(res)
}

// reserveArgs are the script's keys and arguments for rs, reservations of
// one sale (the keys of one call must share its hash tag).
func (s *Stock) reserveArgs(rs []inventory.Reservation) (keys []string, args []any) {
	l := s.limits
	keys = make([]string, 0, 7*len(rs))
	args = append(make([]any, 0, 5+5*len(rs)), l.UserRate, l.UserBurst, l.IPRate, l.IPBurst, int(inventory.ClaimTTL/time.Second))
	for _, r := range rs {
		sk := s.saleKey(r.Sale)
		keys = append(keys, sk, sk+":buyers", sk+":res", s.claimKey(r.Sale, r.Buyer, r.Key),
			sk+":rl:u:"+r.Buyer, sk+":rl:ip:"+r.ClientIP, sk+":queue")
		args = append(args, r.Qty.Int(), r.Fingerprint, r.Buyer, field(r.Buyer, r.Key), r.Attempt)
	}
	return keys, args
}

func reserveOutcome(res []int64) (inventory.Reserved, error) {
	if len(res) != 3 {
		return inventory.Reserved{}, fmt.Errorf("inventory: reserve: unexpected reply %v", res)
	}
	switch res[0] {
	case 0:
		return inventory.Reserved{At: time.UnixMilli(res[1]), StockLeft: int(res[2])}, nil
	case 1:
		return inventory.Reserved{StockLeft: int(res[1])}, inventory.ErrSoldOut
	case 2:
		return inventory.Reserved{}, inventory.ErrLimitReached
	case 3:
		return inventory.Reserved{}, inventory.ErrSaleNotActive
	case 4:
		return inventory.Reserved{}, inventory.ErrSaleNotFound
	case 5:
		limit := "buyer"
		if res[2] == 2 {
			limit = "ip"
		}
		return inventory.Reserved{}, &ratelimit.Error{Limit: limit, RetryAfter: time.Duration(res[1]) * time.Millisecond}
	case 6:
		return inventory.Reserved{}, inventory.ErrKeyClaimed
	case 7:
		return inventory.Reserved{}, inventory.ErrKeyReused
	}
	return inventory.Reserved{}, fmt.Errorf("inventory: reserve: unknown code %d", res[0])
}

// Release returns a reservation's units to stock, at most once however
// often it is called; forget also drops the idempotency claim, so that a
// retry of a request that made no order is judged afresh. It reports the
// units returned.
func (s *Stock) Release(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool) (int, error) {
	n, _, err := s.ReleaseFenced(ctx, sale, buyer, key, forget, 0)
	return n, err
}

// Discard drops a reservation and its idempotency claim without giving its
// units back: PostgreSQL refused them because the sale has no unit left in
// truth, so Redis counted units it had lost. Each discard brings Redis one
// reservation closer to the truth. It reports the units dropped.
func (s *Stock) Discard(ctx context.Context, sale inventory.SaleID, buyer, key string) (int, error) {
	n, _, err := s.runRelease(ctx, sale, buyer, key, true, 0, false, "")
	return n, err
}

// Abandon returns the units of the reservation r's attempt made, if it
// made one, and drops its claim: the attempt's Reserve failed without a
// reply, so the script may or may not have run, and no order will be
// written under it. A reservation made by another attempt under the same
// key (a retry), or one already confirmed, is left alone. It reports the
// units returned.
func (s *Stock) Abandon(ctx context.Context, r inventory.Reservation) (int, error) {
	if r.Attempt == "" {
		return 0, errors.New("inventory: abandon: the reservation names no attempt")
	}
	n, _, err := s.runRelease(ctx, r.Sale, r.Buyer, r.Key, true, 0, true, r.Attempt)
	return n, err
}

// ReleaseFenced is Release under a lease: token fences it against a
// later holder's writes. It reports the units returned and the stock left.
func (s *Stock) ReleaseFenced(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool, token int64) (int, int, error) {
	return s.runRelease(ctx, sale, buyer, key, forget, token, true, "")
}

// runRelease runs release.lua for one reservation; a non-empty attempt
// releases it only if that attempt made it.
func (s *Stock) runRelease(ctx context.Context, sale inventory.SaleID, buyer, key string, forget bool, token int64, giveBack bool,
	attempt string) (int, int, error) {
	sk := s.saleKey(sale)
	res, err := s.release.Run(ctx, s.rdb, []string{sk, sk + ":buyers", sk + ":res", s.claimKey(sale, buyer, key), sk + ":closed"},
		field(buyer, key), buyer, flag(forget), s.Channel(), sale.String(), token, flag(giveBack), attempt).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("inventory: release: %w", err)
	}
	if res[2] == 1 {
		return 0, 0, inventory.ErrStaleFence
	}
	return int(res[0]), int(res[1]), nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Warm raises a sale's stock in Redis to PostgreSQL's total; token is the
// fencing token of the lock the caller holds. A sale Redis does not hold is
// ErrSaleNotFound: only Rebuild creates one, from the orders.
func (s *Stock) Warm(ctx context.Context, sale inventory.Sale, token int64) (int, error) {
	res, err := s.warm.Run(ctx, s.rdb, []string{s.saleKey(sale.ID)}, sale.Stock, sale.StartsAt.UnixMilli(),
		sale.EndsAt.UnixMilli(), sale.PerUserLimit, token, s.Channel(), sale.ID.String()).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("inventory: warm: %w", err)
	}
	switch {
	case res[2] == 1:
		return 0, inventory.ErrStaleFence
	case res[3] == 1:
		return 0, inventory.ErrSaleNotFound
	}
	return int(res[0]), nil
}

// Remaining is the live stock of a sale, and ErrSaleNotFound when Redis
// does not hold it.
func (s *Stock) Remaining(ctx context.Context, sale inventory.SaleID) (int, error) {
	n, err := s.rdb.HGet(ctx, s.saleKey(sale), "stock").Int()
	if errors.Is(err, redis.Nil) {
		return 0, inventory.ErrSaleNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: remaining: %w", err)
	}
	return n, nil
}
