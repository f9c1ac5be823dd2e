package orderpg

import (
	"slices"
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

// chunkShards bounds the shards one statement covers: every shard it
// covers adds its tables' and indexes' locks to each transaction that runs
// it, used or not, and a database may hold hundreds of shards.
const chunkShards = 16

// Statements are the order_create statements of one database: each
// shard's own, and one for each chunk of up to chunkShards of its shards.
type Statements struct {
	one    map[shard.ID]string
	chunk  map[shard.ID]int
	chunks []string
}

// NewStatements writes the statements for a database's shards.
func NewStatements(shards []shard.ID) *Statements {
	s := &Statements{one: make(map[shard.ID]string, len(shards)), chunk: make(map[shard.ID]int, len(shards))}
	for c := range slices.Chunk(shards, chunkShards) {
		for _, sh := range c {
			s.one[sh], s.chunk[sh] = CreateSQL([]shard.ID{sh}), len(s.chunks)
		}
		s.chunks = append(s.chunks, CreateSQL(c))
	}
	return s
}

// Part is one statement of a batch and the orders it commits, by their
// index in the batch.
type Part struct {
	SQL string
	Idx []int
}

// Plan splits a batch whose orders belong to the shards shardOf (one
// entry per order) into one statement per chunk it touches: the chunk's,
// or a shard's own when the batch has one shard of that chunk. Several
// shards in one statement cost less than a statement each; one shard alone
// costs less in its own than in its chunk's, whose other shards' inserts
// are empty but not free.
func (s *Statements) Plan(shardOf []shard.ID) []Part {
	var parts []Part
	var shards [][]shard.ID // of each part
	at := map[int]int{}     // chunk → its part
	for i, sh := range shardOf {
		c := s.chunk[sh]
		k, ok := at[c]
		if !ok {
			k = len(parts)
			at[c] = k
			parts, shards = append(parts, Part{SQL: s.chunks[c]}), append(shards, nil)
		}
		parts[k].Idx = append(parts[k].Idx, i)
		if !slices.Contains(shards[k], sh) {
			shards[k] = append(shards[k], sh)
		}
	}
	for k := range parts {
		if len(shards[k]) == 1 {
			parts[k].SQL = s.one[shards[k][0]]
		}
	}
	return parts
}
