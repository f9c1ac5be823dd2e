package invredis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory"
)

// winners are the (buyer, key) pairs that may have an order in a sold-out
// sale: its reservations, committed or still committing, and the closed
// orders whose claim was kept. At most one entry per unit ever sold.
type winners map[inventory.BuyerKey]struct{}

// soldOutSnapshot is one atomic read of a sale: its stock, the total Redis
// was given, and its possible winners.
type soldOutSnapshot struct {
	remaining, total int
	winners          winners
}

// snapshot reads the sale's stock, total and possible winners in one
// MULTI, so that no reservation can slip between them: while the stock it
// reads is 0, no reservation can succeed until units come back, and every
// return of units announces itself on the reopen channel.
func (s *Stock) snapshot(ctx context.Context, id inventory.SaleID) (soldOutSnapshot, error) {
	sk := s.saleKey(id)
	var lvl *redis.SliceCmd
	var res, closed *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		lvl = p.HMGet(ctx, sk, "stock", "total")
		res = p.HKeys(ctx, sk+":res")
		closed = p.SMembers(ctx, sk+":closed")
		return nil
	})
	if err != nil {
		return soldOutSnapshot{}, fmt.Errorf("inventory: sold-out snapshot: %w", err)
	}
	snap := soldOutSnapshot{winners: make(winners, len(res.Val())+len(closed.Val()))}
	if snap.remaining, snap.total, err = parseLevel(lvl.Val()); err != nil {
		return soldOutSnapshot{}, err
	}
	for _, f := range append(res.Val(), closed.Val()...) {
		if k, ok := parseField(f); ok {
			snap.winners[k] = struct{}{}
		}
	}
	return snap, nil
}

// level reads the sale's stock and the total Redis was given.
func (s *Stock) level(ctx context.Context, id inventory.SaleID) (remaining, total int, err error) {
	v, err := s.rdb.HMGet(ctx, s.saleKey(id), "stock", "total").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("inventory: stock level: %w", err)
	}
	return parseLevel(v)
}

func parseLevel(v []any) (remaining, total int, err error) {
	if len(v) != 2 || v[0] == nil {
		return 0, 0, inventory.ErrSaleNotFound
	}
	var n [2]int
	for i, x := range v {
		if x == nil {
			continue
		}
		str, _ := x.(string)
		if n[i], err = strconv.Atoi(str); err != nil {
			return 0, 0, fmt.Errorf("inventory: stock level: malformed %q: %w", str, err)
		}
	}
	return n[0], n[1], nil
}

// parseField splits a reservation field, buyer NUL key; a key is printable
// ASCII, so the last NUL is the separator whatever the buyer id holds.
func parseField(f string) (inventory.BuyerKey, bool) {
	i := strings.LastIndexByte(f, 0)
	if i < 0 {
		return inventory.BuyerKey{}, false
	}
	return inventory.BuyerKey{Buyer: f[:i], Key: f[i+1:]}, true
}
