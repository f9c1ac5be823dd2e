package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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
		insert: flashsale.Query("sale_insert"), get: flashsale.Query("sale_get"),
		addStock: flashsale.Query("sale_add_stock"), fence: flashsale.Query("sale_fence"),
		nextToken: flashsale.Query("fence_next"), listLive: flashsale.Query("sale_list_live"),
	}}
}

// Create inserts a validated sale.
func (s *SaleStore) Create(ctx context.Context, n NewSale) (Sale, error) {
	row := s.db.QueryRow(ctx, s.q.insert, n.SKU, n.Title, n.PriceCents, n.Currency, n.Stock, n.PerUserLimit, n.StartsAt, n.EndsAt)
	return scanSale(row)
}

// Get reads one sale.
func (s *SaleStore) Get(ctx context.Context, id SaleID) (Sale, error) {
	return scanSale(s.db.QueryRow(ctx, s.q.get, id.Int64()))
}

// AddStock adds units under a fencing token.
func (s *SaleStore) AddStock(ctx context.Context, id SaleID, q Quantity, token int64) (Sale, error) {
	sale, err := scanSale(s.db.QueryRow(ctx, s.q.addStock, id.Int64(), q.Int(), token))
	if errors.Is(err, ErrSaleNotFound) {
		return Sale{}, s.staleOrMissing(ctx, id)
	}
	return sale, err
}

// Fence records token as the newest guard of the sale.
func (s *SaleStore) Fence(ctx context.Context, id SaleID, token int64) error {
	tag, err := s.db.Exec(ctx, s.q.fence, id.Int64(), token)
	if err != nil {
		return fmt.Errorf("inventory: fence: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return s.staleOrMissing(ctx, id)
	}
	return nil
}

func (s *SaleStore) staleOrMissing(ctx context.Context, id SaleID) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	return ErrStaleFence
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
func (s *SaleStore) Live(ctx context.Context, ago time.Duration) ([]SaleID, error) {
	rows, err := s.db.Query(ctx, s.q.listLive, ago.String())
	if err != nil {
		return nil, fmt.Errorf("inventory: live sales: %w", err)
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SaleID, error) {
		var n int64
		err := r.Scan(&n)
		return SaleID{n}, err
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: live sales: %w", err)
	}
	return ids, nil
}

func scanSale(row pgx.Row) (Sale, error) {
	var s Sale
	var id int64
	err := row.Scan(&id, &s.SKU, &s.Title, &s.PriceCents, &s.Currency, &s.Stock, &s.PerUserLimit,
		&s.StartsAt, &s.EndsAt, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Sale{}, ErrSaleNotFound
	}
	if err != nil {
		return Sale{}, translate(err)
	}
	s.ID = SaleID{id}
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
			return fmt.Errorf("%w: %s", ErrInvalidSale, pg.ConstraintName+pg.Message)
		}
	}
	return fmt.Errorf("inventory: sales: %w", err)
}
