package inventory

import (
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/rebuild.lua
var rebuildLua string

// rebuildScript is shared: a Script is its source and hash, nothing more.
var rebuildScript = redis.NewScript(rebuildLua)

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

// liveWindow is how long after its end a sale is still rebuilt and
// reconciled: its orders may still close and release units until then.
const liveWindow = time.Hour

// Rebuild makes Redis's state of the sale PostgreSQL's again: its live
// orders become reservations with their idempotency claims, reservations
// of closed orders go, and stock and the per-buyer counts are recomputed
// from what is held (see lua/rebuild.lua). It is idempotent and runs under
// the sale's lease; creating a sale and finding one missing use it too, so
// Redis never reloads a sale's original total over units already sold.
func (s *Service) Rebuild(ctx context.Context, id SaleID) (Rebuilt, error) {
	var out Rebuilt
	err := s.guarded(ctx, id, func(token int64) error {
		if err := s.sales.Fence(ctx, id, token); err != nil {
			return err
		}
		sale, err := s.sales.Get(ctx, id)
		if err != nil {
			return err
		}
		out, err = s.rebuildLocked(ctx, sale, token)
		return err
	})
	return out, err
}

// rebuildLocked rebuilds the sale; the caller holds its lease and has
// written token to sales.fence.
//
// An order that closes between the read of the live orders and the script
// may have had its release run before the script put its reservation
// back; the second read finds it closed and releases it again (releases
// are idempotent), so no units stay held by a closed order.
func (s *Service) rebuildLocked(ctx context.Context, sale Sale, token int64) (Rebuilt, error) {
	live, err := s.orders.LiveOrders(ctx, sale.ID)
	if err != nil {
		return Rebuilt{}, err
	}
	if err := s.rememberClosed(ctx, sale.ID); err != nil {
		return Rebuilt{}, err
	}
	out, err := s.stock.Rebuild(ctx, sale, live, token)
	if err != nil || out.Added == 0 {
		return out, err
	}
	still, err := s.orders.LiveOrders(ctx, sale.ID)
	if err != nil {
		return out, err
	}
	return s.releaseClosed(ctx, sale.ID, live, still, token, out)
}

// releaseClosed releases the orders of before that are not in after.
func (s *Service) releaseClosed(ctx context.Context, id SaleID, before, after []LiveOrder, token int64, out Rebuilt) (Rebuilt, error) {
	open := make(map[BuyerKey]bool, len(after))
	for _, o := range after {
		open[BuyerKey{o.Buyer, o.Key}] = true
	}
	for _, o := range before {
		if open[BuyerKey{o.Buyer, o.Key}] {
			continue
		}
		// The claim stays: a retry of the order's request still replays it.
		n, left, err := s.stock.releaseFenced(ctx, id, o.Buyer, o.Key, false, token)
		if err != nil {
			return out, err
		}
		if n > 0 {
			out.Released++
			out.Stock = left
		}
	}
	return out, nil
}

// RebuildAll rebuilds every sale that ended less than an hour ago or has
// not ended, and reports how many it rebuilt; a sale it could not rebuild
// (its lease busy, a store failing) is in the error.
func (s *Service) RebuildAll(ctx context.Context) (int, error) {
	ids, err := s.sales.Live(ctx, liveWindow)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, id := range ids {
		r, err := s.Rebuild(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("sale %s: %w", id, err))
			continue
		}
		n++
		if r.Added+r.Dropped+r.Released > 0 {
			s.log.WarnContext(ctx, "rebuilt a sale Redis had lost writes of", "sale_id", id.String(),
				"added", r.Added, "dropped", r.Dropped, "released", r.Released, "stock", r.Stock)
		}
	}
	return n, errors.Join(errs...)
}

// align brings an existing sale's total in Redis up to PostgreSQL's, and
// rebuilds a sale Redis lost; the caller holds the lease and has written
// token to sales.fence.
func (s *Service) align(ctx context.Context, sale Sale, token int64) error {
	_, err := s.stock.Warm(ctx, sale, token)
	if errors.Is(err, ErrSaleNotFound) {
		_, err = s.rebuildLocked(ctx, sale, token)
	}
	return err
}

// Rebuild runs lua/rebuild.lua for the sale with its live orders, as read
// from PostgreSQL; token is the fencing token of the lease the caller
// holds.
func (s *Stock) Rebuild(ctx context.Context, sale Sale, live []LiveOrder, token int64) (Rebuilt, error) {
	sk := s.saleKey(sale.ID)
	keys := append(make([]string, 0, 3+len(live)), sk, sk+":buyers", sk+":res")
	args := append(make([]any, 0, 8+3*len(live)), token, sale.Stock, sale.StartsAt.UnixMilli(), sale.EndsAt.UnixMilli(),
		sale.PerUserLimit, int(ClaimTTL/time.Second), s.Channel(), sale.ID.String())
	for _, o := range live {
		keys = append(keys, s.claimKey(sale.ID, o.Buyer, o.Key))
		args = append(args, field(o.Buyer, o.Key), o.Qty, hex.EncodeToString(o.RequestHash))
	}
	res, err := rebuildScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return Rebuilt{}, fmt.Errorf("inventory: rebuild: %w", err)
	}
	if res[3] == 1 {
		return Rebuilt{}, ErrStaleFence
	}
	return Rebuilt{Stock: int(res[0]), Added: int(res[1]), Dropped: int(res[2])}, nil
}

// rememberClosed puts the keys of the sale's closed orders back in its
// closed set, which release.lua keeps and Redis may have lost: a key there
// only sends its buyer to PostgreSQL once the sale is sold out, so adding
// one again, or one a concurrent cancel adds too, is harmless.
func (s *Service) rememberClosed(ctx context.Context, id SaleID) error {
	keys, err := s.orders.ClosedKeys(ctx, id)
	if err != nil || len(keys) == 0 {
		return err
	}
	fields := make([]any, len(keys))
	for i, k := range keys {
		fields[i] = field(k.Buyer, k.Key)
	}
	if err := s.stock.rdb.SAdd(ctx, s.stock.saleKey(id)+":closed", fields...).Err(); err != nil {
		return fmt.Errorf("inventory: rebuild closed keys: %w", err)
	}
	return nil
}
