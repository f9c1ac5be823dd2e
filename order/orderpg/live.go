package orderpg

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"flashsale"
	"flashsale/inventory"
	"flashsale/shard"
)

// LiveOrders lists the sale's orders that hold its units (pending payment
// or paid), with one query per shard: a sale's buyers are on every shard.
// Inventory rebuilds Redis from them after Redis lost writes, which is
// rare, so the statement is not kept with the hot path's.
func (s *Store) LiveOrders(ctx context.Context, sale inventory.SaleID) ([]inventory.LiveOrder, error) {
	q := flashsale.SQL.OrderLiveBySale
	var out []inventory.LiveOrder
	for sh := range shard.ID(s.m.Shards()) {
		rows, err := s.pools[s.m.Database(sh)].Query(ctx, strings.ReplaceAll(q, "__shard__", sh.Schema()), sale.Int64())
		if err != nil {
			return nil, fmt.Errorf("orderpg: live orders: %w", err)
		}
		live, err := pgx.CollectRows(rows, pgx.RowToStructByPos[inventory.LiveOrder])
		if err != nil {
			return nil, fmt.Errorf("orderpg: live orders: %w", err)
		}
		out = append(out, live...)
	}
	return out, nil
}

// ClosedKeys lists the keys of the sale's cancelled or expired orders, with
// one query per shard, for the same rebuild: the sold-out memory sends
// them to PostgreSQL for their replay.
func (s *Store) ClosedKeys(ctx context.Context, sale inventory.SaleID) ([]inventory.BuyerKey, error) {
	q := flashsale.SQL.OrderClosedBySale
	var out []inventory.BuyerKey
	for sh := range shard.ID(s.m.Shards()) {
		rows, err := s.pools[s.m.Database(sh)].Query(ctx, strings.ReplaceAll(q, "__shard__", sh.Schema()), sale.Int64())
		if err != nil {
			return nil, fmt.Errorf("orderpg: closed orders: %w", err)
		}
		keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[inventory.BuyerKey])
		if err != nil {
			return nil, fmt.Errorf("orderpg: closed orders: %w", err)
		}
		out = append(out, keys...)
	}
	return out, nil
}
