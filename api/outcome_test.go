package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"flashsale/inventory"
	"flashsale/order"
)

// TestOutcomeNamesWrappedDomainErrors: wrapped sentinels keep their label,
// anything unknown is "error".
func TestOutcomeNamesWrappedDomainErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("reserve: %w", inventory.ErrSoldOut), "sold_out"},
		{fmt.Errorf("commit: %w", order.ErrStockRefused), "stock_refused"},
		{inventory.ErrKeyReused, "key_reused"},
		{order.ErrKeyReused, "key_reused"},
		{fmt.Errorf("commit: %w", order.ErrCommitUnknown), "commit_unknown"},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("lock: %w", inventory.ErrSaleBusy), "sale_busy"},
		{errors.New("connection refused"), "error"},
	} {
		if got := Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
