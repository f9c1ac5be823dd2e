package orderpg

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"flashsale/inventory"
	"flashsale/order"
)

// Each sale's stock is split into per-database allotments (schema stock,
// migrations/database): the statement that commits a batch of orders takes
// their units from its database's allotment, with one conditional UPDATE
// per sale, so PostgreSQL refuses a unit that Redis wrongly allowed even
// though orders are spread over databases that share no transaction. When
// a database runs short, units move to it from another by a transfer: the
// source lowers its allotment and records the transfer in one statement,
// the destination applies it at most once by its id, and an interrupted
// transfer is finished later from the source's open row. A transfer never
// creates or destroys a unit, whoever runs it and however often, so it
// needs no lock: across databases, allotments plus units in transit always
// equal sales.stock, and units in live orders never exceed it.

// allotQueries are the allotment statements, the same on every database.
type allotQueries struct {
	init, get, out, in, done, open, saleStock string
}

func newAllotQueries(q func(string) string) allotQueries {
	return allotQueries{init: q("allot_init"), get: q("allot_get"), out: q("allot_transfer_out"),
		in: q("allot_transfer_in"), done: q("allot_transfer_done"), open: q("allot_transfers_open"),
		saleStock: q("allot_sale_stock")}
}

// allotment is one database's share of a sale.
type allotment struct {
	exists          bool
	allotted, sold  int64
	free            int64 // allotted - sold
	database, order int
}

// Allot gives a new sale's stock to the databases, in proportion to the
// shards each holds. It is idempotent: a database that has its allotment
// keeps it, so a retry or a second instance changes nothing, and a sale
// that already has orders (created before allotments existed) starts with
// each database holding at least the units of its live orders.
func (s *Store) Allot(ctx context.Context, sale inventory.SaleID, stock int) error {
	n := s.m.Databases()
	var others int64
	for db := n - 1; db >= 0; db-- {
		live, err := s.liveUnitsOn(ctx, sale, db)
		if err != nil {
			return err
		}
		share := int64(stock) * int64(len(s.m.OnDatabase(db))) / int64(s.m.Shards())
		if db == 0 {
			// Database 0 takes what the others were not given, rounding
			// included, so the allotments add up to the stock exactly.
			share = int64(stock) - others
		}
		if _, err := s.pools[db].Exec(ctx, s.aq.init, sale.Int64(), max(share, live), live); err != nil {
			return fmt.Errorf("orderpg: allot sale %s on database %d: %w", sale, db, err)
		}
		a, err := s.allotmentOn(ctx, sale, db)
		if err != nil {
			return err
		}
		others += a.allotted
	}
	return nil
}

// liveUnitsOn sums the units of the sale's live orders on one database.
func (s *Store) liveUnitsOn(ctx context.Context, sale inventory.SaleID, db int) (int64, error) {
	var total int64
	for _, sh := range s.m.OnDatabase(db) {
		var n int64
		if err := s.pools[db].QueryRow(ctx, s.q[sh].liveUnits, sale.Int64()).Scan(&n); err != nil {
			return 0, fmt.Errorf("orderpg: live units of sale %s: %w", sale, err)
		}
		total += n
	}
	return total, nil
}

func (s *Store) allotmentOn(ctx context.Context, sale inventory.SaleID, db int) (allotment, error) {
	a := allotment{database: db}
	err := s.pools[db].QueryRow(ctx, s.aq.get, sale.Int64()).Scan(&a.allotted, &a.sold)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return a, nil
	case err != nil:
		return a, fmt.Errorf("orderpg: allotment of sale %s on database %d: %w", sale, db, err)
	}
	a.exists, a.free = true, a.allotted-a.sold
	return a, nil
}

// LiveUnits is the units held by the sale's live orders (pending payment
// or paid) over every database, as the allotments count them.
func (s *Store) LiveUnits(ctx context.Context, sale inventory.SaleID) (int, error) {
	all, err := s.allotments(ctx, sale)
	if err != nil {
		return 0, err
	}
	var sold int64
	for _, a := range all {
		sold += a.sold
	}
	return int(sold), nil
}

func (s *Store) allotments(ctx context.Context, sale inventory.SaleID) ([]allotment, error) {
	all := make([]allotment, s.m.Databases())
	for db := range all {
		a, err := s.allotmentOn(ctx, sale, db)
		if err != nil {
			return nil, err
		}
		all[db] = a
	}
	return all, nil
}

// refillTries bounds the rounds one short order spends on getting units
// to its database; a round fails only when concurrent orders or transfers
// took the units it meant to move, and the next waits a little longer, for
// the commits in flight to settle what is left.
const refillTries = 5

// refill gets at least need free units of the sale onto database db, from
// the others. It answers order.ErrStockRefused when the sale has fewer
// than need units not held by live orders anywhere: PostgreSQL has nothing
// left for this order, whatever Redis believed.
func (s *Store) refill(ctx context.Context, sale inventory.SaleID, db int, need int64) error {
	if err := s.ensureAllotted(ctx, sale); err != nil {
		return err
	}
	for try := range refillTries {
		all, err := s.allotments(ctx, sale)
		if err != nil {
			return err
		}
		if err := s.sellable(ctx, sale, all, need); err != nil {
			return err
		}
		if all[db].free >= need {
			return nil // units arrived meanwhile
		}
		moved, err := s.moveTo(ctx, sale, all, db, need)
		if err != nil || moved {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(1<<try) * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: stock of sale %s is moving between databases; retry", order.ErrOverloaded, sale)
}

// ensureAllotted allots a sale that has no allotment on database 0: one
// created before allotments existed, or whose creation stopped before it
// was allotted.
func (s *Store) ensureAllotted(ctx context.Context, sale inventory.SaleID) error {
	a, err := s.allotmentOn(ctx, sale, 0)
	if err != nil || a.exists {
		return err
	}
	var stock int
	if err := s.pools[0].QueryRow(ctx, s.aq.saleStock, sale.Int64()).Scan(&stock); err != nil {
		return fmt.Errorf("orderpg: stock of sale %s: %w", sale, err)
	}
	return s.Allot(ctx, sale, stock)
}

// sellable refuses the order when stock minus the units of live orders
// over every database is below need. Units only move between allotments
// by transfers, which never change sold, so this holds however transfers
// race with the reads.
func (s *Store) sellable(ctx context.Context, sale inventory.SaleID, all []allotment, need int64) error {
	var stock, sold int64
	if err := s.pools[0].QueryRow(ctx, s.aq.saleStock, sale.Int64()).Scan(&stock); err != nil {
		return fmt.Errorf("orderpg: stock of sale %s: %w", sale, err)
	}
	for _, a := range all {
		sold += a.sold
	}
	if stock-sold < need {
		return fmt.Errorf("%w: %d of %d units are in live orders", order.ErrStockRefused, sold, stock)
	}
	return nil
}

// moveTo transfers to db from the database with the most free units: half
// of them, and at least need, so that a database running dry takes a
// share large enough not to come back for each order. It reports false
// when no donor had need units free by the time its transfer ran.
func (s *Store) moveTo(ctx context.Context, sale inventory.SaleID, all []allotment, db int, need int64) (bool, error) {
	donor := -1
	for _, a := range all {
		if a.database != db && a.exists && a.free >= need && (donor < 0 || a.free > all[donor].free) {
			donor = a.database
		}
	}
	if donor < 0 {
		return false, nil
	}
	units := min(all[donor].free, max(need, all[donor].free/2))
	return s.transfer(ctx, sale, donor, db, units)
}

// transfer moves units of the sale from one database to another: out of
// the source (with its record), into the destination (once per id), then
// the source's record is closed. It reports false when the source no
// longer had the units free.
func (s *Store) transfer(ctx context.Context, sale inventory.SaleID, from, to int, units int64) (bool, error) {
	id := newTransferID()
	err := s.pools[from].QueryRow(ctx, s.aq.out, id, sale.Int64(), to, units).Scan(new([16]byte))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("orderpg: transfer out of database %d: %w", from, err)
	}
	return true, s.finishTransfer(ctx, id, sale.Int64(), from, to, units)
}

// finishTransfer applies a transfer on its destination and closes it on
// its source; both steps may run again without effect.
func (s *Store) finishTransfer(ctx context.Context, id [16]byte, sale int64, from, to int, units int64) error {
	if _, err := s.pools[to].Exec(ctx, s.aq.in, id, sale, from, units); err != nil {
		return fmt.Errorf("orderpg: transfer into database %d: %w", to, err)
	}
	if _, err := s.pools[from].Exec(ctx, s.aq.done, id); err != nil {
		return fmt.Errorf("orderpg: close transfer on database %d: %w", from, err)
	}
	return nil
}

// FinishTransfers completes the transfers that a stopped instance left
// half done, older than minAge so that those still under way are left to
// their sender; it reports how many it finished.
func (s *Store) FinishTransfers(ctx context.Context, minAge time.Duration) (int, error) {
	n := 0
	for from, p := range s.pools {
		rows, err := p.Query(ctx, s.aq.open, minAge.Seconds())
		if err != nil {
			return n, fmt.Errorf("orderpg: open transfers on database %d: %w", from, err)
		}
		open, err := pgx.CollectRows(rows, pgx.RowToStructByPos[openTransfer])
		if err != nil {
			return n, fmt.Errorf("orderpg: open transfers on database %d: %w", from, err)
		}
		for _, t := range open {
			if err := s.finishTransfer(ctx, t.ID, t.Sale, from, int(t.To), t.Units); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

type openTransfer struct {
	ID    [16]byte
	Sale  int64
	To    int32
	Units int64
}

// RunTransfers finishes interrupted transfers every interval until ctx
// ends.
func (s *Store) RunTransfers(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := s.FinishTransfers(ctx, every); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "finishing stock transfers failed", "err", err)
			} else if n > 0 {
				s.log.WarnContext(ctx, "finished interrupted stock transfers", "transfers", n)
			}
		}
	}
}

func newTransferID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // a version 4 UUID
	id[8] = id[8]&0x3f | 0x80
	return id
}
