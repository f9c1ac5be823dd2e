// Package invpg is the sales table in PostgreSQL database 0, the truth of
// every sale; writes under a sale's lease are fenced by its token.
package invpg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"flashsale/inventory"

	"flashsale"
)

// SaleStore keeps sales in PostgreSQL database 0, the truth about stock.
type SaleStore struct {
	db *pgxpool.Pool
	q  saleQueries
}

type saleQueries struct {
	insert, get, addStock, fence, nextToken, listLive string
}

// NewSaleStore returns the store over database 0.
func NewSaleStore(db *pgxpool.Pool) *SaleStore {
	return &SaleStore{db: db, q: saleQueries{
		insert: flashsale.SQL.SaleInsert, get: flashsale.SQL.SaleGet,
		addStock: flashsale.SQL.SaleAddStock, fence: flashsale.SQL.SaleFence,
		nextToken: flashsale.SQL.FenceNext, listLive: flashsale.SQL.SaleListLive,
	}}
}

// Create inserts a validated sale.
func (s *SaleStore) Create(ctx context.Context, n inventory.NewSale) (inventory.Sale, error) {
	row := s.db.QueryRow(ctx, s.q.insert, n.SKU, n.Title, n.PriceCents, n.Currency, n.Stock, n.PerUserLimit, n.StartsAt, n.EndsAt)
	return scanSale(row)
}

// Get reads one sale.
func (s *SaleStore) Get(ctx context.Context, id inventory.SaleID) (inventory.Sale, error) {
	return scanSale(s.db.QueryRow(ctx, s.q.get, id.Int64()))
}

// AddStock adds units under a fencing token.
func (s *SaleStore) AddStock(ctx context.Context, id inventory.SaleID, q inventory.Quantity, token int64) (inventory.Sale, error) {
	sale, err := scanSale(s.db.QueryRow(ctx, s.q.addStock, id.Int64(), q.Int(), token))
	if errors.Is(err, inventory.ErrSaleNotFound) {
		return inventory.Sale{}, s.staleOrMissing(ctx, id)
	}
	return sale, err
}

// Fence records token as the newest guard of the sale.
func (s *SaleStore) Fence(ctx context.Context, id inventory.SaleID, token int64) error {
	tag, err := s.db.Exec(ctx, s.q.fence, id.Int64(), token)
	if err != nil {
		return fmt.Errorf("inventory: fence: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return s.staleOrMissing(ctx, id)
	}
	return nil
}

func (s *SaleStore) staleOrMissing(ctx context.Context, id inventory.SaleID) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	return inventory.ErrStaleFence
}

// NextToken hands out a fencing token larger than every earlier one.
func (s *SaleStore) NextToken(ctx context.Context) (int64, error) {
	var t int64
	if err := s.db.QueryRow(ctx, s.q.nextToken).Scan(&t); err != nil {
		return 0, fmt.Errorf("inventory: next fencing token: %w", err)
	}
	return t, nil
}

// Live lists the sales that ended less than ago ago, or have not ended.
func (s *SaleStore) Live(ctx context.Context, ago time.Duration) ([]inventory.SaleID, error) {
	rows, err := s.db.Query(ctx, s.q.listLive, ago.String())
	if err != nil {
		return nil, fmt.Errorf("inventory: live sales: %w", err)
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inventory.SaleID, error) {
		var n int64
		if err := r.Scan(&n); err != nil {
			return inventory.SaleID{}, err
		}
		return inventory.NewSaleID(n)
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: live sales: %w", err)
	}
	return ids, nil
}

func scanSale(row pgx.Row) (inventory.Sale, error) {
	var s inventory.Sale
	var id int64
	err := row.Scan(&id, &s.SKU, &s.Title, &s.PriceCents, &s.Currency, &s.Stock, &s.PerUserLimit,
		&s.StartsAt, &s.EndsAt, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return inventory.Sale{}, inventory.ErrSaleNotFound
	}
	if err != nil {
		return inventory.Sale{}, translate(err)
	}
	if s.ID, err = inventory.NewSaleID(id); err != nil {
		return inventory.Sale{}, err
	}
	s.StartsAt, s.EndsAt = s.StartsAt.UTC(), s.EndsAt.UTC()
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, nil
}

// translate turns PostgreSQL's constraint violations into domain errors,
// once, here at the store boundary.
func translate(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23514", "23502", "22001", "22003": // check, not null, too long, out of range
			return fmt.Errorf("%w: %s", inventory.ErrInvalidSale, pg.ConstraintName+pg.Message)
		}
	}
	return fmt.Errorf("inventory: sales: %w", err)
}
