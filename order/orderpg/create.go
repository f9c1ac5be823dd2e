package orderpg

import (
	"strconv"
	"strings"

	"flashsale"
	"flashsale/shard"
)

// The per-shard block of sql/order_create.sql.
const (
	eachShard = "-- each shard {\n"
	endShard  = "-- }\n"
)

// CreateSQL is sql/order_create.sql written out for orders of the given
// shards, all of one database: its per-shard block once per shard, and
// $11 naming each order's shard. Orders of a shard not in the list are
// not inserted, and come back with no row.
func CreateSQL(shards []shard.ID) string {
	t := flashsale.SQL.OrderCreate
	i, j := strings.Index(t, eachShard), strings.Index(t, endShard)
	if i < 0 || j < i {
		panic("orderpg: sql/order_create.sql has no per-shard block")
	}
	block := t[i+len(eachShard) : j]
	var b, union strings.Builder
	b.WriteString(t[:i])
	for k, sh := range shards {
		n := strconv.Itoa(int(sh))
		b.WriteString(strings.NewReplacer("__shard__", sh.Schema(), "__n__", n).Replace(block))
		if k > 0 {
			union.WriteString(" UNION ALL ")
		}
		union.WriteString("SELECT * FROM o" + n)
	}
	b.WriteString(strings.Replace(t[j+len(endShard):], "__orders__", union.String(), 1))
	return b.String()
}

// createFor picks the statement for a batch over shards (distinct): one
// shard's own, or the database's, which covers all its shards. A statement
// over several shards costs less than one per shard; over one, less than
// the database's, whose other shards' inserts are empty but not free.
func createFor(shards []shard.ID, one func(shard.ID) string, all string) string {
	if len(shards) == 1 {
		return one(shards[0])
	}
	return all
}
