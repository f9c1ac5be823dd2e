package orderpg

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"flashsale/order"
)

// notSent tells whether err happened before anything of the request reached
// PostgreSQL: no connection could be made (dial refused, connect timeout,
// startup refused), or the connection failed before a byte was written. A
// statement that was never sent certainly did not take effect, so its order
// can be refused outright instead of left to the reconciler.
func notSent(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}

// unavailable is err, certainly without effect, as the domain's
// ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", order.ErrUnavailable, err)
}
