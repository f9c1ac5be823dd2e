package app

import (
	"context"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory/invredis"
)

// connectStock builds the client of the stock, the per-buyer limits, the
// rate limits and the idempotency claims: node 1's client, or, when
// stock-redis-addrs names a Redis Cluster, a cluster client over it with
// the buy path's fail-fast options. Every stock script's keys carry the
// sale's hash tag, so a sale lives on one slot and each call on one master.
func (a *App) connectStock() redis.UniversalClient {
	if len(a.cfg.StockRedisAddrs) == 0 {
		return a.redis[0]
	}
	o := a.redisOptions("")
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: a.cfg.StockRedisAddrs, PoolSize: o.PoolSize,
		DialerRetries: o.DialerRetries, MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout})
}

// connectRebuild builds the client of the stock's rebuilds: the stock's
// node or cluster with invredis.RebuildTimeout instead of the buy path's
// timeouts, and a pool of its own, since a rebuild runs one sale's whole
// state as one script. A caller's deadline still bounds a call: a sale
// found missing on a request's path is rebuilt within that request's time.
func (a *App) connectRebuild() redis.UniversalClient {
	o := a.redisOptions(a.cfg.RedisAddrs[0])
	o.PoolSize, o.ReadTimeout, o.WriteTimeout = 2, invredis.RebuildTimeout, invredis.RebuildTimeout
	o.ContextTimeoutEnabled = true
	if len(a.cfg.StockRedisAddrs) == 0 {
		return redis.NewClient(o)
	}
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: a.cfg.StockRedisAddrs, PoolSize: o.PoolSize,
		DialerRetries: o.DialerRetries, MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, ContextTimeoutEnabled: true})
}

// pingStock is the stock's readiness check: node 1, or every master of
// the stock cluster, since each holds some sales.
func (a *App) pingStock(ctx context.Context) error {
	cc, ok := a.stockRdb.(*redis.ClusterClient)
	if !ok {
		return a.stockRdb.Ping(ctx).Err()
	}
	return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() })
}

// closeStock closes the stock cluster's client; node 1's is closed with
// the other nodes'.
func (a *App) closeStock() {
	if cc, ok := a.stockRdb.(*redis.ClusterClient); ok {
		_ = cc.Close()
	}
	if a.rebuildRdb != nil {
		_ = a.rebuildRdb.Close()
	}
}
