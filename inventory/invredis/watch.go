package invredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// WatchConfig tunes the Watcher.
type WatchConfig struct {
	// Every is the time between two looks at Redis node 1 (1 s).
	Every time.Duration
	// Again is how long after a detection every live sale is rebuilt once
	// more: past the commit deadline of the reservations in flight when
	// Redis lost them, whose orders the first rebuild could not see yet.
	Again time.Duration
	// MaxBackoff bounds the wait before a failed round is tried again
	// (30 s); the wait doubles from Every with each failure in a row.
	MaxBackoff time.Duration
}

// WatchStats counts what the Watcher did.
type WatchStats struct {
	Looks      int64 // looks at node 1 completed, with the round they made due
	Detections int64 // times Redis node 1 was found to have lost data (or to be new)
	Rounds     int64 // rounds that rebuilt every live sale
	Rebuilt    int64 // sales rebuilt, over all rounds
	Failed     int64 // rounds that failed and were put off
}

// Watcher notices that Redis node 1 lost data and rebuilds every live sale
// from PostgreSQL. It looks once per Every at two things: the server's
// run_id, which changes when the process restarts (a restart with
// appendfsync everysec can lose its last second of writes) or another
// server answers at the address (a failover), and an epoch key holding a
// random value, which vanishes or changes when the data is flushed or
// replaced without a restart. A change, or having to create the epoch key
// (a new or emptied node), starts a rebuild of every live sale at once and
// again after Again. Several instances detecting at once are harmless:
// the sale's lease serialises their rebuilds and a rebuild is idempotent.
type Watcher struct {
	svc   Rebuilder
	rdb   redis.UniversalClient
	key   string
	cfg   WatchConfig
	log   *slog.Logger
	last  sighting
	due   []time.Time // rebuild rounds to run, earliest first
	fails int         // rounds failed in a row; the next waits Every × 2^fails
	retry time.Time   // a failed round is not tried again before
	stats struct{ looks, detections, rounds, rebuilt, failed atomic.Int64 }
	now   func() time.Time
}

// sighting is what one look at node 1 saw; on a Redis Cluster, what it
// saw on every master, each as "addr=value", sorted by address.
type sighting struct{ runID, epoch string }

// Rebuilder rebuilds every live sale's stock from the orders; the
// inventory service implements it.
type Rebuilder interface {
	RebuildAll(ctx context.Context) (int, error)
}

// NewWatcher returns a watcher of the Redis node that holds stock, which
// has svc rebuild every live sale when the node lost data.
func NewWatcher(svc Rebuilder, stock *Stock, cfg WatchConfig, log *slog.Logger) *Watcher {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	return &Watcher{svc: svc, rdb: stock.rdb, key: stock.prefix + ":epoch", cfg: cfg, log: log, now: time.Now}
}

// Stats reads the watcher's counters; safe from any goroutine.
func (w *Watcher) Stats() WatchStats {
	return WatchStats{Looks: w.stats.looks.Load(), Detections: w.stats.detections.Load(), Rounds: w.stats.rounds.Load(),
		Rebuilt: w.stats.rebuilt.Load(), Failed: w.stats.failed.Load()}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Every)
	defer t.Stop()
	for {
		w.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// tick looks at node 1 once, then runs the rebuild round that is due, if
// any. A round that fails is tried again after a wait that doubles with
// each failure in a row: a round that fails because it is too heavy for
// the node right now (a sale of hundreds of thousands of live orders is
// one script) would otherwise run again every second, each time reading
// every live order from PostgreSQL and blocking the node anew.
func (w *Watcher) tick(ctx context.Context) {
	defer w.stats.looks.Add(1)
	lost, seen, err := w.look(ctx)
	switch {
	case err != nil:
		// Nothing to compare while the node is away; its run_id or epoch
		// tells on its return whether it came back with its data.
		if ctx.Err() == nil {
			w.log.WarnContext(ctx, "redis watch: cannot read node 1", "err", err)
		}
		return
	case lost:
		w.stats.detections.Add(1)
		w.log.WarnContext(ctx, "redis node 1 lost data or restarted; rebuilding every live sale from PostgreSQL",
			"run_id", seen.runID, "previous_run_id", w.last.runID, "epoch_changed", seen.epoch != w.last.epoch)
		now := w.now()
		w.due, w.fails, w.retry = []time.Time{now, now.Add(w.cfg.Again)}, 0, time.Time{}
	}
	w.last = seen
	if now := w.now(); len(w.due) == 0 || now.Before(w.due[0]) || now.Before(w.retry) {
		return
	}
	n, err := w.svc.RebuildAll(ctx)
	w.stats.rebuilt.Add(int64(n))
	if err != nil {
		if ctx.Err() == nil {
			w.putOff(ctx, n, err)
		}
		return
	}
	w.stats.rounds.Add(1)
	w.due, w.fails, w.retry = w.due[1:], 0, time.Time{}
}

// putOff schedules the failed round's next attempt.
func (w *Watcher) putOff(ctx context.Context, rebuilt int, err error) {
	wait := w.cfg.MaxBackoff
	if w.fails < 30 {
		wait = min(w.cfg.Every<<w.fails, wait)
	}
	w.fails++
	w.retry = w.now().Add(wait)
	w.stats.failed.Add(1)
	w.log.WarnContext(ctx, "redis rebuild round incomplete; retrying", "rebuilt", rebuilt, "retry_in", wait, "err", err)
}

// look reads node 1's run_id and epoch, or every master's on a Redis
// Cluster; lost is true when any changed since the last look, or when an
// epoch key had to be created.
func (w *Watcher) look(ctx context.Context) (lost bool, seen sighting, err error) {
	cc, ok := w.rdb.(*redis.ClusterClient)
	if !ok {
		return w.compare(w.lookNode(ctx, w.rdb, w.key))
	}
	nodes, err := masterKeys(ctx, cc, w.key)
	if err != nil {
		return false, seen, err
	}
	created := false
	var runIDs, epochs []string
	for _, n := range nodes {
		node, made, err := w.lookNode(ctx, n.client, n.key)
		if err != nil {
			return false, seen, fmt.Errorf("%s: %w", n.addr, err)
		}
		created = created || made
		runIDs = append(runIDs, n.addr+"="+node.runID)
		epochs = append(epochs, n.addr+"="+node.epoch)
	}
	return w.compare(sighting{runID: strings.Join(runIDs, ","), epoch: strings.Join(epochs, ",")}, created, nil)
}

// compare turns one look into its verdict against the last one.
func (w *Watcher) compare(seen sighting, created bool, err error) (bool, sighting, error) {
	if err != nil {
		return false, seen, err
	}
	return created || (w.last != (sighting{}) && w.last != seen), seen, nil
}

// lookNode reads one node's run_id and the epoch at key, which the node
// must own; created reports that the epoch key was missing.
func (w *Watcher) lookNode(ctx context.Context, node redis.Cmdable, key string) (seen sighting, created bool, err error) {
	info, err := node.Info(ctx, "server").Result()
	if err != nil {
		return seen, false, fmt.Errorf("inventory: watch: %w", err)
	}
	seen.runID = infoField(info, "run_id")
	fresh := randomEpoch()
	old, err := node.SetArgs(ctx, key, fresh, redis.SetArgs{Mode: "NX", Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		seen.epoch = fresh
		return seen, true, nil
	case err != nil:
		return seen, false, fmt.Errorf("inventory: watch: %w", err)
	}
	seen.epoch = old
	return seen, false, nil
}

// infoField is one field of an INFO reply ("name:value" lines).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func randomEpoch() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
