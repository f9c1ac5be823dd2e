// Package shard maps buyers and order ids to logical shards and logical
// shards to PostgreSQL databases.
//
// A buyer's orders all live in one logical shard chosen by a hash of the
// buyer id, so a buyer's history is one query on one database. An order id
// carries its shard (Instagram's scheme: 41 bits of milliseconds since
// Epoch, 10 bits of shard, 12 bits of a per-shard sequence), so any order is
// found without a lookup table. Logical shard i lives in schema shard_NNNN of
// database i mod M; moving a shard to a new database is a dump and restore of
// one schema plus a change of the shard map.
package shard

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Layout of an order id, most significant bits first.
const (
	TimeBits     = 41
	ShardBits    = 10
	SequenceBits = 12
	// MaxShards is the most logical shards an id can address.
	MaxShards = 1 << ShardBits
)

// Epoch is the zero of the time part of an order id (2025-01-01 UTC); the
// same constant is baked into the next_order_id() SQL function.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrBadShardCount is returned for a shard count outside 1..MaxShards or
// below the number of databases.
var ErrBadShardCount = errors.New("shard: shard count must be 1..1024 and at least the number of databases")

// ID is a logical shard number.
type ID int

// Schema is the PostgreSQL schema that holds the shard's tables.
func (s ID) Schema() string { return fmt.Sprintf("shard_%04d", int(s)) }

// Map is the fixed assignment of logical shards to databases.
type Map struct {
	shards    int
	databases int
}

// NewMap returns the map of shards logical shards over databases databases.
func NewMap(shards, databases int) (Map, error) {
	if shards < 1 || shards > MaxShards || databases < 1 || shards < databases {
		return Map{}, ErrBadShardCount
	}
	return Map{shards: shards, databases: databases}, nil
}

// Shards is the number of logical shards.
func (m Map) Shards() int { return m.shards }

// Databases is the number of databases.
func (m Map) Databases() int { return m.databases }

// ForUser is the shard that holds every order of the buyer.
func (m Map) ForUser(userID string) ID {
	h := fnv.New64a()
	_, _ = h.Write([]byte(userID))
	return ID(h.Sum64() % uint64(m.shards))
}

// Database is the index of the database that holds shard s.
func (m Map) Database(s ID) int { return int(s) % m.databases }

// OnDatabase lists the shards that live on database db.
func (m Map) OnDatabase(db int) []ID {
	var out []ID
	for s := db; s < m.shards; s += m.databases {
		out = append(out, ID(s))
	}
	return out
}

// ForOrder is the shard encoded in an order id, and false when the id cannot
// have been minted under this map.
func (m Map) ForOrder(orderID int64) (ID, bool) {
	if orderID <= 0 {
		return 0, false
	}
	s := int((orderID >> SequenceBits) & (MaxShards - 1))
	return ID(s), s < m.shards
}

// MakeID composes an order id; PostgreSQL mints the real ones, this exists
// for tests and tools that must predict the layout.
func MakeID(at time.Time, s ID, seq int64) int64 {
	ms := at.Sub(Epoch).Milliseconds()
	return ms<<(ShardBits+SequenceBits) | int64(s)<<SequenceBits | seq&(1<<SequenceBits-1)
}

// IDTime is the millisecond at which an order id was minted.
func IDTime(orderID int64) time.Time {
	return Epoch.Add(time.Duration(orderID>>(ShardBits+SequenceBits)) * time.Millisecond)
}
