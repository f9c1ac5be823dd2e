package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/api"
	"flashsale/config"
	"flashsale/dbschema"
	"flashsale/inventory/invpg"
	"flashsale/lease"
	"flashsale/metrics"
	"flashsale/shard"
)

// process is what every command's process opens first: its metrics
// registry and its databases, migrated first when configured.
type process struct {
	cfg     *config.Config
	log     *slog.Logger
	shards  shard.Map
	pools   []*pgxpool.Pool // of the first databases, in shard-map order
	metrics *metrics.Metrics
}

// openProcess migrates when configured and opens the first n databases.
func openProcess(ctx context.Context, cfg *config.Config, log *slog.Logger, n int) (process, error) {
	m, err := shardMap(ctx, cfg)
	if err != nil {
		return process{}, err
	}
	pools, err := openPools(ctx, cfg, n)
	if err != nil {
		return process{}, err
	}
	return process{cfg: cfg, log: log, shards: m, pools: pools, metrics: metrics.New(api.Outcome)}, nil
}

// openPools opens a fail-fast pool on each of the first n databases; on
// an error it closes those it opened.
func openPools(ctx context.Context, cfg *config.Config, n int) ([]*pgxpool.Pool, error) {
	var pools []*pgxpool.Pool
	for _, u := range cfg.DatabaseURLs[:n] {
		pc, err := pgxpool.ParseConfig(u)
		if err != nil {
			closePools(pools)
			return nil, fmt.Errorf("app: database url: %w", err)
		}
		pc.MaxConns = int32(cfg.DBMaxConns)
		failFastPool(cfg, pc)
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			closePools(pools)
			return nil, fmt.Errorf("app: database pool: %w", err)
		}
		pools = append(pools, p)
	}
	return pools, nil
}

func closePools(pools []*pgxpool.Pool) {
	for _, p := range pools {
		p.Close()
	}
}

// openLockNodes connects to every Redis node for the RedLock quorum with
// short retries: a down node must not stall a lock.
func openLockNodes(cfg *config.Config) []*redis.Client {
	var nodes []*redis.Client
	for _, addr := range cfg.RedisAddrs {
		nodes = append(nodes, redis.NewClient(&redis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true,
			DialTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}))
	}
	return nodes
}

// newLocker is the RedLock lease over the lock nodes, of ttl, fenced by
// tokens from the sales database (database 0).
func newLocker(cfg *config.Config, db *pgxpool.Pool, nodes []*redis.Client, ttl time.Duration) *lease.Locker {
	return lease.NewLocker(nodes, cfg.RedisPrefix, ttl, invpg.NewSaleStore(db).NextToken)
}

// saleLockTTL bounds the sale operations one script cannot make atomic
// (restock, close): long enough for their PostgreSQL write.
const saleLockTTL = 10 * time.Second

// shardMap is the layout of the configured shards over the databases,
// migrated first when the command is configured to.
func shardMap(ctx context.Context, cfg *config.Config) (shard.Map, error) {
	m, err := shard.NewMap(cfg.Shards, len(cfg.DatabaseURLs))
	if err != nil {
		return m, err
	}
	if cfg.MigrateOnStart {
		if err := dbschema.New(cfg.DatabaseURLs, m).Up(ctx); err != nil {
			return m, fmt.Errorf("app: migrate: %w", err)
		}
	}
	return m, nil
}
