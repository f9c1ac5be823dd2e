package inventory

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Catalog caches the immutable part of sales (price, limit, window) so the
// buy path reads them from memory; concurrent misses share one query and a
// missing sale is remembered briefly, so a flood of unknown ids cannot turn
// into a flood of queries.
type Catalog struct {
	store   SaleReader
	group   singleflight.Group
	sales   sync.Map // SaleID -> Sale
	missing sync.Map // SaleID -> time.Time (until)
	missTTL time.Duration
	now     func() time.Time
}

// SaleReader reads one sale from the truth; SaleStore is one, and a
// decorator (a circuit breaker) may wrap it.
type SaleReader interface {
	Get(ctx context.Context, id SaleID) (Sale, error)
}

// NewCatalog returns a catalog over store.
func NewCatalog(store SaleReader) *Catalog {
	return &Catalog{store: store, missTTL: time.Second, now: time.Now}
}

// Sale returns the sale, from memory when it has been read before.
func (c *Catalog) Sale(ctx context.Context, id SaleID) (Sale, error) {
	if v, ok := c.sales.Load(id); ok {
		return v.(Sale), nil
	}
	if until, ok := c.missing.Load(id); ok && c.now().Before(until.(time.Time)) {
		return Sale{}, ErrSaleNotFound
	}
	v, err, _ := c.group.Do(id.String(), func() (any, error) {
		s, err := c.store.Get(ctx, id)
		if errors.Is(err, ErrSaleNotFound) {
			c.missing.Store(id, c.now().Add(c.missTTL))
		}
		if err != nil {
			return Sale{}, err
		}
		c.sales.Store(id, s)
		c.missing.Delete(id)
		return s, nil
	})
	return v.(Sale), err
}
