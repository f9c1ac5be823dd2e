package invredis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"flashsale/inventory"

	"flashsale/internal/batch"
)

// BatchedStock is Stock whose reservations travel in batches
// (internal/batch): those that arrive while a call is in flight go
// together in the next round trip, one script call per sale, pipelined.
// Redis and the service then pay one command's overhead (the syscalls,
// the parse, the script's entry) for many reservations. Each reservation
// is still its own atomic step with its own outcome, in arrival order.
type BatchedStock struct {
	*Stock
	b *batch.Batcher[inventory.Reservation, inventory.Reserved]
}

// reserveBatchTimeout bounds one batch's round trip; its callers wait for
// it even when they are cancelled, since their units may have been taken.
const reserveBatchTimeout = 3 * time.Second

// NewBatchedStock returns s with Reserve batched: up to maxBatch
// reservations per round trip and workers round trips in flight.
func NewBatchedStock(s *Stock, maxBatch, workers int) *BatchedStock {
	return &BatchedStock{Stock: s, b: batch.New(s.reserveBatch, max(1, maxBatch), max(1, workers))}
}

// Run sends reservations until ctx is done, then sends what is queued and
// returns.
func (s *BatchedStock) Run(ctx context.Context) error {
	s.b.Run(ctx)
	return nil
}

// Reserve is Stock.Reserve through the next batch.
func (s *BatchedStock) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reserved, error) {
	return s.b.Do(ctx, r)
}

// reserveBatch reserves rs: one script call per sale, all calls in one
// pipelined round trip.
func (s *Stock) reserveBatch(ctx context.Context, rs []inventory.Reservation, out []batch.Result[inventory.Reserved]) {
	ctx, cancel := context.WithTimeout(ctx, reserveBatchTimeout)
	defer cancel()
	groups := groupBySale(rs)
	cmds := make([]*redis.Cmd, len(groups))
	// Each command carries its own error (the pipeline's too), read below.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range groups {
			keys, args := s.reserveArgs(g.rs)
			cmds[i] = s.reserve.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	for i, g := range groups {
		res, cerr := cmds[i].Int64Slice()
		if cerr != nil && isNoScript(cerr) {
			// Redis lost its script cache (a restart): Run loads it again.
			keys, args := s.reserveArgs(g.rs)
			res, cerr = s.reserve.Run(ctx, s.rdb, keys, args...).Int64Slice()
		}
		g.settle(res, cerr, out)
	}
}

// saleGroup is the reservations of one sale in a batch, by index.
type saleGroup struct {
	idx []int
	rs  []inventory.Reservation
}

func groupBySale(rs []inventory.Reservation) []*saleGroup {
	var groups []*saleGroup
	bySale := map[inventory.SaleID]*saleGroup{}
	for i, r := range rs {
		g, ok := bySale[r.Sale]
		if !ok {
			g = &saleGroup{}
			bySale[r.Sale] = g
			groups = append(groups, g)
		}
		g.idx, g.rs = append(g.idx, i), append(g.rs, r)
	}
	return groups
}

// settle hands each reservation of g its outcome from the script's reply.
func (g *saleGroup) settle(res []int64, err error, out []batch.Result[inventory.Reserved]) {
	if err == nil && len(res) != 3*len(g.idx) {
		err = fmt.Errorf("unexpected reply %v for %d reservations", res, len(g.idx))
	}
	for j, i := range g.idx {
		if err != nil {
			out[i].Err = fmt.Errorf("inventory: reserve: %w: %w", inventory.ErrReplyLost, err)
			continue
		}
		out[i].Val, out[i].Err = reserveOutcome(res[3*j : 3*j+3])
	}
}

// isNoScript is go-redis's own test for a lost script (Script.Run's): the
// normalized error, or the server's, wrapped or not.
func isNoScript(err error) bool {
	return errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")
}
