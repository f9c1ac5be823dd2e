// Package orderpg is the PostgreSQL order store: orders and their outbox
// rows on sharded schemas, committed in shared transactions (group commit)
// so that concurrent orders share one fsync instead of paying one each.
package orderpg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale"
	"flashsale/internal/batch"
	"flashsale/inventory"
	"flashsale/order"
	"flashsale/shard"
)

// Store is the sharded PostgreSQL order store.
type Store struct {
	pools    []*pgxpool.Pool
	m        shard.Map
	q        []queries                         // by shard
	batchers []*batch.Batcher[pending, result] // by database
	commits  []*committer                      // by database
	onCommit func(shard.ID)
	aq       allotQueries
	log      *slog.Logger
}

// queries are the statements of one shard, its schema substituted.
type queries struct {
	byKey, get, list            string
	pay, cancel, expire, closed string
	cancelOversold, keysExist   string
	liveUnits                   string
}

// Options tunes group commit.
type Options struct {
	MaxBatch int // most orders in one transaction
	Workers  int // transactions in flight per database
	// OnCommit, when set, is told each shard whose outbox just received
	// rows, after the commit: it wakes the relay without polling.
	OnCommit func(shard.ID)
	Log      *slog.Logger // nil: slog.Default()
}

// New returns the store over pools, one per database in shard-map order.
func New(pools []*pgxpool.Pool, m shard.Map, opt Options) *Store {
	s := &Store{pools: pools, m: m, q: make([]queries, m.Shards()), onCommit: opt.OnCommit,
		aq: newAllotQueries(flashsale.SQL), log: cmp.Or(opt.Log, slog.Default())}
	for i := range m.Shards() {
		schema := shard.ID(i).Schema()
		sub := func(q string) string { return strings.ReplaceAll(q, "__shard__", schema) }
		s.q[i] = queries{byKey: sub(flashsale.SQL.OrderByKey), get: sub(flashsale.SQL.OrderGet), list: sub(flashsale.SQL.OrderList),
			pay: sub(flashsale.SQL.OrderPay), cancel: sub(flashsale.SQL.OrderCancel), expire: sub(flashsale.SQL.OrderExpire), closed: sub(flashsale.SQL.OrderClosedRecent),
			cancelOversold: sub(flashsale.SQL.OrderCancelOversold), keysExist: sub(flashsale.SQL.OrderKeysExist), liveUnits: sub(flashsale.SQL.OrderLiveUnits)}
	}
	workers := max(1, opt.Workers)
	// Instances start at different slots, so that two instances' commits
	// mostly lock different allotment rows too.
	first := mrand.IntN(AllotSlots)
	for db, p := range pools {
		c := newCommitter(p, NewStatements(m.OnDatabase(db)), s.committed, workers, first)
		c.db, c.refill = db, s.refillUnits
		s.commits = append(s.commits, c)
		s.batchers = append(s.batchers, batch.New(c.commit, max(1, opt.MaxBatch), workers))
	}
	return s
}

// Run commits queued orders until ctx ends, then commits what is still
// queued and returns. Cancel its ctx only after the HTTP server drained.
func (s *Store) Run(ctx context.Context) error {
	done := make(chan struct{})
	for _, b := range s.batchers {
		go func() { b.Run(ctx); done <- struct{}{} }()
	}
	for range s.batchers {
		<-done
	}
	return nil
}

// Create commits the order and its OrderCreated event on the buyer's shard,
// together with whatever other orders are waiting for that database. An
// order its database's allotment can't hold waits for units to move there
// from another database; when the sale has no unit left in truth it is
// refused with order.ErrStockRefused.
func (s *Store) Create(ctx context.Context, o order.NewOrder) (order.Order, error) {
	sh := s.m.ForUser(o.Buyer.String())
	db := s.m.Database(sh)
	r, err := s.batchers[db].Do(ctx, pending{shard: sh, o: o})
	if err == nil && r.outcome == outcomeNoStock {
		// A retry of a key that made its order is refused stock rather
		// than found duplicate once its allotment is spent.
		if made, kerr := s.ByKey(ctx, o.Buyer, o.Key); kerr == nil {
			return order.Order{}, &order.DuplicateError{Existing: made}
		}
	}
	for try := 0; err == nil && r.outcome == outcomeNoStock && try < refillTries; try++ {
		// Units move to the allotment this order's transaction used, and
		// the order commits there alone; concurrent orders may take them
		// first, and then it asks again.
		to := pot{db, r.slot}
		if err = s.refill(ctx, o, to); err == nil {
			r, err = s.commits[db].alone(ctx, pending{shard: sh, o: o}, to.slot)
		}
	}
	if err != nil {
		return order.Order{}, err
	}
	switch r.outcome {
	case outcomeCreated:
		return order.Order{ID: r.id, SaleID: o.Sale.ID, Buyer: o.Buyer, Key: o.Key, RequestHash: o.RequestHash,
			Quantity: o.Qty, AmountCents: o.Sale.PriceCents * int64(o.Qty), Currency: o.Sale.Currency,
			Status: order.StatusPendingPayment, CreatedAt: r.createdAt, ExpiresAt: r.expiresAt}, nil
	case outcomeDuplicate:
		return order.Order{}, order.ErrDuplicate
	case outcomeLate:
		return order.Order{}, order.ErrCommitExpired
	default:
		return order.Order{}, fmt.Errorf("%w: other orders kept taking the units moved to this order's database", order.ErrOverloaded)
	}
}

// ByKey finds the order a buyer's idempotency key made.
func (s *Store) ByKey(ctx context.Context, buyer order.BuyerID, key order.IdemKey) (order.Order, error) {
	sh := s.m.ForUser(buyer.String())
	return scanOrder(s.pools[s.m.Database(sh)].QueryRow(ctx, s.q[sh].byKey, buyer.String(), key.String()))
}

// ExistingOrders tells the reconciler which reservations became orders,
// with one query per shard that holds any of the buyers.
func (s *Store) ExistingOrders(ctx context.Context, keys []inventory.BuyerKey) (map[inventory.BuyerKey]bool, error) {
	byShard := map[shard.ID][2][]string{}
	for _, k := range keys {
		sh := s.m.ForUser(k.Buyer)
		cols := byShard[sh]
		byShard[sh] = [2][]string{append(cols[0], k.Buyer), append(cols[1], k.Key)}
	}
	out := make(map[inventory.BuyerKey]bool, len(keys))
	for sh, cols := range byShard {
		rows, err := s.pools[s.m.Database(sh)].Query(ctx, s.q[sh].keysExist, cols[0], cols[1])
		if err != nil {
			return nil, fmt.Errorf("orderpg: existing orders: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[inventory.BuyerKey])
		if err != nil {
			return nil, fmt.Errorf("orderpg: existing orders: %w", err)
		}
		for _, k := range found {
			out[k] = true
		}
	}
	return out, nil
}

// Get reads one order with one query on the database its id names.
func (s *Store) Get(ctx context.Context, id order.ID) (order.Order, error) {
	sh, ok := s.m.ForOrder(id.Int64())
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	return scanOrder(s.pools[s.m.Database(sh)].QueryRow(ctx, s.q[sh].get, id.Int64()))
}

// List reads a page of the buyer's orders, newest first, from its shard.
func (s *Store) List(ctx context.Context, buyer order.BuyerID, before *order.ID, limit int) (order.Page, error) {
	sh := s.m.ForUser(buyer.String())
	cursor := int64(math.MaxInt64)
	if before != nil {
		cursor = before.Int64()
	}
	rows, err := s.pools[s.m.Database(sh)].Query(ctx, s.q[sh].list, buyer.String(), cursor, limit+1)
	if err != nil {
		return order.Page{}, fmt.Errorf("orderpg: list: %w", err)
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Order, error) { return scanOrder(r) })
	if err != nil {
		return order.Page{}, err
	}
	var page order.Page
	if len(orders) > limit {
		orders = orders[:limit]
		next := orders[limit-1].ID
		page.Next = &next
	}
	page.Orders = orders
	return page, nil
}

// scanOrder reads the order columns every order query starts with, then
// any extra columns into extra.
func scanOrder(row pgx.Row, extra ...any) (order.Order, error) {
	var o order.Order
	var id, saleID int64
	var buyer, key, status string
	err := row.Scan(append([]any{&id, &saleID, &buyer, &key, &o.RequestHash, &o.Quantity, &o.AmountCents, &o.Currency,
		&status, &o.CreatedAt, &o.ExpiresAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Order{}, order.ErrNotFound
	}
	if err != nil {
		return order.Order{}, translate(err)
	}
	var errs [4]error
	o.ID, errs[0] = order.NewID(id)
	o.SaleID, errs[1] = inventory.NewSaleID(saleID)
	o.Buyer, errs[2] = order.ParseBuyerID(buyer)
	o.Key, errs[3] = order.ParseIdemKey(key)
	o.Status = order.Status(status)
	o.CreatedAt, o.ExpiresAt = o.CreatedAt.UTC(), o.ExpiresAt.UTC()
	return o, errors.Join(errs[:]...)
}

// translate turns PostgreSQL error codes into domain errors, once, here.
func translate(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return fmt.Errorf("%w: %s", order.ErrDuplicate, pg.ConstraintName)
	}
	if notSent(err) {
		return unavailable(fmt.Errorf("orderpg: %w", err))
	}
	return fmt.Errorf("orderpg: %w", err)
}

// committed tells OnCommit that shard's outbox received rows.
func (s *Store) committed(sh shard.ID) {
	if s.onCommit != nil {
		s.onCommit(sh)
	}
}
