package orderpg

import (
	"context"
	"fmt"
	"strings"

	"flashsale"
	"flashsale/inventory"
	"flashsale/shard"
)

// LiveUnits counts the units of the sale in live orders (pending payment or
// paid) over every shard, with one query per database. The sold-out memory
// subtracts them from what Redis handed out to tell units held by commits
// in flight from units that are gone.
func (s *Store) LiveUnits(ctx context.Context, sale inventory.SaleID) (int, error) {
	total := 0
	for db, p := range s.pools {
		q := liveUnitsQuery(s.m, db)
		if q == "" {
			continue // a database that holds no shard
		}
		var n int64
		if err := p.QueryRow(ctx, q, sale.Int64()).Scan(&n); err != nil {
			return 0, fmt.Errorf("orderpg: live units: %w", err)
		}
		total += int(n)
	}
	return total, nil
}

// liveUnitsQuery sums sql/order_live_units.sql over the shards of database
// db. It is built per call: the memory asks about once a second per sale,
// and the text is a few hundred bytes per shard.
func liveUnitsQuery(m shard.Map, db int) string {
	one := flashsale.Query("order_live_units")
	var parts []string
	for _, sh := range m.OnDatabase(db) {
		parts = append(parts, "("+strings.ReplaceAll(one, "__shard__", sh.Schema())+"\n)")
	}
	if len(parts) == 0 {
		return ""
	}
	return "SELECT coalesce(sum(units), 0)::bigint FROM (\n" + strings.Join(parts, "\nUNION ALL\n") + "\n) AS per_shard"
}
