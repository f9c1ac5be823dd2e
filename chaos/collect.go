package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Books reads what PostgreSQL holds of one scenario's sale: the orders on
// every shard schema of every database, the outbox and the ledger.
type Books struct {
	Pools  []*pgxpool.Pool // database 0 first: it holds the sales and the ledger
	SaleID int64
}

// OpenBooks connects to every database of a scenario.
func OpenBooks(ctx context.Context, urls []string) (*Books, error) {
	b := &Books{}
	for _, u := range urls {
		p, err := pgxpool.New(ctx, u)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.Pools = append(b.Pools, p)
	}
	return b, nil
}

// Close closes every pool.
func (b *Books) Close() {
	for _, p := range b.Pools {
		p.Close()
	}
}

func shardSchemas(ctx context.Context, p *pgxpool.Pool) ([]string, error) {
	rows, err := p.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname ~ '^shard_[0-9]{4}$' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// eachShard runs one query over the union of every shard's table; q holds
// %s where the schema goes.
func (b *Books) eachShard(ctx context.Context, q string, fn func(pgx.Rows) error, args ...any) error {
	for _, p := range b.Pools {
		schemas, err := shardSchemas(ctx, p)
		if err != nil {
			return err
		}
		if len(schemas) == 0 {
			continue
		}
		parts := make([]string, len(schemas))
		for i, s := range schemas {
			parts[i] = fmt.Sprintf(q, s)
		}
		rows, err := p.Query(ctx, strings.Join(parts, " UNION ALL "), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := fn(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Orders reads every order of the sale.
func (b *Books) Orders(ctx context.Context) ([]Order, error) {
	var out []Order
	err := b.eachShard(ctx, `SELECT id, user_id, idempotency_key, quantity, status, coalesce(cancel_reason, '')
		FROM %s.orders WHERE sale_id = $1`, func(r pgx.Rows) error {
		var o Order
		err := r.Scan(&o.ID, &o.User, &o.Key, &o.Qty, &o.Status, &o.CancelReason)
		out = append(out, o)
		return err
	}, b.SaleID)
	return out, err
}

// Stock is the sale's stock in PostgreSQL.
func (b *Books) Stock(ctx context.Context) (int, error) {
	var n int
	err := b.Pools[0].QueryRow(ctx, `SELECT stock FROM sales WHERE id = $1`, b.SaleID).Scan(&n)
	return n, err
}

// LiveUnits sums the units of the sale's live orders.
func (b *Books) LiveUnits(ctx context.Context) (int, error) {
	total := 0
	err := b.eachShard(ctx, `SELECT coalesce(sum(quantity), 0)::int FROM %s.orders
		WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')`, func(r pgx.Rows) error {
		var n int
		err := r.Scan(&n)
		total += n
		return err
	}, b.SaleID)
	return total, err
}

// Unpublished counts outbox rows the relay has not published yet.
func (b *Books) Unpublished(ctx context.Context) (int, error) {
	total := 0
	err := b.eachShard(ctx, `SELECT count(*)::int FROM %s.outbox WHERE published_at IS NULL`, func(r pgx.Rows) error {
		var n int
		err := r.Scan(&n)
		total += n
		return err
	})
	return total, err
}

// Ledger counts the inventory ledger's created entries per order.
func (b *Books) Ledger(ctx context.Context) (map[int64]int, error) {
	rows, err := b.Pools[0].Query(ctx, `SELECT order_id, count(*)::int FROM ledger_entries
		WHERE sale_id = $1 AND kind = 'created' GROUP BY 1`, b.SaleID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

// Remaining is the sale's remaining stock as the API shows it.
func Remaining(ctx context.Context, baseURL, saleID string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/sales/"+saleID, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var s struct {
		Remaining *int `json:"remaining"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK || s.Remaining == nil {
		return 0, fmt.Errorf("GET /v1/sales/%s: status %d, err %v", saleID, resp.StatusCode, err)
	}
	return *s.Remaining, nil
}

// poll calls cond every interval until it reports done, or timeout
// passes; it returns whether cond got there and how long it took.
func poll(ctx context.Context, timeout, interval time.Duration, cond func() bool) (bool, time.Duration) {
	start := time.Now()
	for {
		if cond() {
			return true, time.Since(start)
		}
		if time.Since(start) > timeout || ctx.Err() != nil {
			return false, time.Since(start)
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}
