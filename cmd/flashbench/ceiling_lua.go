package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale"
	"flashsale/config"
)

// claimTTL is the idempotency claim's lifetime the service passes the
// reservation script (inventory.ClaimTTL), in seconds.
const claimTTL = int((25 * time.Hour) / time.Second)

// luaStock runs the service's own stock scripts (the embedded text of
// reserve.lua and rebuild.lua) with the keys and arguments the service's
// Redis stock passes them, over a plain Redis client: the reservation
// ceiling measures exactly what the buy path runs, without flashbench
// importing the service's packages. Its key layout and argument order
// are those of the stock package's Reserve and Rebuild; a test holds them
// to it.
type luaStock struct {
	rdb     *redis.Client
	prefix  string
	limits  [4]int // buyer rate, buyer burst, IP rate, IP burst
	reserve *redis.Script
	rebuild *redis.Script
}

func newLuaStock(rdb *redis.Client, prefix string, limits [4]int) *luaStock {
	return &luaStock{rdb: rdb, prefix: prefix, limits: limits,
		reserve: redis.NewScript(flashsale.ReserveLua), rebuild: redis.NewScript(flashsale.RebuildLua)}
}

// saleKey is the sale's hash; every key of the sale shares its hash tag.
func (s *luaStock) saleKey(sale int64) string {
	return s.prefix + ":{sale:" + strconv.FormatInt(sale, 10) + "}"
}

// field names a buyer's reservation under one idempotency key.
func field(buyer, key string) string { return buyer + "\x00" + key }

// create makes an active sale of stock units without orders, as creating a
// sale does (rebuild.lua with no live order, fencing token 1).
func (s *luaStock) create(ctx context.Context, sale int64, stock, limit int, starts, ends time.Time) error {
	sk := s.saleKey(sale)
	res, err := s.rebuild.Run(ctx, s.rdb, []string{sk, sk + ":buyers", sk + ":res"},
		1, stock, starts.UnixMilli(), ends.UnixMilli(), limit, claimTTL, s.prefix+":reopen", strconv.FormatInt(sale, 10)).Int64Slice()
	if err != nil {
		return fmt.Errorf("rebuild.lua: %w", err)
	}
	if len(res) != 4 || res[3] != 0 {
		return fmt.Errorf("rebuild.lua: unexpected reply %v", res)
	}
	return nil
}

// reserveOne runs reserve.lua for one reservation, as the unbatched buy
// path does, and returns the script's outcome code (0: reserved).
func (s *luaStock) reserveOne(ctx context.Context, sale int64, buyer, key, fingerprint string, qty int, ip string) (int64, error) {
	sk := s.saleKey(sale)
	claim := sk + ":idem:" + field(buyer, key)
	keys := []string{sk, sk + ":buyers", sk + ":res", claim, sk + ":rl:u:" + buyer, sk + ":rl:ip:" + ip, sk + ":queue"}
	l := s.limits
	res, err := s.reserve.Run(ctx, s.rdb, keys, l[0], l[1], l[2], l[3], claimTTL, qty, fingerprint, buyer, field(buyer, key),
		randHex(8)).Int64Slice() // an attempt, as the service names each
	if err != nil {
		return 0, fmt.Errorf("reserve.lua: %w", err)
	}
	if len(res) != 3 {
		return 0, fmt.Errorf("reserve.lua: unexpected reply %v", res)
	}
	return res[0], nil
}

// luaCeiling calls the reservation script alone against a sale of its own
// under a private key prefix, from vus goroutines; the keys are deleted
// afterwards.
func luaCeiling(ctx context.Context, cfg *config.Config, vus int, dur time.Duration, watch []Watched) Phase {
	what := "reserve.lua via EVALSHA (the service's script, keys and arguments) on Redis node 1, private key prefix"
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddrs[0], PoolSize: 32 * runtime.GOMAXPROCS(0)})
	defer rdb.Close()
	prefix := "flashbench-ceiling-" + randHex(4)
	defer deleteKeys(context.WithoutCancel(ctx), rdb, prefix)
	stock := newLuaStock(rdb, prefix, [4]int{1_000_000, 1_000_000, 1_000_000_000, 1_000_000_000})
	now := time.Now()
	if err := stock.create(ctx, 1, 100_000_000, 1_000_000, now.Add(-time.Minute), now.Add(time.Hour)); err != nil {
		return Phase{Name: "lua", What: what, Error: err.Error()}
	}
	op := func(ctx context.Context, seq int64) (Outcome, time.Time) {
		sent := time.Now()
		code, err := stock.reserveOne(ctx, 1, "b"+strconv.FormatInt(seq%100_000, 10), "k"+strconv.FormatInt(seq, 36), "f", 1, "127.0.0.1")
		if err != nil || code != 0 {
			return OutOther, sent
		}
		return OutOK, sent
	}
	return runPhase(ctx, "lua", what, vus, dur, OutOK, watch, op)
}

// deleteKeys removes every key under prefix from rdb.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 5000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Unlink(ctx, batch...)
	}
}
