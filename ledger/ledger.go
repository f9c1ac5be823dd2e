// Package ledger is the inventory consumer of the order events: the
// durable count of sold units per sale in PostgreSQL database 0, and the
// check that cancels orders beyond a sale's stock when Redis forgot
// reservations.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale"
	"flashsale/consumer/inbox"
	"flashsale/inventory"
	"flashsale/order"
)

// OversoldCanceller cancels orders the ledger found beyond their sale's
// stock, with reason oversold, and emits their cancelled events; the order
// lifecycle implements it. It must be idempotent: the same ids can come
// again until their cancelled events reach the ledger, and an id already
// cancelled or expired is no error. The units of these orders never
// existed, so cancelling them must not return units to the live stock.
type OversoldCanceller interface {
	CancelOversold(ctx context.Context, orderIDs []int64) error
}

// Ledger is the durable count of sold units per sale, kept in PostgreSQL
// database 0 from the order events (tables stock_ledger and
// ledger_entries): sold counts the units of created orders, released those
// of cancelled or expired orders, and the net, sold - released, must never
// exceed the sale's stock. Redis decides each sale; the ledger is the
// check that holds if Redis forgot reservations in a failover: a created
// event that takes the net above the stock makes the ledger cancel the
// newest excess orders.
//
// Ledger is the inventory consumer's handler, an inbox.Deduplicator: its
// entries are keyed by event id, so it keeps no inbox rows. HandleNew
// applies a batch's events with one statement that takes the sales'
// counters in sale order, AfterCommit looks for an oversell once an
// effect is committed, and AfterCommitBatch once per sale of a batch.
type Ledger struct {
	db     *pgxpool.Pool
	cancel OversoldCanceller
	log    *slog.Logger
	q      ledgerQueries
	// batchSales maps the created events of the batch HandleNew applied
	// last to their sales: AfterCommitBatch gets the same events once they
	// committed, and decoding each again cost as much as the first time.
	mu         sync.Mutex
	batchSales map[string]inventory.SaleID
}

type ledgerQueries struct{ applyBatch, known, position, excess string }

// New returns the ledger over database 0; cancel is told the orders
// of an oversell.
func New(db *pgxpool.Pool, cancel OversoldCanceller, log *slog.Logger) *Ledger {
	return &Ledger{db: db, cancel: cancel, log: log, q: ledgerQueries{applyBatch: flashsale.SQL.LedgerApplyBatch,
		known: flashsale.SQL.LedgerKnown, position: flashsale.SQL.LedgerPosition, excess: flashsale.SQL.LedgerExcess}}
}

// Position is a sale's stock and what the ledger counted against it.
type Position struct {
	Stock    int64 // sales.stock
	Sold     int64 // units of created orders
	Released int64 // units of cancelled or expired orders
}

// Net is the units held by orders that are neither cancelled nor expired.
func (p Position) Net() int64 { return p.Sold - p.Released }

// Remaining is the stock not held by an order (negative when oversold).
func (p Position) Remaining() int64 { return p.Stock - p.Net() }

// Excess is the units sold beyond the stock.
func (p Position) Excess() int64 { return max(0, p.Net()-p.Stock) }

// orderEvent is what the ledger reads of an order event's data.
type orderEvent struct {
	kind     string
	order    int64
	sale     inventory.SaleID
	quantity int
	delta    int
	reason   *string
}

// kinds are the ledger's entry kinds of the order event types.
var kinds = map[string]string{order.EventCreated: "created", order.EventPaid: "paid",
	order.EventCancelled: "cancelled", order.EventExpired: "expired"}

// parseOrderEvent reads the data of an order event the ledger counts; ok
// is false for any other type.
func parseOrderEvent(ev inbox.Event) (e orderEvent, ok bool, err error) {
	if e.kind, ok = kinds[ev.Type]; !ok {
		return e, false, nil
	}
	d, reason, err := decodeData(ev)
	if err != nil {
		return e, true, fmt.Errorf("%w: ledger: data of %s: %v", inventory.ErrInvalidValue, ev.ID, err)
	}
	if e.order, err = strconv.ParseInt(d.OrderID, 10, 64); err != nil || e.order <= 0 {
		return e, true, fmt.Errorf("%w: ledger: order_id %q of %s", inventory.ErrInvalidValue, d.OrderID, ev.ID)
	}
	if ev.Subject != "" && ev.Subject != d.OrderID {
		return e, true, fmt.Errorf("%w: ledger: subject %q is not order_id %q", inventory.ErrInvalidValue, ev.Subject, d.OrderID)
	}
	if e.sale, err = inventory.ParseSaleID(d.SaleID); err != nil {
		return e, true, fmt.Errorf("ledger: %s: %w", ev.ID, err)
	}
	q, err := inventory.NewQuantity(int64(d.Quantity))
	if err != nil {
		return e, true, fmt.Errorf("ledger: %s: %w", ev.ID, err)
	}
	e.quantity, e.reason = q.Int(), reason
	switch e.kind {
	case "created":
		e.delta = e.quantity
	case "cancelled", "expired":
		e.delta = -e.quantity
	}
	return e, true, nil
}

// Handle records one order event in tx, as HandleNew does.
func (l *Ledger) Handle(ctx context.Context, tx pgx.Tx, ev inbox.Event) error {
	_, err := l.HandleNew(ctx, tx, []inbox.Event{ev})
	return err
}

// HandleNew records the order events of evs in tx with one statement, the
// inbox.Deduplicator of the inventory consumer: created adds its quantity
// to the sale's sold units, cancelled and expired to its released units,
// paid only leaves an entry. An event whose id has an entry is a
// redelivery and changes nothing; so is an order's second creation,
// payment or release under another event id, which is logged. Events of
// other types change nothing and count as applied: there is nothing to
// repeat. Any invalid event fails the batch, so that the consumer retries
// its events one by one.
func (l *Ledger) HandleNew(ctx context.Context, tx pgx.Tx, evs []inbox.Event) ([]bool, error) {
	applied := make([]bool, len(evs))
	es, err := parseEntries(evs, applied)
	if err != nil || len(es) == 0 {
		return applied, err
	}
	l.rememberSales(es)
	args := batchArgs(es)
	inserted, err := inbox.QueryIDs(ctx, tx, l.q.applyBatch, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: apply %d events: %w", len(es), err)
	}
	missed := markInserted(es, args[0].([][16]byte), inserted, applied)
	if len(missed) == 0 {
		return applied, nil
	}
	return applied, l.sortMissed(ctx, tx, es, missed, applied)
}

// markInserted sets applied for the entries whose ids the statement
// inserted, the first copy of each, and returns the indexes in es of the
// others.
func markInserted(es []entry, ids [][16]byte, fresh map[[16]byte]bool, applied []bool) (missed []int) {
	for i, id := range ids {
		if fresh[id] {
			applied[es[i].at] = true
			delete(fresh, id) // a second copy of the id inserted nothing
			continue
		}
		missed = append(missed, i)
	}
	return missed
}

// sortMissed tells, among the entries es[missed] that inserted nothing,
// the redeliveries (their id has an entry) from the transitions recorded
// before under another id, which are logged and count as applied. Only a
// redelivery or a producer's mistake inserts nothing, so this read runs
// rarely.
func (l *Ledger) sortMissed(ctx context.Context, tx pgx.Tx, es []entry, missed []int, applied []bool) error {
	ids := make([][16]byte, len(missed))
	for j, i := range missed {
		ids[j] = inbox.IDBytes(es[i].id)
	}
	seen, err := inbox.QueryIDs(ctx, tx, l.q.known, ids)
	if err != nil {
		return fmt.Errorf("ledger: entries of %d events: %w", len(ids), err)
	}
	for j, i := range missed {
		if !seen[ids[j]] {
			seen[ids[j]] = true // a second copy is a redelivery of the first
			applied[es[i].at] = true
			l.warnIgnored(ctx, es[i].id, es[i].orderEvent)
		}
	}
	return nil
}

// warnIgnored reports an event that changed nothing though the ledger had
// no entry under its id: the producer published one transition twice.
func (l *Ledger) warnIgnored(ctx context.Context, id string, e orderEvent) {
	l.log.WarnContext(ctx, "ledger: order transition already recorded under another event id; ignored",
		"event_id", id, "order_id", e.order, "kind", e.kind)
}

// entry is an order event the ledger counts, with its event id and its
// index in the events it came in.
type entry struct {
	id string
	at int
	orderEvent
}

// parseEntries reads the order events of evs, in order, and skips the
// events of other types, marking each applied but for a second copy of
// its id.
func parseEntries(evs []inbox.Event, applied []bool) ([]entry, error) {
	es := make([]entry, 0, len(evs))
	var skipped map[string]bool
	for i, ev := range evs {
		e, ok, err := parseOrderEvent(ev)
		if err != nil {
			return nil, err
		}
		if !ok {
			if skipped == nil {
				skipped = map[string]bool{}
			}
			applied[i], skipped[ev.ID] = !skipped[ev.ID], true
			continue
		}
		es = append(es, entry{id: ev.ID, at: i, orderEvent: e})
	}
	return es, nil
}

// batchArgs are the parameters of ledger_apply_batch: one array per
// column, in the order of es; the ids as bytes, which pgx sends in binary
// (inbox.IDBytes).
func batchArgs(es []entry) []any {
	ids, kinds := make([][16]byte, len(es)), make([]string, len(es))
	sales, orders := make([]int64, len(es)), make([]int64, len(es))
	quantities, deltas := make([]int, len(es)), make([]int, len(es))
	reasons := make([]*string, len(es))
	for i, e := range es {
		ids[i], kinds[i], sales[i], orders[i] = inbox.IDBytes(e.id), e.kind, e.sale.Int64(), e.order
		quantities[i], deltas[i], reasons[i] = e.quantity, e.delta, e.reason
	}
	return []any{ids, sales, orders, kinds, quantities, deltas, reasons}
}

// AfterCommit checks the sale of a created order for an oversell once the
// entry is committed, and has the newest excess orders cancelled. It runs
// again when the event is redelivered, so a crash before the canceller was
// told only delays the cancellation.
func (l *Ledger) AfterCommit(ctx context.Context, ev inbox.Event) error {
	if ev.Type != order.EventCreated {
		return nil
	}
	e, _, err := parseOrderEvent(ev)
	if err != nil {
		return err
	}
	return l.ResolveOversold(ctx, e.sale)
}

// AfterCommitBatch is AfterCommit for a batch the consumer committed in
// one transaction: it checks each sale of the batch's created orders once,
// in the order the sales first appear. One check after the commit sees
// every entry of the batch, so checking per event, as AfterCommit does,
// would read a hot sale's position once per order for nothing.
func (l *Ledger) AfterCommitBatch(ctx context.Context, evs []inbox.Event) error {
	sales, err := l.createdSales(evs)
	if err != nil {
		return err
	}
	for _, id := range sales {
		if err := l.ResolveOversold(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// createdSales lists the sales of the created events of evs, in the order
// they first appear, from the last batch's when HandleNew applied them
// (an event it did not see is decoded).
func (l *Ledger) createdSales(evs []inbox.Event) ([]inventory.SaleID, error) {
	l.mu.Lock()
	known := l.batchSales
	l.batchSales = nil
	l.mu.Unlock()
	var sales []inventory.SaleID
	for _, ev := range evs {
		if ev.Type != order.EventCreated {
			continue
		}
		sale, ok := known[ev.ID]
		if !ok {
			e, _, err := parseOrderEvent(ev)
			if err != nil {
				return nil, err
			}
			sale = e.sale
		}
		if !slices.Contains(sales, sale) {
			sales = append(sales, sale)
		}
	}
	return sales, nil
}

// rememberSales keeps the sales of the created entries of a batch for
// AfterCommitBatch, in place of the previous batch's: a batch that did
// not commit leaves entries that no event of a later batch is looked up
// under, except its own redeliveries, whose sales are the same.
func (l *Ledger) rememberSales(es []entry) {
	m := make(map[string]inventory.SaleID, len(es))
	for _, e := range es {
		if e.kind == "created" {
			m[e.id] = e.sale
		}
	}
	l.mu.Lock()
	l.batchSales = m
	l.mu.Unlock()
}

// ResolveOversold cancels the newest orders of the sale that exceed its
// stock, if any. Until their cancelled events reach the ledger the same
// orders stay in excess and are named again on the next call.
func (l *Ledger) ResolveOversold(ctx context.Context, id inventory.SaleID) error {
	pos, err := l.Position(ctx, id)
	if err != nil || pos.Excess() == 0 {
		return err
	}
	ids, err := l.Oversold(ctx, id)
	if err != nil || len(ids) == 0 {
		return err
	}
	l.log.ErrorContext(ctx, "ledger: sale oversold; cancelling the newest orders", "sale_id", id.String(),
		"stock", pos.Stock, "net_sold", pos.Net(), "excess", pos.Excess(), "order_ids", ids)
	if l.cancel == nil {
		return fmt.Errorf("ledger: sale %s oversold by %d, orders %v, and no canceller is wired", id, pos.Excess(), ids)
	}
	if err := l.cancel.CancelOversold(ctx, ids); err != nil {
		return fmt.Errorf("ledger: cancel oversold orders %v of sale %s: %w", ids, id, err)
	}
	return nil
}

// Position reads the sale's stock and counters.
func (l *Ledger) Position(ctx context.Context, id inventory.SaleID) (Position, error) {
	var p Position
	err := l.db.QueryRow(ctx, l.q.position, id.Int64()).Scan(&p.Stock, &p.Sold, &p.Released)
	if errors.Is(err, pgx.ErrNoRows) {
		return Position{}, inventory.ErrSaleNotFound
	}
	if err != nil {
		return Position{}, fmt.Errorf("ledger: position of sale %s: %w", id, err)
	}
	return p, nil
}

// Oversold lists, newest first, the fewest newest live orders of the sale
// whose units cover its excess; none when the sale is within its stock.
func (l *Ledger) Oversold(ctx context.Context, id inventory.SaleID) ([]int64, error) {
	rows, err := l.db.Query(ctx, l.q.excess, id.Int64())
	if err != nil {
		return nil, fmt.Errorf("ledger: excess orders of sale %s: %w", id, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("ledger: excess orders of sale %s: %w", id, err)
	}
	return ids, nil
}
