package invredis

import (
	"context"
	_ "embed"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory"
)

//go:embed lua/rebuild.lua
var rebuildLua string

// rebuildScript is shared: a Script is its source and hash, nothing more.
var rebuildScript = redis.NewScript(rebuildLua)

// RebuildTimeout is what a rebuild's client should allow one call: the
// script writes every live order of the sale in one atomic call, a few
// seconds for a million orders, where the buy path's client gives up
// after half a second.
const RebuildTimeout = 30 * time.Second

// RebuildWith runs the rebuild script on c, the same node or cluster as
// the stock's client with timeouts of about RebuildTimeout: on the buy
// path's client a sale of a few hundred thousand live orders timed out on
// every attempt while Redis ran the script to its end each time, blocking
// the node, and the round never completed.
func (s *Stock) RebuildWith(c redis.UniversalClient) { s.slow = c }

// Rebuild runs lua/rebuild.lua for the sale with its live orders, as read
// from PostgreSQL; token is the fencing token of the lease the caller
// holds.
func (s *Stock) Rebuild(ctx context.Context, sale inventory.Sale, live []inventory.LiveOrder, token int64) (inventory.Rebuilt, error) {
	sk := s.saleKey(sale.ID)
	keys := append(make([]string, 0, 3+len(live)), sk, sk+":buyers", sk+":res")
	args := append(make([]any, 0, 8+3*len(live)), token, sale.Stock, sale.StartsAt.UnixMilli(), sale.EndsAt.UnixMilli(),
		sale.PerUserLimit, int(inventory.ClaimTTL/time.Second), s.Channel(), sale.ID.String())
	for _, o := range live {
		keys = append(keys, s.claimKey(sale.ID, o.Buyer, o.Key))
		args = append(args, field(o.Buyer, o.Key), o.Qty, hex.EncodeToString(o.RequestHash))
	}
	rdb := s.rdb
	if s.slow != nil {
		rdb = s.slow
	}
	res, err := rebuildScript.Run(ctx, rdb, keys, args...).Int64Slice()
	if err != nil {
		return inventory.Rebuilt{}, fmt.Errorf("inventory: rebuild: %w", err)
	}
	if res[3] == 1 {
		return inventory.Rebuilt{}, inventory.ErrStaleFence
	}
	return inventory.Rebuilt{Stock: int(res[0]), Added: int(res[1]), Dropped: int(res[2])}, nil
}

// RememberClosed adds the keys of closed orders to the sale's closed set,
// which release.lua keeps and Redis may have lost: a key there only sends
// its buyer to PostgreSQL once the sale is sold out, so adding one again,
// or one a concurrent cancel adds too, is harmless.
func (s *Stock) RememberClosed(ctx context.Context, id inventory.SaleID, keys []inventory.BuyerKey) error {
	fields := make([]any, len(keys))
	for i, k := range keys {
		fields[i] = field(k.Buyer, k.Key)
	}
	if err := s.rdb.SAdd(ctx, s.saleKey(id)+":closed", fields...).Err(); err != nil {
		return fmt.Errorf("inventory: rebuild closed keys: %w", err)
	}
	return nil
}
