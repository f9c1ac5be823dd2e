package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/config"
	"flashsale/lease"
	"flashsale/outbox"
	"flashsale/shard"
)

// RelayProcess is the outbox relay run alone (flashsale relay): for
// deployments that keep it out of the API instances, or run more relays
// than API instances. It opens the databases, the Redis lock nodes and a
// Kafka writer, nothing of the buy path.
type RelayProcess struct {
	process
	lockNodes []*redis.Client
	writer    *outbox.Writer
	relay     *outbox.Relay
}

// NewRelay connects to what the relay uses, applying migrations first when
// configured. Close releases it.
func NewRelay(ctx context.Context, cfg *config.Config, log *slog.Logger) (*RelayProcess, error) {
	base, err := openProcess(ctx, cfg, log, len(cfg.DatabaseURLs))
	if err != nil {
		return nil, err
	}
	p := &RelayProcess{process: base, lockNodes: openLockNodes(cfg), writer: outbox.NewWriter(cfg.KafkaBrokers, cfg.KafkaTopic)}
	p.relay = newRelay(cfg, p.pools, p.shards, p.writer, newLocker(cfg, p.pools[0], p.lockNodes, cfg.RelayLeaseTTL), p.lockNodes[0], log)
	p.metrics.Relay(p.relay.Stats())
	return p, nil
}

// Run relays until ctx ends, with the debug listener when configured.
func (p *RelayProcess) Run(ctx context.Context) error {
	return withDebug(ctx, p.cfg.DebugAddr, p.metrics, p.log, func(ctx context.Context) error {
		return runRelay(ctx, p.cfg, p.relay, p.log)
	})
}

// Close releases the writer, the lock nodes and the pools, in the reverse
// order of their opening.
func (p *RelayProcess) Close() {
	if p.writer != nil {
		_ = p.writer.Close()
	}
	for _, c := range p.lockNodes {
		_ = c.Close()
	}
	closePools(p.pools)
}

// newRelay is the relay of every shard's outbox, leased per shard; the
// relays of every instance share the shards and wake each other over rdb.
func newRelay(cfg *config.Config, pools []*pgxpool.Pool, m shard.Map, w *outbox.Writer, locker *lease.Locker, rdb *redis.Client, log *slog.Logger) *outbox.Relay {
	return outbox.New(relayTargets(pools, m), w, locker, rdb, outbox.Config{Holder: holderName(),
		Prefix: cfg.RedisPrefix, Source: "/flashsale", BatchSize: cfg.RelayBatch, Poll: time.Second,
		Retention: cfg.OutboxRetention, RetryDelay: 50 * time.Millisecond}, log)
}

// relayTargets lists every shard's outbox on the database that holds it.
func relayTargets(pools []*pgxpool.Pool, m shard.Map) []outbox.Target {
	targets := make([]outbox.Target, 0, m.Shards())
	for s := range shard.ID(m.Shards()) {
		targets = append(targets, outbox.Target{Pool: pools[m.Database(s)], Schema: s.Schema(), Shard: int(s)})
	}
	return targets
}

// holderName names this instance in the relay leases it holds.
func holderName() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// runRelay creates the topic when missing (retrying while Kafka is away;
// orders keep landing in the outbox meanwhile), then relays until ctx ends.
func runRelay(ctx context.Context, cfg *config.Config, r *outbox.Relay, log *slog.Logger) error {
	for {
		err := outbox.EnsureTopic(ctx, cfg.KafkaBrokers, cfg.KafkaTopic, cfg.KafkaPartitions, cfg.KafkaReplication)
		if err == nil {
			break
		}
		log.WarnContext(ctx, "kafka topic not ready, retrying", "topic", cfg.KafkaTopic, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	return r.Run(ctx)
}
