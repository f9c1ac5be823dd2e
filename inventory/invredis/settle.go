package invredis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"flashsale/inventory"
)

// holdsPage is how many reservations one HSCAN call asks for.
const holdsPage = 1000

// Holds lists the sale's reservations.
func (s *Stock) Holds(ctx context.Context, sale inventory.SaleID) ([]inventory.Held, error) {
	return s.scanHolds(ctx, sale, func(string) bool { return true })
}

// Unconfirmed lists the sale's reservations not yet marked as having a
// durable order: what the reconciler settles. Confirmed ones, nearly all of
// a long sale's, are skipped unparsed.
func (s *Stock) Unconfirmed(ctx context.Context, sale inventory.SaleID) ([]inventory.Held, error) {
	return s.scanHolds(ctx, sale, func(v string) bool { return !strings.HasSuffix(v, ":c") })
}

// scanHolds reads the sale's reservations a page per call, keeping those
// whose value keep accepts: one HGETALL of a sale of millions of
// reservations kept node 1 busy past the buy path's timeout each time the
// reconciler looked (every 30 s in a long soak), and the Redis breaker
// opened each time. HSCAN may return a field twice while the hash is
// resized; each is listed once.
func (s *Stock) scanHolds(ctx context.Context, sale inventory.SaleID, keep func(v string) bool) ([]inventory.Held, error) {
	key := s.saleKey(sale) + ":res"
	var out []inventory.Held
	seen := map[string]bool{}
	for cursor := uint64(0); ; {
		kv, next, err := s.rdb.HScan(ctx, key, cursor, "", holdsPage).Result()
		if err != nil {
			return nil, fmt.Errorf("inventory: holds: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			f, v := kv[i], kv[i+1]
			if !keep(v) || seen[f] {
				continue
			}
			seen[f] = true
			h, ok := parseHeld(f, v)
			if !ok {
				return nil, fmt.Errorf("inventory: holds: malformed reservation %q=%q", f, v)
			}
			out = append(out, h)
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

func parseHeld(f, v string) (inventory.Held, bool) {
	buyer, key, ok := strings.Cut(f, "\x00")
	parts := strings.Split(v, ":")
	if !ok || len(parts) < 2 {
		return inventory.Held{}, false
	}
	qty, err1 := strconv.Atoi(parts[0])
	ms, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return inventory.Held{}, false
	}
	// "qty:ms", then the attempt that reserved (if it named one), then
	// "b" once the buy path told of its commit, then "c" once confirmed.
	last := parts[len(parts)-1]
	return inventory.Held{Buyer: buyer, Key: key, Qty: qty, At: time.UnixMilli(ms),
		Confirmed: len(parts) > 2 && last == "c", Committed: len(parts) > 2 && last == "b"}, true
}

// ConfirmHolds marks the reservations whose orders are durable, a page
// per script: the reconciler's sweep confirms what a whole sale reserved,
// hundreds of thousands in a soak, and as one script that outlived the buy
// path's timeout while holding node 1. Each page stands alone; one that
// fails leaves the rest for the next round.
func (s *Stock) ConfirmHolds(ctx context.Context, sale inventory.SaleID, holds []inventory.Held, token int64) error {
	return s.confirmPages(ctx, sale, heldFields(holds), token)
}

// Confirm marks the reservations of orders the buy path committed (':b'),
// a page per script and unfenced (a commit is a fact whoever holds the
// lease): the reconciler then confirms them without asking PostgreSQL.
func (s *Stock) Confirm(ctx context.Context, sale inventory.SaleID, keys []inventory.BuyerKey) error {
	fields := make([]string, len(keys))
	for i, k := range keys {
		fields[i] = field(k.Buyer, k.Key)
	}
	return s.confirmPages(ctx, sale, fields, 0)
}

func (s *Stock) confirmPages(ctx context.Context, sale inventory.SaleID, fields []string, token int64) error {
	for len(fields) > 0 {
		n := min(len(fields), holdsPage)
		if _, err := s.runSettle(ctx, sale, fields[:n], nil, token); err != nil {
			return err
		}
		fields = fields[n:]
	}
	return nil
}

func heldFields(holds []inventory.Held) []string {
	out := make([]string, len(holds))
	for i, h := range holds {
		out[i] = field(h.Buyer, h.Key)
	}
	return out
}

// DuePage reads up to max entries from the head of the sale's settle queue
// (reserve.lua appends each reservation's field as it makes it) and the
// reservations they name: those released or confirmed since are skipped,
// and the page ends before the first one made after cutoff. The queue is
// in the order of Redis' clock, so a round reads what became due since the
// last, not every reservation of the sale.
func (s *Stock) DuePage(ctx context.Context, sale inventory.SaleID, cutoff time.Time, max int) (inventory.DuePage, error) {
	sk := s.saleKey(sale)
	entries, err := s.rdb.LRange(ctx, sk+":queue", 0, int64(max-1)).Result()
	if err != nil || len(entries) == 0 {
		return inventory.DuePage{Last: true}, wrapDue(err)
	}
	vals, err := s.rdb.HMGet(ctx, sk+":res", entries...).Result()
	if err != nil {
		return inventory.DuePage{}, wrapDue(err)
	}
	var p inventory.DuePage
	for i, f := range entries {
		v, _ := vals[i].(string)
		if v == "" || strings.HasSuffix(v, ":c") {
			continue // released or confirmed since it was queued
		}
		h, ok := parseHeld(f, v)
		if !ok {
			return inventory.DuePage{}, fmt.Errorf("inventory: due: malformed reservation %q=%q", f, v)
		}
		if h.At.After(cutoff) {
			return s.lastPage(ctx, sk, p, entries[:i])
		}
		p.Due = append(p.Due, h)
	}
	p.Entries, p.Last = entries, len(entries) < max
	return p, nil
}

// lastPage ends a page at a reservation still in its grace, counting the
// queue behind it.
func (s *Stock) lastPage(ctx context.Context, sk string, p inventory.DuePage, entries []string) (inventory.DuePage, error) {
	n, err := s.rdb.LLen(ctx, sk+":queue").Result()
	if err != nil {
		return inventory.DuePage{}, wrapDue(err)
	}
	p.Entries, p.Last, p.Waiting = entries, true, max(0, int(n)-len(entries))
	return p, nil
}

func wrapDue(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("inventory: due: %w", err)
}

// SettlePage confirms durable and takes the page's entries off the queue,
// in one fenced script. A queue whose head is no longer the page's (an
// earlier holder, paused past its lease, settled it meanwhile) is
// ErrSaleBusy: this round stops rather than read the page again.
func (s *Stock) SettlePage(ctx context.Context, sale inventory.SaleID, page inventory.DuePage, durable []inventory.Held, token int64) error {
	n, err := s.runSettle(ctx, sale, heldFields(durable), page.Entries, token)
	if err == nil && n < len(page.Entries) {
		err = fmt.Errorf("inventory: settle: %w: the queue's head moved under the page (%d of %d entries taken off)",
			inventory.ErrSaleBusy, n, len(page.Entries))
	}
	return err
}

// runSettle runs settle.lua: confirm the reservations named by fields,
// then take entries off the queue's head; it reports the entries taken
// off.
func (s *Stock) runSettle(ctx context.Context, sale inventory.SaleID, fields, entries []string, token int64) (int, error) {
	args := make([]any, 0, 2+len(fields)+len(entries))
	args = append(args, token, len(fields))
	for _, f := range fields {
		args = append(args, f)
	}
	for _, e := range entries {
		args = append(args, e)
	}
	sk := s.saleKey(sale)
	res, err := s.settle.Run(ctx, s.rdb, []string{sk, sk + ":res", sk + ":queue"}, args...).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("inventory: settle: %w", err)
	}
	if res[1] == 1 {
		return 0, inventory.ErrStaleFence
	}
	return int(res[2]), nil
}
