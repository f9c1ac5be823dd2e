package orderpg

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"flashsale"

	"github.com/jackc/pgx/v5"

	"flashsale/inventory"
	"flashsale/order"
)

// Each sale's stock is split into allotments (schema stock,
// migrations/database), AllotSlots per database: the statement that
// commits a batch of orders takes their units from one allotment of its
// database, with one locked conditional UPDATE per sale, so PostgreSQL
// refuses a unit that Redis wrongly allowed even though orders are spread
// over databases that share no transaction. Concurrent group commits of a
// database use different slots: each holds its allotment's row lock until
// it is durable, and commits queued on one row could not share a WAL
// flush.
//
// When an allotment runs short, units move to it from another by a
// transfer: the source lowers its allotment and records the transfer in
// one statement, the destination applies it at most once by its id, and an
// interrupted transfer is finished later from the source's open row. A
// transfer never creates or destroys a unit, whoever runs it and however
// often, so it needs no lock: the allotments plus the units in transit
// always equal sales.stock, and units in live orders never exceed it.

// AllotSlots is the number of allotments of a sale on each database.
const AllotSlots = 4

// allotQueries are the allotment statements, the same on every database.
type allotQueries struct {
	init, get, out, in, done, open, saleStock string
}

func newAllotQueries(q flashsale.Queries) allotQueries {
	return allotQueries{init: q.AllotInit, get: q.AllotGet, out: q.AllotTransferOut, in: q.AllotTransferIn,
		done: q.AllotTransferDone, open: q.AllotTransfersOpen, saleStock: q.AllotSaleStock}
}

// pot names one allotment: a database and a slot on it.
type pot struct{ db, slot int }

// allotment is one allotment of a sale.
type allotment struct {
	pot
	allotted, sold int64
}

func (a allotment) free() int64 { return a.allotted - a.sold }

// Allot gives a new sale's stock to the allotments, in proportion to the
// shards each database holds. A new sale has no order yet, so a database
// that can't be reached now is given nothing, and its orders take units
// from the others when they come: creating a sale needs database 0 only.
// It is idempotent: an allotment that exists keeps what it has, so a retry
// or a second instance changes nothing.
func (s *Store) Allot(ctx context.Context, sale inventory.SaleID, stock int) error {
	return s.allot(ctx, sale, stock, func(int) (int64, error) { return 0, nil }, true)
}

// allotExisting allots a sale that may already have orders (placed before
// allotments existed): each database's slot 0 holds the units of its live
// orders, so every database must answer.
func (s *Store) allotExisting(ctx context.Context, sale inventory.SaleID, stock int) error {
	live := func(db int) (int64, error) { return s.liveUnitsOn(ctx, sale, db) }
	return s.allot(ctx, sale, stock, live, false)
}

// allot gives database 0 what the others were given less than the stock
// (rounding included), so the allotments add up to it exactly; with skip,
// a database other than 0 that fails is given nothing.
func (s *Store) allot(ctx context.Context, sale inventory.SaleID, stock int, live func(db int) (int64, error), skip bool) error {
	var others int64
	for db := s.m.Databases() - 1; db >= 0; db-- {
		share := int64(stock) * int64(len(s.m.OnDatabase(db))) / int64(s.m.Shards())
		if db == 0 {
			share = int64(stock) - others
		}
		given, err := s.allotDatabase(ctx, sale, db, share, live)
		if err != nil && skip && db > 0 {
			s.log.WarnContext(ctx, "database unreachable; its share of the new sale stays with the others",
				"sale_id", sale.String(), "database", db, "err", err)
			continue
		}
		if err != nil {
			return err
		}
		others += given
	}
	return nil
}

// allotDatabase allots share on one database and reports what its
// allotments hold then (what an earlier call gave, if there was one).
func (s *Store) allotDatabase(ctx context.Context, sale inventory.SaleID, db int, share int64, live func(int) (int64, error)) (int64, error) {
	n, err := live(db)
	if err != nil {
		return 0, err
	}
	if err := s.allotOn(ctx, sale, db, share, n); err != nil {
		return 0, err
	}
	all, err := s.allotmentsOn(ctx, sale, db)
	var given int64
	for _, a := range all {
		given += a.allotted
	}
	return given, err
}

// allotOn splits share over the database's slots; slot 0 also holds the
// units of live orders placed before the sale had allotments.
func (s *Store) allotOn(ctx context.Context, sale inventory.SaleID, db int, share, live int64) error {
	for slot := AllotSlots - 1; slot >= 0; slot-- {
		units, sold := share/AllotSlots, int64(0)
		if slot == 0 {
			units, sold = max(share-units*(AllotSlots-1), live), live
		}
		if _, err := s.pools[db].Exec(ctx, s.aq.init, sale.Int64(), slot, units, sold); err != nil {
			return fmt.Errorf("orderpg: allot sale %s on database %d: %w", sale, db, err)
		}
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

// allotmentsOn reads the sale's allotments on one database.
func (s *Store) allotmentsOn(ctx context.Context, sale inventory.SaleID, db int) ([]allotment, error) {
	rows, err := s.pools[db].Query(ctx, s.aq.get, sale.Int64())
	if err != nil {
		return nil, fmt.Errorf("orderpg: allotments of sale %s on database %d: %w", sale, db, err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (allotment, error) {
		a := allotment{pot: pot{db: db}}
		return a, r.Scan(&a.slot, &a.allotted, &a.sold)
	})
	if err != nil {
		return nil, fmt.Errorf("orderpg: allotments of sale %s on database %d: %w", sale, db, err)
	}
	return all, nil
}

// allotments reads the sale's allotments on every database.
func (s *Store) allotments(ctx context.Context, sale inventory.SaleID) ([]allotment, error) {
	var all []allotment
	for db := range s.pools {
		on, err := s.allotmentsOn(ctx, sale, db)
		if err != nil {
			return nil, err
		}
		all = append(all, on...)
	}
	return all, nil
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

// refillTries bounds the rounds one short order spends on getting units
// to its allotment; a round fails only when concurrent orders or transfers
// took the units it meant to move (or hold them in a commit in flight),
// and the next waits twice as long, for those commits to settle what is
// left: about a quarter of a second in all.
const refillTries = 8

// refill gets free units for the order onto the allotment to, from the
// others. It answers order.ErrStockRefused when the sale has fewer units
// than the order wants that no live order holds: PostgreSQL has nothing
// left for it, whatever Redis believed.
func (s *Store) refill(ctx context.Context, o order.NewOrder, to pot) error {
	return s.refillUnits(ctx, o.Sale.ID, int64(o.Qty), to)
}

// refillUnits gets need free units of the sale onto the allotment to, as
// refill does for one order.
func (s *Store) refillUnits(ctx context.Context, sale inventory.SaleID, need int64, to pot) error {
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
		moved, err := s.moveTo(ctx, sale, all, to, need)
		if err != nil || moved {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(1<<try) * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: stock of sale %s is moving between allotments; retry", order.ErrOverloaded, sale)
}

// ensureAllotted allots a sale that has no allotment on database 0: one
// created before allotments existed, or whose creation stopped before it
// was allotted.
func (s *Store) ensureAllotted(ctx context.Context, sale inventory.SaleID) error {
	on0, err := s.allotmentsOn(ctx, sale, 0)
	if err != nil || len(on0) > 0 {
		return err
	}
	var stock int
	if err := s.pools[0].QueryRow(ctx, s.aq.saleStock, sale.Int64()).Scan(&stock); err != nil {
		return fmt.Errorf("orderpg: stock of sale %s: %w", sale, err)
	}
	return s.allotExisting(ctx, sale, stock)
}

// sellable refuses the order when the sale's stock minus the units of
// live orders over every database is below need. Units move between
// allotments only by transfers, which never change sold, so this holds
// however transfers race with the reads.
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

// moveTo makes sure the allotment to has need units free: when it has
// not, it transfers from the allotments with the most free units, from
// each half of its free units and at least what is still missing, so that
// an allotment running dry takes a share large enough not to come back for
// each order. It reports false when the donors no longer had enough free
// by the time the transfers ran.
func (s *Store) moveTo(ctx context.Context, sale inventory.SaleID, all []allotment, to pot, need int64) (bool, error) {
	var have int64
	donors := make([]allotment, 0, len(all))
	for _, a := range all {
		switch {
		case a.pot == to:
			have = a.free()
		case a.free() > 0:
			donors = append(donors, a)
		}
	}
	slices.SortFunc(donors, func(a, b allotment) int { return cmp.Compare(b.free(), a.free()) })
	for _, d := range donors {
		if have >= need {
			break
		}
		units := min(d.free(), max(need-have, d.free()/2))
		moved, err := s.transfer(ctx, sale, d.pot, to, units)
		if err != nil {
			return false, err
		}
		if moved {
			have += units
		}
	}
	return have >= need, nil
}

// transfer moves units of the sale between two allotments: out of the
// source (with its record), into the destination (once per id), then the
// source's record is closed. It reports false when the source no longer
// had the units free.
func (s *Store) transfer(ctx context.Context, sale inventory.SaleID, from, to pot, units int64) (bool, error) {
	t := openTransfer{ID: newTransferID(), Sale: sale.Int64(), Slot: int16(from.slot), To: int32(to.db),
		ToSlot: int16(to.slot), Units: units}
	err := s.pools[from.db].QueryRow(ctx, s.aq.out, t.ID, t.Sale, t.Slot, t.To, t.ToSlot, t.Units).Scan(new([16]byte))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("orderpg: transfer out of database %d: %w", from.db, err)
	}
	return true, s.finishTransfer(ctx, from.db, t)
}

// openTransfer is a transfer as its source recorded it.
type openTransfer struct {
	ID     [16]byte
	Sale   int64
	Slot   int16 // the source's
	To     int32
	ToSlot int16
	Units  int64
}

// finishTransfer applies a transfer on its destination and closes it on
// its source; both steps may run again without effect.
func (s *Store) finishTransfer(ctx context.Context, from int, t openTransfer) error {
	if _, err := s.pools[t.To].Exec(ctx, s.aq.in, t.ID, t.Sale, t.ToSlot, from, t.Slot, t.Units); err != nil {
		return fmt.Errorf("orderpg: transfer into database %d: %w", t.To, err)
	}
	if _, err := s.pools[from].Exec(ctx, s.aq.done, t.ID); err != nil {
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
			if err := s.finishTransfer(ctx, from, t); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
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
			n, err := s.FinishTransfers(ctx, every)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.WarnContext(ctx, "finishing stock transfers failed", "err", err)
			case n > 0:
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
